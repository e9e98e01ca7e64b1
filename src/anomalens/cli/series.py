"""Series commands behind `anomalens detect --series` and `anomalens eval --series`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from ..language.criteria import Criteria
from ..series import SeriesDetector, SeriesFormatError, load_series, series_failure, split_reference
from ..series.answers import answer_series, series_findings
from ..series.evaluation import evaluate_nab_layout
from ..series.plot import plot_series
from .common import console, fail, warn
from .records import unrecorded

if TYPE_CHECKING:
    from ..records import RecordStore

QUESTIONS = ("Is anything wrong?", "When?", "Which sensor?", "How sure are you?", "What does normal look like?")


def detect_series(
    files: list[Path],
    out: Path,
    reference: Path | None,
    reference_fraction: float,
    columns: list[str] | None,
    time_column: str | None,
    max_false_alarms: int | None,
    criteria: Criteria | None,
    store: RecordStore | None = None,
) -> int:
    """Inspect each series file: JSON (result, findings, answers) and a PNG plot per file, and with `store`
    its record (the file, verdict, score, windows; a file that failed too, with why); returns how many failed."""
    fixed: SeriesDetector | None = None
    if reference is not None:
        try:
            fixed = SeriesDetector(load_series(reference, time_column, columns), max_false_alarms)
        except (SeriesFormatError, ValueError) as error:
            fail(f"reference: {error}")
    out.mkdir(parents=True, exist_ok=True)
    records, failed = [], 0
    table = Table("series", "verdict", "probability", "windows", "first window")
    for path in files:
        try:
            record, row = _inspected_series(
                path, out, fixed, reference_fraction, columns, time_column, max_false_alarms, criteria
            )
        except Exception as error:  # noqa: BLE001 - one file's failure, whatever it is, is its own error
            message = series_failure(path, error)
            for written in (out / f"{path.stem}.png", out / f"{path.stem}.json"):
                written.unlink(missing_ok=True)
            warn(message, "skipped")
            record, failed = {"source": str(path), "ok": False, "error": message}, failed + 1
        else:
            table.add_row(*row)
        if store is not None:
            _keep(store, path, record)
        records.append(record)
    (out / "results.json").write_text(json.dumps(records, indent=2))
    console.print(table)
    kept = f"; {len(records)} records in {escape(repr(store))}" if store is not None else ""
    console.print(f"results and plots in {escape(str(out))}{kept}")
    return failed


def _keep(store: RecordStore, path: Path, record: dict) -> None:
    """The file's record, committed before the next file is inspected."""
    from ..records import series_record

    try:
        store.add_series(series_record(record, source=str(path.resolve())))
    except Exception as error:  # noqa: BLE001 - an audit trail with a hole is no audit trail: stop
        unrecorded(store, path, error)


def _inspected_series(
    path: Path,
    out: Path,
    fixed: SeriesDetector | None,
    reference_fraction: float,
    columns: list[str] | None,
    time_column: str | None,
    max_false_alarms: int | None,
    criteria: Criteria | None,
) -> tuple[dict, list[str]]:
    """One series file inspected, its plot and JSON written: its record and its table row."""
    series = load_series(path, time_column, columns)
    detector, own_reference = fixed, False
    if detector is None:
        ref, _ = split_reference(series, reference_fraction)
        detector, own_reference = SeriesDetector(ref, max_false_alarms), True
    result = detector.inspect(series, starts_with_reference=own_reference)
    record = _record(result, detector.reference_points, own_reference, criteria)
    plot = plot_series(result, out / f"{path.stem}.png", detector.reference_points if own_reference else 0)
    record["plot"] = str(plot)
    (out / f"{path.stem}.json").write_text(json.dumps(record, indent=2))
    first = result.windows[0] if result.windows else None
    row = [
        escape(path.name),
        "anomalous" if result.anomalous else "normal",
        f"{result.probability:.0%}",
        str(len(result.windows)),
        escape(f"{series.time_text(first.start)}: {first.description}") if first else "",
    ]
    return record, row


def _record(result, reference_points: int, own_reference: bool, criteria: Criteria | None) -> dict:
    findings = series_findings(result, reference_points, criteria)
    return {
        "ok": True,
        **result.to_dict(),
        "reference": f"first {reference_points} points"
        if own_reference
        else f"{reference_points} points of --reference",
        "answers": {q: answer_series(q, findings) for q in QUESTIONS},
    }


def evaluate_series(root: Path, out: Path) -> None:
    """`anomalens eval --series ROOT`: per-file and total windows found and false alarms; metrics.json."""
    try:
        rows = evaluate_nab_layout(root)
    except (FileNotFoundError, SeriesFormatError, ValueError) as error:
        fail(str(error))
    if not rows:
        fail(f"{root}: labels/combined_windows.json lists no file")
    out.mkdir(parents=True, exist_ok=True)
    points, seconds = sum(r["points"] for r in rows), sum(r["seconds"] for r in rows)
    total = {
        "files": len(rows),
        "windows": sum(r["windows"] for r in rows),
        "found": sum(r["found"] for r in rows),
        "false_alarms": sum(r["false_alarms"] for r in rows),
        "seconds_per_10k_points": round(10_000 * seconds / max(points, 1), 3),
    }
    (out / "metrics.json").write_text(json.dumps({"total": total, "files": rows}, indent=2))
    table = Table("file", "points", "windows", "found", "false alarms", title="AnomaLens eval --series (streaming)")
    for r in rows:
        table.add_row(escape(r["file"]), str(r["points"]), str(r["windows"]), str(r["found"]), str(r["false_alarms"]))
    console.print(table)
    console.print(
        f"{total['found']} of {total['windows']} windows found, {total['false_alarms']} false alarms, "
        f"{total['seconds_per_10k_points']} s per 10,000 points; metrics in {escape(str(out / 'metrics.json'))}"
    )
