"""Resizing in numpy and Pillow alone: images to the model's square input, and anomaly maps back to an image's
own size. Both the torch route and the ONNX runtime (`anomalens.deploy`, which has no torch) resize here, so
the two see the same pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resized(image: np.ndarray, size: int | tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """An H×W×3 float image in [0, 1] → (3, size, size) (or (3, height, width) for a `size` of (height, width))
    float32 in [0, 1], antialiased so small details survive fairly: Pillow's filters, in float (torch's
    antialiased interpolate gives the same within 2e-5)."""
    height, width = (size, size) if isinstance(size, int) else size
    channels = [
        Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32)).resize((width, height), FILTERS[mode])
        for c in range(3)
    ]
    return np.clip(np.stack([np.asarray(channel) for channel in channels]), 0, 1)  # bicubic overshoots


def at_image_size(small_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An (S, S) map → the image's own (H, W), bilinear with pixel centres aligned (as torch's interpolate,
    align_corners=False, without antialiasing); a map already of that size is returned as it is (a tiled
    20-megapixel image's map is not copied four times over)."""
    if small_map.shape == tuple(shape):
        return small_map
    top, bottom, row_weight = _taps(small_map.shape[0], shape[0])
    left, right, col_weight = _taps(small_map.shape[1], shape[1])
    rows = small_map[top] * (1 - row_weight)[:, None] + small_map[bottom] * row_weight[:, None]
    return rows[:, left] * (1 - col_weight) + rows[:, right] * col_weight


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis: each output pixel's two source pixels and the second one's weight."""
    source = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
    low = np.minimum(source.astype(np.int64), n_in - 1)
    return low, np.minimum(low + 1, n_in - 1), (source - low).astype(np.float32)
