"""Images as the experts see them: decoding (a little ahead, on a worker thread), batching in input order,
and the pixel batch itself (resized to the input size, in numpy: the torch-free ONNX runtime shares it; the
torch tensors are made in `pixels`). Resolution choices (aspect, tiles) belong here.

An unreadable image never stops a stream: it comes through as a (source, ImageError) pair in its place."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data import ImageError, as_float, image_size, read_image, reduced
from .resampling import resized

Unreadable = tuple[str, ImageError]
MAX_SIDE = 2048  # images are decoded (and kept) at most this many pixels a side: plenty for 256-px inputs and
# maps upsampled from a 32 × 32 grid, and a 36-megapixel upload then holds 12 MB as uint8, not 430 MB as float32


class Decoded(NamedTuple):
    source: str
    image: np.ndarray  # H×W×3, uint8 (8-bit files, uint8 arrays) or float32 in [0, 1]; at most MAX_SIDE a side
    size: tuple[int, int]  # (width, height) of the image as given, before any reduction


ImageInput = str | Path | np.ndarray | Decoded  # a file, an H×W×3 array, or an image decoded already (uploads)


def pixel_batch(images: Sequence[np.ndarray], size: int, mode: str = "bilinear") -> np.ndarray:
    """H×W×3 images (uint8, or float in [0, 1]) → (B, 3, size, size) float32 in [0, 1] (`resampling.resized`);
    each image becomes float only here, one at a time."""
    return np.stack([resized(as_float(image), size, mode) for image in images])


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
