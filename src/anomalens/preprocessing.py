"""Images as the experts see them: decoding (a little ahead, on a worker thread), batching in input order,
and the pixels themselves, in numpy (the torch-free ONNX runtime shares it; the torch tensors are made in
`pixels`): how an image is laid out as square network inputs (`Layout`: squashed whole, aspect kept, or tiled
at a stated scale) and the tiles (their maps are stitched back into one map in `stitching`).

An unreadable image never stops a stream: it comes through as a (source, ImageError) pair in its place."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    images: Iterable[ImageInput], size: int, max_pixels: int | None = None, max_side: int | None = MAX_SIDE
) -> Iterator[list[Decoded] | Unreadable]:
    """Decoded batches of up to `size`, in input order; an unreadable image closes the batch before it and
    comes on its own as a (source, error) pair."""
    batch: list[Decoded] = []
    for source, loaded in decode_ahead(images, depth=2 * size, max_pixels=max_pixels, max_side=max_side):
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
    images: Iterable[ImageInput], depth: int, max_pixels: int | None = None, max_side: int | None = MAX_SIDE
) -> Iterator[tuple[str, Decoded | ImageError]]:
    """(source, the decoded image or the ImageError) in input order, with at most `depth` images decoded ahead."""

    def load(item: ImageInput, source: str) -> Decoded | ImageError:
        try:
            return decode(item, source, max_pixels, max_side)
        except ImageError as error:
            return error
        except Exception as error:  # noqa: BLE001 - whatever else one image raises is that image's error alone
            return ImageError(source, f"could not be decoded ({failure(error)})")

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


def failure(error: BaseException) -> str:
    """An unexpected exception as a reason a person reads: its type and message."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def decode(item: ImageInput, source: str, max_pixels: int | None = None, max_side: int | None = MAX_SIDE) -> Decoded:
    """A path is decoded at most `max_side` a side (None: at full size, for tiles at native scale; refused
    from its header above `max_pixels`); an array must already be H×W×3 (uint8, or float in [0, 1])."""
    if isinstance(item, Decoded):
        return item
    if not isinstance(item, np.ndarray):
        return Decoded(source, read_image(item, max_side, max_pixels), image_size(item))
    if item.ndim != 3 or item.shape[2] != 3 or min(item.shape[:2]) == 0:
        raise ImageError(source, f"array must be H×W×3, got shape {item.shape}")
    finite = item if item.dtype == np.uint8 else np.nan_to_num(item, nan=0.0, posinf=1.0, neginf=0.0)
    image = finite if finite.dtype == np.uint8 else np.clip(finite, 0, 1).astype(np.float32, copy=False)
    return Decoded(source, np.ascontiguousarray(reduced(image, max_side)), (item.shape[1], item.shape[0]))


SQUASH, ASPECT = "squash", "aspect"  # the layouts that read the whole image at the input size
AUTO = "auto"  # fitting chooses the scale (`Inspector.fit`); a fitted model always holds a concrete one
MAX_CANVAS_PIXELS = 1 << 24  # an image stretched to tiles (short side raised to one) holds at most this many
# pixels (192 MB as float RGB): images longer than 256 : 1 at 256-px tiles are squeezed along their long side
OVERLAP = 0.25  # share of a tile that its neighbour covers too: defects at a tile's border are seen whole


def checked_scale(scale: str | float, auto: bool = False) -> str | float:
    """A layout's scale, once it is one: "squash", "aspect" or a factor above 0 and at most 64 (also written
    as text, as on the command line); with `auto`, also "auto" (a scale fitting will choose)."""
    names = (SQUASH, ASPECT, AUTO) if auto else (SQUASH, ASPECT)
    if isinstance(scale, str) and scale not in names:
        try:
            scale = float(scale)
        except ValueError:
            raise ValueError(
                f"scale must be {', '.join(names)} or a number (1: native pixels), not {scale!r}"
            ) from None
    if isinstance(scale, str):
        return scale
    if not 0 < scale <= 64:
        raise ValueError(f"scale must be a factor above 0 and at most 64, not {scale}")
    return float(scale)


@dataclass(frozen=True)
class Layout:
    """How an image becomes square network inputs of `size` pixels a side. `scale`:
    - "squash": the whole image resized to size × size (its aspect ratio lost; `pixel_batch`'s layout);
    - "aspect": resized so its short side is `size`, aspect kept; overlapping tiles cover the long side;
    - a number: resized by that factor (1.0: native pixels) and cut into overlapping size × size tiles.
    A side shorter than a tile is scaled up to one, so every tile lies wholly inside the image: no padding,
    and no pixel outside the image is ever scored; the long side then grows at most to MAX_CANVAS_PIXELS."""

    size: int
    scale: str | float = SQUASH

    @property
    def max_side(self) -> int | None:
        """How large images are decoded: at most MAX_SIDE a side when they are resized to the input size,
        whole for a stated scale (which `max_pixels` still bounds)."""
        return MAX_SIDE if isinstance(self.scale, str) else None

    def plan(self, decoded: Decoded) -> TilePlan:
        """Where one decoded image's tiles lie on its canvas (the image resized to this layout's scale)."""
        h, w = decoded.image.shape[:2]
        if self.scale == SQUASH:
            canvas = (self.size, self.size)
        else:
            # a stated scale is relative to the image as given, which decoding may have reduced
            stated = 0.0 if self.scale == ASPECT else float(self.scale) * decoded.size[0] / w
            factor = max(stated, self.size / min(h, w))
            # Raising the short side to a tile stretches the long side with it: a 20 × 4000 strip would become
            # 256 × 51,200 and a 1 × 2048 line 256 × 524,288 (1.6 GB as float, thousands of tiles). Past
            # MAX_CANVAS_PIXELS, the long side is squeezed instead, never below what the stated scale gives.
            longest = max(MAX_CANVAS_PIXELS // self.size, round(max(h, w) * stated))
            canvas = (
                min(max(self.size, round(h * factor)), longest),
                min(max(self.size, round(w * factor)), longest),
            )
        origins = tuple((y, x) for y in tile_starts(canvas[0], self.size) for x in tile_starts(canvas[1], self.size))
        return TilePlan(canvas, origins, self.size)


@dataclass(frozen=True)
class TilePlan:
    canvas: tuple[int, int]  # (height, width) of the image at the layout's scale
    origins: tuple[tuple[int, int], ...]  # each tile's top-left corner on the canvas, row by row
    size: int  # a tile's side

    def tiles(self, image: np.ndarray, mode: str = "bilinear") -> Iterator[np.ndarray]:
        """The image's tiles as (3, size, size) float32 in [0, 1], one at a time. At native scale they are cut
        from the decoded image directly (never a float copy of all of it); otherwise from the resized canvas."""
        if image.shape[:2] == self.canvas:
            for y, x in self.origins:
                yield as_float(image[y : y + self.size, x : x + self.size]).transpose(2, 0, 1)
            return
        canvas = resized(as_float(image), self.canvas, mode)
        for y, x in self.origins:
            yield np.ascontiguousarray(canvas[:, y : y + self.size, x : x + self.size])


def candidate_scales(short_side: int, long_side: int, size: int) -> list[str | float]:
    """The layouts `--scale auto` tries, cheapest first: the squashed image, the aspect-kept one (when the
    image is not square), then factors doubling from the aspect-kept one's up to native pixels (1.0)."""
    candidates: list[str | float] = [SQUASH, ASPECT] if long_side > short_side else [SQUASH]
    factor = size / short_side
    while factor < 1.0:
        factor = min(1.0, 2 * factor)
        candidates.append(round(factor, 4))
    return candidates


def tile_starts(length: int, tile: int, overlap: float = OVERLAP) -> list[int]:
    """Tile positions along one side: evenly spread from 0 to the end, neighbours overlapping by at least
    `overlap` of a tile; the last tile ends exactly at the side's end (sides need not be multiples of it)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile * (1 - overlap))) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]
