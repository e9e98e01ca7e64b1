"""Reading images and ground-truth masks into plain numpy arrays.

Every way a file can be unusable ends in one ImageError that names the file
and says what is wrong, so a bad file in a folder of thousands is easy to find.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

# Little- and big-endian classic TIFF, then BigTIFF: sniffed so that a file
# is routed by what it holds, not by what it is called.
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# What Pillow raises for broken files: OSError for most decoders, SyntaxError
# and ValueError for malformed headers, EOFError for some short files.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class ImageError(ValueError):
    """An image or mask file that cannot be used, and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # The default rebuilds from args (the message alone), which would fail
        # when the error crosses a process boundary, e.g. from a data worker.
        return type(self), (self.path, self.reason)


def load_image(path: str | Path) -> np.ndarray:
    """Return the image as a C-contiguous float32 H×W×3 array in [0, 1].

    Grey is replicated to three channels and transparency is composited over
    black, so every caller sees the same layout whatever the file held.
    """
    path = _readable_file(path)
    tiff = _read_tiff(path)
    if tiff is not None:
        rgb = _tiff_rgb(tiff)
    else:
        # Cameras store pixels as shot plus an orientation tag; show them upright.
        rgb = _read_with_pil(path, lambda img: _pil_rgb(ImageOps.exif_transpose(img)))
    return _non_empty(path, rgb)


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Return a bool H×W mask, True wherever any colour channel is non-zero.

    Non-zero rather than 255 because VisA masks hold label ids and some sets
    ship RGB masks. `shape` is the (H, W) of the image the mask belongs to.
    """
    path = _readable_file(path)
    tiff = _read_tiff(path)
    if tiff is not None:
        mask = (tiff.samples[..., : tiff.colours] != 0).any(axis=2)
    else:
        mask = _read_with_pil(path, _mask_pixels)
    _non_empty(path, mask)
    if shape is not None and mask.shape != tuple(shape):
        (h, w), (image_h, image_w) = mask.shape, shape
        raise ImageError(path, f"mask is {w}x{h} but its image is {image_w}x{image_h} (width x height)")
    return mask


def _readable_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "file not found")
    if not path.is_file():
        raise ImageError(path, "not a file")
    if path.stat().st_size == 0:
        raise ImageError(path, "file is empty (0 bytes)")
    return path


def _non_empty(path: Path, array: np.ndarray) -> np.ndarray:
    if 0 in array.shape[:2]:
        raise ImageError(path, "image has no pixels (zero width or height)")
    return array


def _is_tiff(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) in _TIFF_MAGIC


@dataclass(frozen=True)
class _TiffPixels:
    samples: np.ndarray  # H×W×S, colour samples first
    colours: int  # 1 for grey, 3 for RGB
    straight_alpha: bool  # whether sample `colours` is unpremultiplied alpha


def _read_tiff(path: Path) -> _TiffPixels | None:
    """Samples of a grey or RGB TIFF via tifffile, since Pillow mishandles 16-bit RGB.

    Returns None for anything else (palette, CMYK, volumes, broken files) so
    that Pillow gets its turn and, if it fails too, explains the problem.
    """
    if not _is_tiff(path):
        return None
    photometric = tifffile.PHOTOMETRIC
    try:
        with tifffile.TiffFile(path) as tif:
            page = cast(tifffile.TiffPage, tif.pages[0])  # the first page is never a frame
            if page.photometric not in (photometric.MINISBLACK, photometric.RGB):
                return None
            colours = 1 if page.photometric == photometric.MINISBLACK else 3
            array, axes, extra = page.asarray(), page.axes, page.extrasamples
    except Exception:  # tifffile raises many error types; Pillow reports instead
        return None
    if "S" in axes:
        array = np.moveaxis(array, axes.index("S"), -1)
    elif array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] < colours:
        return None
    # Premultiplied colour is already the composite over black, and
    # unspecified extra samples are not alpha: only straight alpha is applied.
    straight = array.shape[2] > colours and extra[:1] == (tifffile.EXTRASAMPLE.UNASSALPHA,)
    return _TiffPixels(array, colours, straight)


def _tiff_rgb(tiff: _TiffPixels) -> np.ndarray:
    values = _unit_range(tiff.samples)
    alpha = values[..., tiff.colours] if tiff.straight_alpha else None
    return _rgb(values[..., : tiff.colours], alpha)


def _unit_range(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "ui":
        return array.astype(np.float32) / np.iinfo(array.dtype).max
    return array.astype(np.float32)  # floats and bools; _rgb clips floats


def _read_with_pil(path: Path, to_array: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()  # decoding is lazy; truncation only surfaces here
            return to_array(img)
    except _PIL_ERRORS as error:
        raise ImageError(path, _describe(error)) from error


def _describe(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not a readable image (format not recognised)"
    if "truncated" in str(error):
        return "image data is truncated"
    if isinstance(error, OSError) and error.strerror:
        return f"cannot read file ({error.strerror})"
    return f"not a readable image ({error})"


def _pil_rgb(img: Image.Image) -> np.ndarray:
    if img.mode.startswith("I"):  # 16-bit grey opens as "I;16" or "I"
        return _rgb(np.asarray(img, dtype=np.float32)[..., None] / 65535)
    if img.mode == "F":
        return _rgb(np.asarray(img, dtype=np.float32)[..., None])
    if "A" in img.getbands() or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255
        return _rgb(rgba[..., :3], rgba[..., 3])
    # Covers grey, bilevel, palette, CMYK, YCbCr and LAB alike.
    return _rgb(np.asarray(img.convert("RGB"), dtype=np.float32) / 255)


def _rgb(colour: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """H×W×1 or H×W×3 values plus optional alpha → H×W×3 over black."""
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if alpha is not None:
        colour = colour * alpha[..., None]
    return np.ascontiguousarray(np.clip(colour, 0.0, 1.0), dtype=np.float32)


def _mask_pixels(img: Image.Image) -> np.ndarray:
    # Palette masks stay as indices: index 0 is background whatever its colour.
    array = np.asarray(img)
    if array.ndim == 2:
        return array != 0
    if "A" in img.getbands():
        array = array[..., :-1]  # alpha says where the drawing is opaque, not what it marks
    return (array != 0).any(axis=2)
