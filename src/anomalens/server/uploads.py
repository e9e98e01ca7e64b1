"""Uploaded images, checked before anything trusts them: size, pixel count and real decoding (by content,
never by the file name's extension). Uploads live in a private temporary folder under names the server
chooses; a client never names a path on disk.

Memory is bounded by design: an image is refused from its header above `max_pixels`; it is decoded as
uint8 and reduced at once to at most MAX_SIDE a side (the working copy is all that is kept); and decodes
across all requests wait for each other so that at most `pixels_in_flight` full-size pixels are being
decoded at any time. Peak memory ≈ the service at rest + 2 × 3 bytes × pixels_in_flight (the decoded
image and its reduced copy) + 3 bytes × MAX_SIDE² per file a request holds + the conversations' pictures
(`service.conversations.MAX_BYTES`)."""

from __future__ import annotations

import ctypes
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..data import ImageError, image_size, read_image
from ..preprocessing import MAX_SIDE, Decoded

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # width × height of one image
    max_files: int = 64
    pixels_in_flight: int = 80_000_000  # full-size pixels decoded at once, all requests together


class PixelBudget:
    """Admission for decoding: a decode of n pixels waits until n fit in the budget (a single image larger
    than the whole budget waits for it to be empty)."""

    def __init__(self, pixels: int):
        self.pixels, self._used = pixels, 0
        self._free = threading.Condition()

    @contextmanager
    def admit(self, pixels: int):
        pixels = min(pixels, self.pixels)
        with self._free:
            self._free.wait_for(lambda: self._used + pixels <= self.pixels)
            self._used += pixels
        try:
            yield
        finally:
            with self._free:
                self._used -= pixels
                self._free.notify_all()


def return_freed_memory() -> None:
    """Make glibc hand large freed blocks back to the system: by default it raises its mmap threshold as big
    blocks are freed, after which a decoded image's memory stays with the process (RSS never falls). A fixed
    threshold keeps every block over 1 MB mapped and unmapped. Elsewhere than glibc this does nothing."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


_budgets: dict[int, PixelBudget] = {}
_budgets_lock = threading.Lock()


def budget(limits: Limits) -> PixelBudget:
    """The process-wide budget for these limits (every request of one service shares it)."""
    with _budgets_lock:
        return _budgets.setdefault(limits.pixels_in_flight, PixelBudget(limits.pixels_in_flight))


@dataclass
class Upload:
    name: str  # the client's file name, for messages only
    image: Decoded | None = None  # at most MAX_SIDE a side, with the size it was uploaded at
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
    try:  # the pixel limit is checked on the header (TIFF included), before anything is decoded
        width, height = image_size(path)
        with budget(limits).admit(width * height):
            return Upload(name, image=Decoded(name, read_image(path, MAX_SIDE, limits.max_pixels), (width, height)))
    except ImageError as error:
        return Upload(name, error=error.reason)


def _display_name(name: str | None, index: int) -> str:
    """The client's base name, trimmed, for messages (never used as a path)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:120] or f"file {index + 1}"
