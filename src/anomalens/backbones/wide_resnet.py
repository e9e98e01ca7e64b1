"""Wide ResNet-50-2 in pure torch, in torchvision's state-dict layout (PatchCore's standard backbone).

torchvision is not a dependency: this is the few lines of the network it would give us, so a user's
local ``wide_resnet50_2-*.pth`` (or a safetensors copy) loads into it key for key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYERS = (3, 4, 6, 3)
WIDTH_FACTOR = 2  # "wide": bottleneck width is twice ResNet-50's


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, planes: int, stride: int):
        super().__init__()
        width, c_out = planes * WIDTH_FACTOR, planes * 4
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class WideResNet50(nn.Module):
    """Returns the outputs of the requested residual layers (1-4; PatchCore uses 2 and 3)."""

    def __init__(self, state_dict: dict[str, torch.Tensor], stages: tuple[int, ...]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        c_in, self.stages = 64, tuple(sorted(stages))
        self.strides, self.channels = [], []
        for n, blocks in enumerate(LAYERS[: max(stages)], start=1):
            planes, stride = 64 * 2 ** (n - 1), 1 if n == 1 else 2
            layer = [Bottleneck(c_in, planes, stride)] + [Bottleneck(planes * 4, planes, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{n}", nn.Sequential(*layer))
            c_in = planes * 4
            if n in self.stages:
                self.strides.append(4 * 2 ** (n - 1))
                self.channels.append(c_in)
        missing, _ = self.load_state_dict(state_dict, strict=False)
        if missing:
            raise ValueError(f"Wide ResNet-50-2 weights lack {len(missing)} tensors, e.g. {missing[:3]}")
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        features = []
        for n in range(1, max(self.stages) + 1):
            x = getattr(self, f"layer{n}")(x)
            if n in self.stages:
                features.append(x)
        return features
