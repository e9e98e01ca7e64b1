"""`anomalens records list | show | export`: the inspection records (`detect --records`, `serve --records`),
filtered by time, model, verdict and file name; `open_records`, how every command opens them, and `recorder`,
how a command writes its results there."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import app, console, fail

if TYPE_CHECKING:
    from ..predictor import Predictor
    from ..records import RecordStore
    from ..service import Inspection

RECORDS_MODULES = {"sqlalchemy", "alembic", "psycopg", "psycopg_binary", "pyarrow", "mako"}  # the records extra
MISSING_EXTRA = "inspection records need the records extra: pip install 'anomalens[records]'"
RecordsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--records",
        envvar="ANOMALENS_RECORDS_URL",
        help="Inspection records: a SQLite file, or a database URL (postgresql+psycopg://user@host/db).",
    ),
]

records_app = typer.Typer(no_args_is_help=True, help="Inspection records: list, show and export them.")
app.add_typer(records_app, name="records")


def open_records(target: str) -> RecordStore:
    """The records database, opened (and migrated); a missing extra or an unusable database ends the command
    with the reason."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from ..records import RecordStore
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in RECORDS_MODULES:
            raise
        fail(MISSING_EXTRA)
    try:
        return RecordStore(target)
    except (ValueError, OSError, SQLAlchemyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        fail(f"records {target!r} cannot be opened: {reason}")
    except ModuleNotFoundError as error:  # the database's driver (psycopg)
        if (error.name or "").split(".")[0] not in RECORDS_MODULES:
            raise
        fail(MISSING_EXTRA)


def unrecorded(store: RecordStore, path: Path, error: Exception) -> NoReturn:
    """Ends a command whose result could not be recorded: an audit trail with a hole is no audit trail."""
    fail(f"{path}: the record could not be written to {store!r}: {type(error).__name__}: {error}")


def recorder(
    store: RecordStore, inspector: Predictor, references: list[Path], class_name: str
) -> Callable[[Path, dict, Inspection], None]:
    """Writes each image's result to the records (committed one by one: a run stopped half way keeps what
    was inspected), with the model's id and version (`predictor.model_identity`: few-shot, of `references`).
    This command is one run (its records carry its id)."""
    import uuid

    from ..predictor import model_identity
    from ..records import inspection_record, sha256_file
    from ..records.chats import findings_json

    model_id, model_version = model_identity(inspector, references)
    run = uuid.uuid4().hex

    def keep(path: Path, record: dict, inspection: Inspection) -> None:
        guess = inspection.findings.defect_type if inspection.findings else None
        try:
            store.add_inspection(
                inspection_record(
                    record,
                    image_path=str(path.resolve()),
                    image_sha256=sha256_file(path) if path.is_file() else None,
                    expert=inspection.result.expert,
                    findings=findings_json(inspection.findings),
                    defect_type=guess.name if guess else None,
                    class_name=class_name,
                    model_id=model_id,
                    model_version=model_version,
                    run=run,
                )
            )
        except Exception as error:  # noqa: BLE001 - an audit trail with a hole is no audit trail: stop
            unrecorded(store, path, error)

    return keep


def _needed(records: str | None) -> str:
    if not records:
        fail("give the records: --records FILE_OR_URL (or set ANOMALENS_RECORDS_URL)")
    return records


SinceOpt = Annotated[Optional[str], typer.Option(help="From this time on (ISO 8601, UTC unless it says, or epoch s).")]
UntilOpt = Annotated[Optional[str], typer.Option(help="Before this time.")]
ModelOpt = Annotated[Optional[str], typer.Option(help="A model id, or a model version (its hash) or the start of one.")]
VerdictOpt = Annotated[Optional[str], typer.Option(help="anomalous, normal or error.")]
SourceOpt = Annotated[Optional[str], typer.Option(help="Part of the image's file name.")]
StationOpt = Annotated[Optional[str], typer.Option(help="The station that inspected (default: any).")]


@records_app.command("list")
def list_records(
    records: RecordsOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    model: ModelOpt = None,
    verdict: VerdictOpt = None,
    source: SourceOpt = None,
    station: StationOpt = None,
    series: Annotated[bool, typer.Option("--series", help="Series inspections (detect --series) instead.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
):
    """List inspections (or with --series, series inspections), oldest first, filtered by time, model,
    verdict, file name and station."""
    store = open_records(_needed(records))
    filters = {"since": since, "until": until, "model": model, "verdict": verdict, "source": source}
    try:
        listing, count = (store.list_series, store.count_series) if series else (store.list, store.count)
        rows = listing(**filters, station=station, limit=limit, offset=offset)
        total = count(**filters, station=station)
    except ValueError as error:
        fail(str(error))
    if as_json:
        for row in rows:
            print(json.dumps(row | {"created": row["created"].isoformat()}))
        return
    console.print(_series_table(rows) if series else _table(rows))
    kind = "series inspection" if series else "inspection"
    console.print(f"{len(rows)} of {total} {kind}{'s' * (total != 1)} (from {offset + 1 if rows else 0})")


def _table(rows: list[dict]) -> Table:
    table = Table("time (UTC)", "source", "model", "verdict", "probability", "location", "id")
    for row in rows:
        table.add_row(
            _time(row), escape(row["source"]), escape(row["model_id"] or ""), row["verdict"],
            _percent(row["probability"]), escape(row["location"] or ""), row["id"],
        )  # fmt: skip
    return table


def _series_table(rows: list[dict]) -> Table:
    table = Table("time (UTC)", "source", "verdict", "probability", "windows", "id")
    for row in rows:
        windows = str(len(row["windows"])) if row["verdict"] != "error" else escape(row["error"] or "")
        table.add_row(
            _time(row), escape(row["source"]), row["verdict"], _percent(row["probability"]), windows, row["id"]
        )
    return table


def _time(row: dict) -> str:
    return row["created"].strftime("%Y-%m-%d %H:%M:%S")


def _percent(probability: float | None) -> str:
    return "" if probability is None else f"{probability:.0%}"


@records_app.command("show")
def show_record(
    inspection_id: Annotated[str, typer.Argument(help="The inspection's (or series inspection's) id.")],
    records: RecordsOpt = None,
):
    """One inspection in full, as JSON: its result, the findings and the chat about it (a series inspection:
    its result and windows)."""
    store = open_records(_needed(records))
    found = store.get(inspection_id) or store.get_series(inspection_id)
    if found is None:
        fail(f"no inspection {inspection_id!r} in the records")
    print(json.dumps(found | {"created": found["created"].isoformat()}, indent=2))


@records_app.command("export")
def export_records(
    out: Annotated[Path, typer.Argument(help="File to write: .csv or .parquet.")],
    records: RecordsOpt = None,
    format: Annotated[Optional[str], typer.Option(help="csv or parquet (default: by OUT's suffix).")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    model: ModelOpt = None,
    verdict: VerdictOpt = None,
    source: SourceOpt = None,
    station: StationOpt = None,
):
    """Export the inspections the filters keep to CSV or Parquet."""
    store = open_records(_needed(records))
    try:
        count = store.export(
            out, format, since=since, until=until, model=model, verdict=verdict, source=source, station=station
        )
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "pyarrow":
            raise
        fail(MISSING_EXTRA)
    except ValueError as error:
        fail(str(error))
    console.print(f"{count} inspection{'s' * (count != 1)} written to {escape(str(out))}")
