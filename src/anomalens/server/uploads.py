"""Uploaded images, checked before anything trusts them: size, pixel count and real decoding (by content,
never by the file name's extension). Uploads live in a private temporary folder under names the server
chooses; a client never names a path on disk."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import ImageError, load_image


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # width × height of one image
    max_files: int = 64


@dataclass
class Upload:
    name: str  # the client's file name, for messages only
    image: np.ndarray | None = None  # H×W×3 float in [0, 1]
    error: str | None = None


def read_uploads(files: list[tuple[str, bytes]], limits: Limits) -> list[Upload]:
    """Decode each (client name, bytes); a bad one gets `error` set and the others go on."""
    out = []
    with tempfile.TemporaryDirectory(prefix="anomalens-upload-") as folder:
        for i, (name, data) in enumerate(files):
            out.append(_read_one(Path(folder) / f"upload-{i}", _display_name(name, i), data, limits))
    return out


def _read_one(path: Path, name: str, data: bytes, limits: Limits) -> Upload:
    if not data:
        return Upload(name, error="empty file (0 bytes)")
    if len(data) > limits.max_file_bytes:
        return Upload(name, error=f"file too large ({len(data)} bytes; the limit is {limits.max_file_bytes})")
    path.write_bytes(data)
    try:
        with Image.open(path) as header:  # reads the header only: refuse huge images before decoding them
            width, height = header.size
        if width * height > limits.max_pixels:
            return Upload(
                name, error=f"image too large ({width} × {height} pixels; the limit is {limits.max_pixels} pixels)"
            )
    except Exception:  # noqa: BLE001 - not readable by Pillow's header parser; load_image says why below
        pass
    try:
        return Upload(name, image=load_image(path))
    except ImageError as error:
        return Upload(name, error=error.reason)


def _display_name(name: str | None, index: int) -> str:
    """The client's base name, trimmed, for messages (never used as a path)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:120] or f"file {index + 1}"
