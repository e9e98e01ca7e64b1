"""What goes into a record and how it is written: times read from what a person types, file hashes, verdicts,
a record made from a result's JSON, and values made storable (plain JSON, no NUL characters)."""

from __future__ import annotations

import hashlib
import math
import os
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..result import file_version

VERDICTS = ("anomalous", "normal", "error")


def parse_time(value: str | float | int | datetime | None, name: str = "time") -> float | None:
    """Seconds since the epoch from a number of seconds, an ISO 8601 time (UTC unless it says otherwise) or a
    datetime; None stays None. Numbers beyond any time become ±infinity (they match nothing, or everything)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bool):
        raise ValueError(f"{name}: not a time: {value!r}")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        seconds = value
    else:
        try:
            seconds = float(value)
        except ValueError:
            try:
                return parse_time(datetime.fromisoformat(value.strip()), name)
            except ValueError:
                raise ValueError(
                    f"{name}: not a time: {value[:80]!r} (give seconds since 1970 or an ISO 8601 time)"
                ) from None
    if math.isnan(seconds):
        raise ValueError(f"{name}: not a time: {value!r}")
    return seconds


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


_hashes: dict[tuple[str, int, int], str] = {}
_hashes_lock = threading.Lock()


def sha256_file(path: str | os.PathLike) -> str:
    """The file's SHA-256 (hex), remembered while its size and modification time stay the same."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _hashes_lock:
        if key in _hashes:
            return _hashes[key]
    digest = file_version(path)
    with _hashes_lock:
        _hashes[key] = digest
    return digest


def run_key(run: str, image: str, image_sha256: str | None, model_version: str | None) -> str:
    """What makes an inspection one of its run's: the run, the image (path and content) and the model version.
    A run that writes it again (a rerun after a driver died between a batch's records and its Parquet file)
    gives the same key, and the records keep the first."""
    parts = (run, image, image_sha256 or "", model_version or "")
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def default_station() -> str:
    return os.environ.get("ANOMALENS_STATION") or socket.gethostname()


def verdict_of(result: Mapping) -> str:
    if not result.get("ok", result.get("error") is None):
        return "error"
    return "anomalous" if result.get("anomalous") else "normal"


def inspection_record(result: Mapping, **fields: Any) -> dict:
    """A record from an inspection result's JSON (`InspectionResult.to_dict()` and what an interface adds:
    its answer, the file) and the fields it does not hold (model, image hash, station, findings, …)."""
    result = jsonable(dict(result))
    record = {
        "source": str(result.get("file") or result.get("source") or ""),
        "expert": result.get("expert") or "",
        "verdict": verdict_of(result),
        "score": result.get("score"),
        "probability": result.get("probability"),
        "confidence": result.get("confidence"),
        "location": result.get("location") or "",
        "error": result.get("error"),
        "regions": result.get("regions") or [],
        "result": result,
    }
    return record | fields


def series_record(result: Mapping, **fields: Any) -> dict:
    """A series record from a series result's JSON (`SeriesResult.to_dict()` and what an interface adds: the
    file, its answers; a file that could not be inspected: `ok` false and its `error`) and other fields."""
    result = jsonable(dict(result))
    record = {
        "source": str(result.get("file") or result.get("source") or ""),
        "verdict": verdict_of(result),
        "score": result.get("peak_score"),
        "probability": result.get("probability"),
        "error": result.get("error"),
        "windows": result.get("windows") or [],
        "result": result,
    }
    return record | fields


def fitting(row: dict[str, Any], table) -> dict[str, Any]:
    """The row, its text checked against the table's column lengths: a value too long is an error naming the
    field (PostgreSQL refuses it, SQLite would keep it: the two never differ)."""
    for column in table.columns:
        length, value = getattr(column.type, "length", None), row.get(column.name)
        if length and isinstance(value, str) and len(value) > length:
            raise ValueError(f"{column.name}: {len(value)} characters, at most {length}")
    return row


def finite(value: Any) -> float | None:
    """A number kept as a float, or None where there is none (NaN and infinities included)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


def clean(value: Any) -> Any:
    """Text that every database stores: NUL characters (PostgreSQL refuses them; a file name could hold one)
    and lone surrogates (no driver encodes them; a JSON string could hold one) each become U+FFFD."""
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "\ufffd")
    return value if value.isascii() else value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def jsonable(value: Any) -> Any:
    """Plain JSON: numpy numbers and arrays as Python ones, tuples as lists, non-finite floats as None
    (neither JSON nor PostgreSQL's json type has them), NUL characters replaced."""
    if isinstance(value, Mapping):
        return {str(clean(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean(value)
    if value is None or isinstance(value, bool | int):
        return value
    return clean(str(value))
