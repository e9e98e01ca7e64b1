"""Images as the experts see them: decoding (a little ahead, on a worker thread), batching in input order,
and the pixel batch itself (resize, exposure). Resolution choices (aspect, tiles) belong here.

An unreadable image never stops a stream: it comes through as a (source, ImageError) pair in its place."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .data import ImageError, as_float, image_size, read_image, reduced

Unreadable = tuple[str, ImageError]
MAX_SIDE = 2048  # images are decoded (and kept) at most this many pixels a side: plenty for 256-px inputs and
# maps upsampled from a 32 × 32 grid, and a 36-megapixel upload then holds 12 MB as uint8, not 430 MB as float32


class Decoded(NamedTuple):
    source: str
    image: np.ndarray  # H×W×3, uint8 (8-bit files, uint8 arrays) or float32 in [0, 1]; at most MAX_SIDE a side
    size: tuple[int, int]  # (width, height) of the image as given, before any reduction


ImageInput = str | Path | np.ndarray | Decoded  # a file, an H×W×3 array, or an image decoded already (uploads)


@dataclass(frozen=True)
class Preprocessing:
    """Decoded images → one (B, 3, size, size) pixel batch in [0, 1]."""

    size: int
    mode: str = "bilinear"  # resampling ("bicubic" for CLIP's own image tower)
    standardise_exposure: bool = False  # zero-shot: no normal image says which exposure is normal

    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        batch = to_batch(images, self.size, self.mode)
        return standardise_exposure(batch) if self.standardise_exposure else batch


def to_batch(images: Sequence[np.ndarray], size: int, mode: str = "bilinear") -> torch.Tensor:
    """H×W×3 images (uint8, or float in [0, 1]) → (B, 3, size, size) floats in [0, 1], antialiased so small
    details survive fairly; each image becomes float only here, one at a time."""
    tensors = [
        F.interpolate(
            torch.from_numpy(np.ascontiguousarray(as_float(image), dtype=np.float32)).permute(2, 0, 1)[None],
            size=(size, size),
            mode=mode,
            antialias=True,
            align_corners=False,
        )
        for image in images
    ]
    return torch.cat(tensors).clamp_(0, 1)


def standardise_exposure(batch: torch.Tensor, spread: float = 3.0, min_std: float = 0.01) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → each image shifted and scaled so its mean sits at 0.5 and ±`spread` standard
    deviations span [0, 1]. For zero-shot scoring, where no normal image says which exposure is normal:
    without it, images that are merely brighter or darker than most of the batch score as anomalous
    (battery_weld's depth maps, route B: image AUROC 0.473 → 0.869)."""
    mean = batch.mean((1, 2, 3), keepdim=True)
    std = batch.std((1, 2, 3), keepdim=True).clamp(min=min_std)  # a flat image is not blown up into noise
    return ((batch - mean) / (2 * spread * std) + 0.5).clamp_(0, 1)


def as_images(images: ImageInput | Iterable[ImageInput]) -> Iterable[ImageInput]:
    """A single path or array is a batch of one (a string is never iterated character by character)."""
    return [images] if isinstance(images, str | Path | np.ndarray | Decoded) else images


def batches(
    images: Iterable[ImageInput], size: int, max_pixels: int | None = None
) -> Iterator[list[Decoded] | Unreadable]:
    """Decoded batches of up to `size`, in input order; an unreadable image closes the batch before it and
    comes on its own as a (source, error) pair."""
    batch: list[Decoded] = []
    for source, loaded in decode_ahead(images, depth=2 * size, max_pixels=max_pixels):
        if isinstance(loaded, ImageError):
            if batch:
                yield batch
                batch = []
            yield source, loaded
            continue
        batch.append(loaded)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def decode_ahead(
    images: Iterable[ImageInput], depth: int, max_pixels: int | None = None
) -> Iterator[tuple[str, Decoded | ImageError]]:
    """(source, the decoded image or the ImageError) in input order, with at most `depth` images decoded ahead."""

    def load(item: ImageInput, source: str) -> Decoded | ImageError:
        try:
            return decode(item, source, max_pixels)
        except ImageError as error:
            return error

    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=1) as pool:
        for i, item in enumerate(images):
            source = (
                f"array[{i}]"
                if isinstance(item, np.ndarray)
                else item.source
                if isinstance(item, Decoded)
                else str(item)
            )
            pending.append((source, pool.submit(load, item, source)))
            if len(pending) > depth:
                source, future = pending.popleft()
                yield source, future.result()
        while pending:
            source, future = pending.popleft()
            yield source, future.result()


def decode(item: ImageInput, source: str, max_pixels: int | None = None) -> Decoded:
    """A path is decoded at most MAX_SIDE a side (refused from its header above `max_pixels`); an array must
    already be H×W×3 (uint8, or float in [0, 1])."""
    if isinstance(item, Decoded):
        return item
    if not isinstance(item, np.ndarray):
        return Decoded(source, read_image(item, MAX_SIDE, max_pixels), image_size(item))
    if item.ndim != 3 or item.shape[2] != 3 or min(item.shape[:2]) == 0:
        raise ImageError(source, f"array must be H×W×3, got shape {item.shape}")
    image = item if item.dtype == np.uint8 else np.clip(item, 0, 1).astype(np.float32, copy=False)
    return Decoded(source, np.ascontiguousarray(reduced(image, MAX_SIDE)), (item.shape[1], item.shape[0]))
