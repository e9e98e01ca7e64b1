"""`anomalens records list | show | export`: the inspection records (`detect --records`, `serve --records`),
filtered by time, model, verdict and file name; and `open_records`, how every command opens them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import app, console, fail

if TYPE_CHECKING:
    from ..records import RecordStore

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
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
):
    """List inspections, oldest first, filtered by time, model, verdict, file name and station."""
    store = open_records(_needed(records))
    filters = {"since": since, "until": until, "model": model, "verdict": verdict, "source": source}
    try:
        rows = store.list(**filters, station=station, limit=limit, offset=offset)
        total = store.count(**filters, station=station)
    except ValueError as error:
        fail(str(error))
    if as_json:
        for row in rows:
            print(json.dumps(row | {"created": row["created"].isoformat()}))
        return
    table = Table("time (UTC)", "source", "model", "verdict", "probability", "location", "id")
    for row in rows:
        probability = row["probability"]
        table.add_row(
            row["created"].strftime("%Y-%m-%d %H:%M:%S"),
            escape(row["source"]),
            escape(row["model_id"] or ""),
            row["verdict"],
            "" if probability is None else f"{probability:.0%}",
            escape(row["location"] or ""),
            row["id"],
        )
    console.print(table)
    console.print(f"{len(rows)} of {total} inspection{'s' * (total != 1)} (from {offset + 1 if rows else 0})")


@records_app.command("show")
def show_record(inspection_id: Annotated[str, typer.Argument(help="The inspection's id.")], records: RecordsOpt = None):
    """One inspection in full, as JSON: its result, the findings and the chat about it."""
    found = open_records(_needed(records)).get(inspection_id)
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
