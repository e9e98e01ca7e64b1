"""`anomalens series detect` and `anomalens series eval`: time series (CSV / Parquet), formatted here;
`series.inspection` sets up the detector, `series.output` writes the files."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..series.registry import DEFAULT_DETECTOR
from .common import app, console, fail, warn
from .files import fresh_output_dir
from .records import RecordsOpt, open_records, unrecorded

if TYPE_CHECKING:
    from ..language.criteria import Criteria
    from ..records import RecordStore
    from ..series.detector import SeriesDetector
    from ..series.inspection import DetectOptions, ReadOptions

series_app = typer.Typer(help="Time series (CSV or Parquet): detect anomalous windows, evaluate a detector.")
app.add_typer(series_app, name="series")

SUFFIXES = (".csv", ".parquet", ".pq")
DetectorOpt = Annotated[str, typer.Option(help="A registered series detector (reference, streaming, …).")]
OutOpt = Annotated[Optional[Path], typer.Option(help="Output folder (default: a new one under anomalens-out/).")]
OverwriteOpt = Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")]


def series_files(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files named, in folders (their CSV / Parquet files) or matched by globs; and what named none."""
    files, problems = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        elif path.exists():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        files += found
        if not found:
            problems.append(f"{item}: no such file, and no CSV or Parquet file in it or matching it")
    return files, problems


@series_app.command("detect")
def detect(
    inputs: Annotated[list[str], typer.Argument(metavar="FILES", help="CSV / Parquet files, folders or globs.")],
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    detector: DetectorOpt = DEFAULT_DETECTOR,
    reference: Annotated[Optional[Path], typer.Option(help="A file of normal data (default: each series' start).")] = None,
    reference_fraction: Annotated[float, typer.Option(min=0.01, max=0.9, help="The share of each series taken as normal.")] = 0.2,
    reference_rows: Annotated[Optional[int], typer.Option(min=8, help="The first N rows are normal (not the share).")] = None,
    reference_until: Annotated[Optional[str], typer.Option(help="The rows up to this time are normal (not the share).")] = None,
    column: Annotated[Optional[list[str]], typer.Option(help="Value column (repeatable; default: all but time and labels).")] = None,
    exclude_column: Annotated[Optional[list[str]], typer.Option(help="A column that is no channel (repeatable).")] = None,
    time_column: Annotated[Optional[str], typer.Option(help="The time column (default: found by name).")] = None,
    delimiter: Annotated[Optional[str], typer.Option(help="The CSV delimiter (default: sniffed, else a comma).")] = None,
    max_reference_alarms: Annotated[Optional[int], typer.Option(min=0, help="At most this many alarms (a count) on each channel's normal reference.")] = None,
    criteria: Annotated[Optional[Path], typer.Option(help="Normality criteria YAML (name, description, known defects).")] = None,
    records: RecordsOpt = None,
):  # fmt: skip
    """Inspect time series: anomalous time windows, described; per file a JSON, per-point scores (CSV, and
    Parquet with pyarrow) and a plot (with matplotlib); one summary table. A bad file is reported, the rest go on."""
    from ..series.inspection import DetectOptions, ReadOptions

    if sum(x is not None for x in (reference, reference_rows, reference_until)) > 1:
        fail("choose one of --reference, --reference-rows and --reference-until")
    read = ReadOptions(time_column, tuple(column or ()), tuple(exclude_column or ()), delimiter)
    options = DetectOptions(detector, reference_fraction, reference_rows, reference_until, max_reference_alarms)
    rules = _criteria(criteria)
    fixed = _fixed_detector(reference, read, options)
    files, problems = series_files(inputs)
    store = open_records(records) if records else None  # before any work: a bad URL ends it
    out = fresh_output_dir(out, overwrite, "detect")
    out.mkdir(parents=True, exist_ok=True)
    for problem in problems:
        warn(problem, "skipped")
    failed = detect_files(files, out, read, options, fixed, rules, store) + len(problems)
    if failed == len(files) + len(problems):
        raise typer.Exit(1)


def _criteria(path: Path | None) -> Criteria | None:
    from ..language.criteria import CriteriaError, load_criteria

    try:
        return load_criteria(path) if path else None
    except CriteriaError as error:
        fail(str(error))


def _fixed_detector(reference: Path | None, read: ReadOptions, options: DetectOptions) -> SeriesDetector | None:
    from ..series.inspection import fixed_detector

    try:
        return fixed_detector(read.load(reference), options) if reference is not None else None
    except ValueError as error:  # SeriesFormatError included: the reference is unusable, nothing can be done
        fail(f"reference: {error}")


def detect_files(
    files: list[Path],
    out: Path,
    read: ReadOptions,
    options: DetectOptions,
    fixed: SeriesDetector | None,
    criteria: Criteria | None,
    store: RecordStore | None,
) -> int:
    """Each file inspected and written, its row in the summary; returns how many failed."""
    from ..series import series_failure

    records, failed, notes = [], 0, set()
    table = Table("series", "verdict", "probability", "windows", "first window", "left out")
    for path in files:
        stem = path.stem if not (out / f"{path.stem}.json").exists() else f"{path.parent.name}-{path.stem}"
        try:
            record, note = _inspected(path, out / stem, read, options, fixed, criteria)
        except Exception as error:  # noqa: BLE001 - one file's failure, whatever it is, is its own error
            for written in out.glob(f"{glob.escape(stem)}.*"):  # nothing half-written stays
                written.unlink()
            record = {"source": str(path), "ok": False, "error": series_failure(path, error)}
            warn(record["error"], "skipped")
            failed += 1
        else:
            table.add_row(*_row(path, record))
            notes.add(note)
        if store is not None:
            _keep(store, path, record)
        records.append(record)
    (out / "results.json").write_text(json.dumps([_summary(r) for r in records], indent=2))
    console.print(table)
    for note in sorted(n for n in notes if n):
        warn(note, "note")
    if records and any(r["ok"] for r in records):
        console.print(f"decision: {escape(next(r['decision'] for r in records if r['ok']))}")
    kept = f"; {len(records)} records in {escape(repr(store))}" if store is not None else ""
    console.print(f"results in {escape(str(out))}{kept}")
    return failed


def _inspected(
    path: Path,
    written: Path,
    read: ReadOptions,
    options: DetectOptions,
    fixed: SeriesDetector | None,
    criteria: Criteria | None,
) -> tuple[dict, str | None]:
    """One file inspected and written as WRITTEN.json, WRITTEN.points.csv, …: its record and a note."""
    from ..series.inspection import inspect_series, result_record
    from ..series.output import write_outputs

    result = inspect_series(read.load(path), options, fixed)
    return write_outputs(result, result_record(result, criteria), written.parent, written.name)


def _summary(record: dict) -> dict:
    """A file's record without its per-point lists (those are in its own JSON and CSV)."""
    return {k: v for k, v in record.items() if k not in ("point_scores", "point_anomalous")}


def _row(path: Path, record: dict) -> list[str]:
    first = record["windows"][0] if record["windows"] else None
    return [
        escape(path.name),
        "anomalous" if record["anomalous"] else "normal",
        f"{record['probability']:.0%}",
        str(len(record["windows"])),
        escape(f"{first['start_time']}: {first['description']}") if first else "",
        escape(", ".join(record["left_out_columns"])),
    ]


def _keep(store: RecordStore, path: Path, record: dict) -> None:
    """The file's record, committed before the next file is inspected."""
    from ..records import series_record

    try:
        store.add_series(series_record(_summary(record), source=str(path.resolve())))
    except Exception as error:  # noqa: BLE001 - an audit trail with a hole is no audit trail: stop
        unrecorded(store, path, error)


@series_app.command("eval")
def evaluate(
    root: Annotated[Path, typer.Argument(help="Labelled series in NAB layout: data/<group>/<file>.csv, labels/combined_windows.json.")],
    detector: DetectorOpt = DEFAULT_DETECTOR,
    out: Annotated[Optional[Path], typer.Option(help="Folder for metrics.json.")] = None,
    overwrite: OverwriteOpt = False,
):  # fmt: skip
    """Evaluate a series detector (the one `series detect` uses, unless --detector): windows found, false
    alarms, point-wise F1, false-alarm rate (FAR) and missed-alarm rate (MAR), and NAB's normalised score under
    each profile (ROOT/config/profiles.json, else NAB's defaults) from the detector's per-point scores."""
    from ..series import SeriesFormatError
    from ..series.evaluation import evaluate_nab_layout, nab_scores, pointwise

    out = fresh_output_dir(out, overwrite, "eval")
    try:
        rows, scored = evaluate_nab_layout(root, detector)
        nab_normalised = nab_scores(root, scored)
    except (FileNotFoundError, SeriesFormatError, ValueError) as error:
        fail(str(error))
    if not rows:
        fail(f"{root}: labels/combined_windows.json lists no file")
    out.mkdir(parents=True, exist_ok=True)
    points, seconds = sum(r["points"] for r in rows), sum(r["seconds"] for r in rows)
    total = {
        "detector": detector,
        "files": len(rows),
        **{k: sum(r[k] for r in rows) for k in ("windows", "found", "false_alarms")},
        **pointwise(rows),
        **nab_normalised,
        "seconds_per_10k_points": round(10_000 * seconds / max(points, 1), 3),
    }
    (out / "metrics.json").write_text(json.dumps({"total": total, "files": rows}, indent=2))
    table = Table("file", "points", "windows", "found", "false alarms", title=f"anomalens series eval ({detector})")
    for r in rows:
        table.add_row(escape(r["file"]), str(r["points"]), str(r["windows"]), str(r["found"]), str(r["false_alarms"]))
    console.print(table)
    console.print(
        f"{total['found']} of {total['windows']} windows found, {total['false_alarms']} false alarms; point-wise "
        f"F1 {total['f1']:.3f}, FAR {total['false_alarm_rate']:.1%}, MAR {total['missed_alarm_rate']:.1%}; "
        f"{total['seconds_per_10k_points']} s per 10,000 points; metrics in {escape(str(out / 'metrics.json'))}"
    )
    if nab_normalised:
        scores = ", ".join(f"{name.removeprefix('nab_')} {score:.2f}" for name, score in nab_normalised.items())
        console.print(f"NAB (0 = never fires, 100 = perfect; one threshold per profile over all files): {scores}")
