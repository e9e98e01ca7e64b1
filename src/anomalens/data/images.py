"""Reading images and ground-truth masks into plain numpy arrays.

Every way a file can be unusable ends in one ImageError that names the file
and says what is wrong, so a bad file in a folder of thousands is easy to find.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
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
    return as_float(read_image(path))


def read_image(path: str | Path, max_side: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Return the image as a C-contiguous H×W×3 array: uint8 for 8-bit grey and colour files (a quarter of
    float32's memory, and the same values once divided by 255), float32 in [0, 1] for anything else.

    With `max_side`, a larger image comes back reduced (box-averaged by a whole factor) to at most that
    many pixels a side, decoded at the reduced size where the format allows (JPEG). With `max_pixels`,
    an image with more pixels is refused from its header, before anything is decoded."""
    path = _readable_file(path)
    if max_pixels is not None:
        width, height = image_size(path)
        if width * height > max_pixels:
            raise ImageError(path, f"image too large ({width} × {height} pixels; the limit is {max_pixels} pixels)")
    tiff = _read_tiff(path)
    if tiff is not None:  # reduced in its own samples first: no full-size float copy
        return _non_empty(path, _tiff_rgb(replace(tiff, samples=reduced(tiff.samples, max_side))))
    # Cameras store pixels as shot plus an orientation tag; show them upright.
    return _non_empty(path, _read_with_pil(path, _pil_rgb, max_side, upright=True))


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the upright image from the file's header alone, for every format read here (TIFF
    through tifffile, which reads headers Pillow cannot, such as float32 samples)."""
    path = _readable_file(path)
    if _is_tiff(path):
        import tifffile  # here, not above: only TIFFs need it (the ONNX runtime reads the rest with Pillow)

        try:
            with tifffile.TiffFile(path) as tif:
                page = cast(tifffile.TiffPage, tif.pages[0])
                return int(page.imagewidth), int(page.imagelength)
        except Exception:  # noqa: BLE001 - tifffile raises many error types; Pillow may still read it
            pass
    try:
        with Image.open(path) as img:
            width, height = img.size
            transposed = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that turn it a quarter
    except _PIL_ERRORS as error:
        raise ImageError(path, _describe(error)) from error
    return (height, width) if transposed else (width, height)


def as_float(image: np.ndarray) -> np.ndarray:
    """A decoded image as float32 in [0, 1] (uint8 ones divided by 255)."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image, dtype=np.float32) / 255.0
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image as uint8 (floats in [0, 1] rounded to 0 … 255), for pictures people see."""
    return image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


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
    import tifffile  # as in `image_size`

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


def _read_with_pil(
    path: Path, to_array: Callable[[Image.Image], np.ndarray], max_side: int | None = None, upright: bool = False
) -> np.ndarray:
    """Decoded by Pillow; `upright` applies the EXIF orientation; with `max_side`, reduced while decoding
    where the format allows (JPEG), else right after, by a whole factor."""
    try:
        with Image.open(path) as img:
            if max_side and max(img.size) > max_side:
                img.draft(img.mode, (max_side, max_side))  # JPEG decodes at 1/2, 1/4 or 1/8 scale
            img.load()  # decoding is lazy; truncation only surfaces here
            picture: Image.Image = ImageOps.exif_transpose(img) if upright else img
            factor = -(-max(picture.size) // max_side) if max_side else 1
            if factor > 1 and picture.mode.startswith("I;16"):
                picture = picture.convert("I")  # 16-bit grey: Pillow reduces it as 32-bit integers
            if factor > 1 and picture.mode == "1":
                picture = picture.convert("L")  # bilevel: Pillow cannot reduce it (nor does it stay bilevel)
            if factor > 1 and picture.mode in ("1", "L", "RGB", "RGBA", "LA", "I", "F"):
                picture = picture.reduce(factor)
            return reduced(to_array(picture), max_side)
    except _PIL_ERRORS as error:
        raise ImageError(path, _describe(error)) from error


def reduced(array: np.ndarray, max_side: int | None) -> np.ndarray:
    """H×W×C box-averaged by a whole factor so neither side exceeds `max_side` (no-op when it already fits),
    in its own dtype; the average accumulates in float32 chunk by chunk, never as a full-size float copy."""
    factor = -(-max(array.shape[:2]) // max_side) if max_side else 1
    if factor <= 1:
        return array
    # a side shorter than the factor (a 2 × 5000 strip) is averaged whole into one pixel, never to none
    fy, fx = min(factor, array.shape[0]), min(factor, array.shape[1])
    h, w = array.shape[0] // fy * fy, array.shape[1] // fx * fx
    blocks = array[:h, :w].reshape(h // fy, fy, w // fx, fx, -1).mean((1, 3), dtype=np.float32)
    return np.ascontiguousarray(blocks.round() if array.dtype.kind in "uib" else blocks, dtype=array.dtype)


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
    # Covers grey, bilevel, palette, CMYK, YCbCr and LAB alike; 8 bits stay uint8 (exactly the same values).
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _rgb(colour: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """H×W×1 or H×W×3 values plus optional alpha → H×W×3 over black. Float samples that are not numbers (a
    depth map's missing values) become black, infinite ones the range's ends: one NaN pixel would otherwise
    turn every feature, score and map of the image into NaN."""
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if alpha is not None:
        colour = colour * alpha[..., None]
    colour = np.nan_to_num(colour, nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray(np.clip(colour, 0.0, 1.0), dtype=np.float32)


def _mask_pixels(img: Image.Image) -> np.ndarray:
    # Palette masks stay as indices: index 0 is background whatever its colour.
    array = np.asarray(img)
    if array.ndim == 2:
        return array != 0
    if "A" in img.getbands():
        array = array[..., :-1]  # alpha says where the drawing is opaque, not what it marks
    return (array != 0).any(axis=2)
