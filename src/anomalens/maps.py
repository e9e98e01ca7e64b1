"""Expert patch maps → anomaly maps a person reads: upsampled to the input size and smoothed (PatchCore's
Gaussian, σ = 4 px at 256 px); `resampling.at_image_size` then brings them to each image's own size. Tile
stitching will live here."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMOOTHING_SIGMA = 4.0  # Gaussian σ of the map in pixels at 256 px (PatchCore's), scaled with the input size


class Smoothing(nn.Module):
    """(B, h, w) patch maps → (B, S, S): bilinear upsampling to the input size S, then a Gaussian blur."""

    kernel: torch.Tensor

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("kernel", gaussian_kernel(SMOOTHING_SIGMA * size / 256), persistent=False)

    def forward(self, patch_maps: torch.Tensor) -> torch.Tensor:
        maps = F.interpolate(
            patch_maps[:, None].float(), size=(self.size, self.size), mode="bilinear", align_corners=False
        )
        radius = (len(self.kernel) - 1) // 2
        maps = F.pad(maps, [radius] * 4, mode="reflect")
        maps = F.conv2d(maps, self.kernel.view(1, 1, 1, -1))
        return F.conv2d(maps, self.kernel.view(1, 1, -1, 1))[:, 0]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius 4σ."""
    radius = int(4 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


@torch.inference_mode()
def smooth(patch_maps: torch.Tensor, size: int, chunk: int = 8) -> torch.Tensor:
    """(B, h, w) → (B, S, S) smoothed maps, in chunks: the convolution's working memory grows with the batch
    (gigabytes for the hundreds of leave-one-out maps of a large training set)."""
    smoothing = Smoothing(size)
    return torch.cat([smoothing(patch_maps[start : start + chunk]) for start in range(0, len(patch_maps), chunk)])
