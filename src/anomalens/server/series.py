"""The series part of the HTTP service: uploaded CSV/Parquet bytes → `SeriesDetector` → result, grounded
answers and the plot; findings kept (bounded) so later questions are answered from them."""

from __future__ import annotations

import base64
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from ..language.models import LanguageModel
from ..series import SeriesDetector, SeriesResult, load_series, split_reference
from ..series.answers import SeriesChat, series_findings
from ..series.plot import plot_series

MAX_KEPT = 256  # series findings kept for chat (oldest dropped)


def _load(name: str, data: bytes, columns: list[str] | None):
    suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in (".csv", ".parquet", ".pq") else ".csv"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return load_series(path, columns=columns or None)
        except ValueError as error:  # name the upload, not the temporary file
            raise ValueError(str(error).replace(str(path), name or "upload")) from None


def inspect_upload(
    name: str, data: bytes, reference: tuple[str, bytes] | None, fraction: float, columns: list[str] | None
) -> tuple[SeriesResult, int]:
    """(result, reference points); raises ValueError with a message for the client."""
    series = _load(name, data, columns)
    if reference is not None:
        detector = SeriesDetector(_load(reference[0], reference[1], columns))
        return detector.inspect(series), detector.reference_points
    ref, _ = split_reference(series, fraction)
    detector = SeriesDetector(ref)
    return detector.inspect(series, starts_with_reference=True), detector.reference_points


def plot_png(result: SeriesResult, reference_points: int, own_reference: bool) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = plot_series(result, Path(folder) / "plot.png", reference_points if own_reference else 0)
        return base64.b64encode(path.read_bytes()).decode()


class SeriesChats:
    """Chats about inspected series, the oldest dropped beyond `max_kept`; answered by the service's language
    model (guarded) when it has one, else by the grounded composer."""

    def __init__(self, model: LanguageModel | None = None, max_kept: int = MAX_KEPT):
        self.model, self.max_kept = model, max_kept
        self._kept: OrderedDict[str, SeriesChat] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, result: SeriesResult, reference_points: int) -> SeriesChat:
        chat = SeriesChat(series_findings(result, reference_points), self.model)
        with self._lock:
            self._kept[key] = chat
            while len(self._kept) > self.max_kept:
                self._kept.popitem(last=False)
        return chat

    def get(self, key: str) -> SeriesChat | None:
        with self._lock:
            return self._kept.get(key)
