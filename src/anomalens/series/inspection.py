"""One series inspected from options: what `anomalens series detect` and the server's `/v1/series/inspect`
both call, so the detector is set up in one place and the front ends only format.

The normal reference is a separate recording (`reference`) or the series' own start: its first
`reference_rows` rows, its rows up to `reference_until`, or its first `reference_fraction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..language.criteria import Criteria
from .answers import answer_series, series_findings
from .detector import SeriesDetector, SeriesResult
from .load import Series, load_series, reference_length
from .registry import DEFAULT_DETECTOR

QUESTIONS = ("Is anything wrong?", "When?", "Which sensor?", "How sure are you?", "What does normal look like?")


@dataclass(frozen=True)
class ReadOptions:
    """How a file is read: the time column, the value columns (default: all but time and labels), columns
    left out, and the CSV delimiter (default: sniffed)."""

    time_column: str | None = None
    columns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    delimiter: str | None = None

    def load(self, path: str | Path) -> Series:
        return load_series(
            path, self.time_column, list(self.columns) or None, exclude=self.exclude, delimiter=self.delimiter
        )


@dataclass(frozen=True)
class DetectOptions:
    detector: str = DEFAULT_DETECTOR
    reference_fraction: float = 0.2
    reference_rows: int | None = None
    reference_until: str | None = None
    max_reference_alarms: int | None = None  # a count: at most this many alarms on each channel's reference


def fixed_detector(reference: Series, options: DetectOptions) -> SeriesDetector:
    """A detector fitted once on a separate normal recording, for every file."""
    return SeriesDetector(reference, options.detector, options.max_reference_alarms)


def inspect_series(series: Series, options: DetectOptions, fixed: SeriesDetector | None = None) -> SeriesResult:
    """Inspect a series against `fixed`, or against its own start as the options choose it."""
    if fixed is not None:
        return fixed.inspect(series)
    n = reference_length(series, options.reference_fraction, options.reference_rows, options.reference_until)
    own = SeriesDetector(series.rows(0, n), options.detector, options.max_reference_alarms)
    return own.inspect(series, starts_with_reference=True)


def result_record(result: SeriesResult, criteria: Criteria | None = None) -> dict:
    """The result as a record: its fields, where the reference came from and the grounded answers."""
    findings = series_findings(result, result.reference_points, criteria)
    n = result.reference_points
    return {
        "ok": True,
        **result.to_dict(),
        "reference": f"first {n} points" if result.own_reference else f"{n} points of the separate reference",
        "answers": {q: answer_series(q, findings) for q in QUESTIONS},
    }
