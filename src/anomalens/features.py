"""Images → locally aware patch features on one grid, as PatchCore builds them.

Each stage's feature map is averaged over a 3×3 neighbourhood (a patch then describes its
surroundings, which makes matching robust to small shifts), and coarser stages are resized to the
finest stage's grid so every grid cell has one feature vector per stage. As in PatchCore's reference,
the zero padding counts in the average: border patches shrink toward zero, which damps the unstable
features the network computes at image borders (battery_weld, full-shot: pixel AUROC 0.909 → 0.921,
AUPRO 0.686 → 0.723).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone

NEIGHBOURHOOD = 3


class PatchFeatures(nn.Module):
    """(B, 3, S, S) pixels in [0, 1] → per-stage (B, C_i, h, w) features on the finest stage's grid."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        return aggregate(self.backbone(pixels))


@torch.inference_mode()
def patch_features(backbone: Backbone | None, batch: torch.Tensor) -> list[torch.Tensor]:
    """Per-stage (B, C_i, h, w) features on the finest stage's grid."""
    assert backbone is not None, "an expert that needs features comes with a backbone"
    return aggregate(backbone(batch))


def aggregate(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each stage averaged over its neighbourhood and resized to the finest stage's grid."""
    grid = maps[0].shape[-2:]
    out = []
    for fmap in maps:
        fmap = F.avg_pool2d(fmap, NEIGHBOURHOOD, stride=1, padding=NEIGHBOURHOOD // 2, count_include_pad=True)
        if fmap.shape[-2:] != grid:
            fmap = F.interpolate(fmap, size=grid, mode="bilinear", align_corners=False)
        out.append(fmap)
    return out


def flatten_patches(fmap: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → (B·h·w, C), row-major over images then grid cells."""
    return fmap.permute(0, 2, 3, 1).reshape(-1, fmap.shape[1])
