"""The series route: CSV / Parquet files → the default series detector against the reference (a separate
normal recording, or each series' own start) → a `Finding` per file, the anomalous windows as its place."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..routes import Finding, register_route
from .inspection import DetectOptions, ReadOptions, fixed_detector, inspect_series, result_record
from .load import series_failure


@register_route
class Series:
    name = "series"
    suffixes = (".csv", ".parquet", ".pq")

    def __init__(self, read: ReadOptions = ReadOptions(), options: DetectOptions = DetectOptions()):
        self.read, self.options = read, options

    def inspect(self, paths: Sequence[Path], reference: Path | None) -> Iterator[Finding]:
        fixed = fixed_detector(self.read.load(reference), self.options) if reference is not None else None
        for path in paths:
            try:
                result = inspect_series(self.read.load(path), self.options, fixed)
            except Exception as error:  # noqa: BLE001 - this file's failure alone, named
                yield Finding(str(path), self.name, False, error=series_failure(str(path), error))
                continue
            record = result_record(result)
            windows = ", ".join(f"{w['start_time']} to {w['end_time']}" for w in record.get("windows", []))
            answer = record["answers"]["Is anything wrong?"]
            yield Finding(
                str(path), self.name, True, result.anomalous, result.probability, windows, answer, None, record
            )
