"""`RecordStore(url)`: the records database, opened (and migrated to the current tables) on construction.

`url` is a SQLAlchemy URL (`postgresql+psycopg://user@host/db`; `postgresql://` means the same) or a bare
path, which names a SQLite file; without one, the environment's ANOMALENS_RECORDS_URL. Every filter is a bound
parameter (the source substring too, its `%` and `_` escaped): nothing a caller gives is ever part of the SQL.

SQLite runs in WAL mode with `synchronous=NORMAL`: a committed record survives the writing process being
killed at any moment (a power cut may lose the last commits), readers never wait for writers, and writers
(several processes on one file) take the write lock at the start of their transaction (`BEGIN IMMEDIATE`) and
wait up to a minute for it, so none fails half way. PostgreSQL needs nothing of the kind."""

from __future__ import annotations

import builtins
import csv
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, false, func, insert, select, text, update
from sqlalchemy.engine import make_url

from ..result import file_version
from .schema import ChatTurnRow, FitJobRow, InspectionRow, SeriesInspectionRow

ENV_URL = "ANOMALENS_RECORDS_URL"
VERDICTS = ("anomalous", "normal", "error")
MAX_LIMIT = 10_000  # rows one page may hold
MAX_OFFSET = 2**62  # beyond any table; larger ones are refused rather than overflow a 64-bit parameter
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x616E6F6D  # PostgreSQL advisory lock held while migrating ("anom")
LISTED = [  # an inspection's columns in a listing or an export, in this order
    "id",
    "created",
    "station",
    "source",
    "image_path",
    "image_sha256",
    "model_id",
    "model_version",
    "expert",
    "verdict",
    "score",
    "probability",
    "confidence",
    "location",
    "defect_type",
    "class_name",
    "error",
    "regions",
]
INSPECTION_COLUMNS = {column.name for column in InspectionRow.__table__.columns}
SERIES_COLUMNS = {column.name for column in SeriesInspectionRow.__table__.columns}


def database_url(target: str | os.PathLike | None = None) -> str:
    """The SQLAlchemy URL for `target` (a URL or a SQLite file's path) or, without one, ANOMALENS_RECORDS_URL."""
    given = os.fspath(target) if target is not None else os.environ.get(ENV_URL, "")
    if not given.strip():
        raise ValueError(f"no records database: give a file or a URL, or set {ENV_URL}")
    if "://" not in given:
        path = Path(given).expanduser().resolve()
        if path.is_dir():
            raise ValueError(f"{given}: a folder, not a records file")
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    scheme, rest = given.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return given


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


def model_version(path: str | os.PathLike | None) -> str | None:
    """A model's version: the hash of its file's contents (the same bytes, the same version)."""
    return sha256_file(path) if path is not None else None


def default_station() -> str:
    return os.environ.get("ANOMALENS_STATION") or socket.gethostname()


def verdict_of(result: Mapping) -> str:
    if not result.get("ok", result.get("error") is None):
        return "error"
    return "anomalous" if result.get("anomalous") else "normal"


def inspection_record(result: Mapping, **fields: Any) -> dict:
    """A record from an inspection result's JSON (`InspectionResult.to_dict()` and what an interface adds:
    its answer, the file) and the fields it does not hold (model, image hash, station, findings, …)."""
    result = _jsonable(dict(result))
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


class RecordStore:
    def __init__(self, url: str | os.PathLike | None = None, *, station: str | None = None):
        self.url = database_url(url)
        self.station = station if station is not None else default_station()
        self.dialect = make_url(self.url).get_backend_name()
        self.engine = _engine(self.url, self.dialect)
        self._writer = self.engine.execution_options(records_write=True)  # BEGIN IMMEDIATE on SQLite
        self._migrate()

    def __repr__(self) -> str:
        return f"RecordStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self) -> None:
        """The tables brought to the current revision, once however many processes open the database together:
        the migration runs holding the write lock (SQLite) or an advisory lock (PostgreSQL)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._writer.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    # ---- writing -------------------------------------------------------------------------------
    def add_inspection(self, record: Mapping[str, Any]) -> str:
        """One inspection, committed before this returns; its id (given, or a new one)."""
        return self.add_inspections([record])[0]

    def add_inspections(self, records: Iterable[Mapping[str, Any]]) -> builtins.list[str]:
        """Inspections in one transaction (all or none), their ids in order."""
        rows = [self._inspection_row(record) for record in records]
        if rows:
            with self._writer.begin() as connection:
                connection.execute(insert(InspectionRow), rows)
        return [row["id"] for row in rows]

    def _inspection_row(self, record: Mapping[str, Any]) -> dict:
        unknown = set(record) - INSPECTION_COLUMNS
        if unknown:
            raise ValueError(f"unknown record field(s): {', '.join(sorted(unknown))}")
        row: dict[str, Any] = {
            "station": self.station,
            "source": "",
            "expert": "",
            "location": "",
            "class_name": "",
            "regions": [],
            "result": {},
            "findings": None,
        }
        row |= {key: value for key, value in record.items() if value is not None or key not in row}
        row["id"] = str(row.get("id") or uuid.uuid4().hex)
        row["created"] = float(row.get("created") or time.time())
        if row.get("verdict") not in VERDICTS:
            raise ValueError(f"verdict is one of {', '.join(VERDICTS)}, not {row.get('verdict')!r}")
        for key in ("score", "probability", "confidence"):
            value = row.get(key)
            row[key] = float(value) if value is not None and math.isfinite(float(value)) else None
        for key in ("regions", "result", "findings"):
            row[key] = _jsonable(row[key])
        return {key: _clean(value) for key, value in row.items()}

    def add_chat_turn(self, inspection_id: str, turn: int, detail: Mapping[str, Any]) -> None:
        """A question and its answer (`detail`: the turn as answered: question, answer, backend, guard, …)."""
        detail = _jsonable(dict(detail))
        row = {
            "inspection_id": inspection_id,
            "turn": int(turn),
            "created": time.time(),
            "question": str(detail.get("question", "")),
            "answer": str(detail.get("answer", "")),
            "backend": str(detail.get("backend") or "grounded"),
            "detail": detail,
        }
        with self._writer.begin() as connection:
            connection.execute(insert(ChatTurnRow), [{k: _clean(v) for k, v in row.items()}])

    def add_series(self, record: Mapping[str, Any]) -> str:
        """A series inspection: id, source (the file), anomalous, windows, result."""
        unknown = set(record) - SERIES_COLUMNS
        if unknown:
            raise ValueError(f"unknown series record field(s): {', '.join(sorted(unknown))}")
        row = {"station": self.station, "source": "", "windows": [], "result": {}, "anomalous": None} | dict(record)
        row["id"] = str(row.get("id") or uuid.uuid4().hex)
        row["created"] = float(row.get("created") or time.time())
        row["windows"], row["result"] = _jsonable(row["windows"]), _jsonable(row["result"])
        with self._writer.begin() as connection:
            connection.execute(insert(SeriesInspectionRow), [{k: _clean(v) for k, v in row.items()}])
        return row["id"]

    def save_fit_job(self, job: Mapping[str, Any]) -> None:
        """A fit job as now reported (`FitJob.to_dict()`), added or updated."""
        now = time.time()
        row = {
            "model_id": str(job.get("model_id") or ""),
            "status": str(job.get("status") or ""),
            "done": int(job.get("done") or 0),
            "total": int(job.get("total") or 0),
            "error": job.get("error"),
            "skipped": _jsonable(list(job.get("skipped") or [])),
            "updated": now,
        }
        row = {k: _clean(v) for k, v in row.items()}
        job_id = str(job.get("job_id") or job.get("id"))
        with self._writer.begin() as connection:
            changed = connection.execute(update(FitJobRow).where(FitJobRow.id == job_id).values(**row)).rowcount
            if not changed:
                connection.execute(
                    insert(FitJobRow), [row | {"id": job_id, "started": float(job.get("started") or now)}]
                )

    # ---- reading -------------------------------------------------------------------------------
    def get(self, inspection_id: str) -> dict | None:
        """The inspection in full (its result as answered, the findings kept for chat, its chat turns), or None."""
        if "\x00" in inspection_id:
            return None
        with self.engine.connect() as connection:
            row = connection.execute(select(InspectionRow).where(InspectionRow.id == inspection_id)).mappings().first()
            if row is None:
                return None
            turns = connection.execute(
                select(ChatTurnRow.detail)
                .where(ChatTurnRow.inspection_id == inspection_id)
                .order_by(ChatTurnRow.turn, ChatTurnRow.id)
            ).scalars()
            return _listed(row) | {"result": row["result"], "findings": row["findings"], "chat": list(turns)}

    def get_fit_job(self, job_id: str) -> dict | None:
        if "\x00" in job_id:
            return None
        with self.engine.connect() as connection:
            row = connection.execute(select(FitJobRow).where(FitJobRow.id == job_id)).mappings().first()
        return None if row is None else dict(row)

    def get_series(self, series_id: str) -> dict | None:
        if "\x00" in series_id:
            return None
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(SeriesInspectionRow).where(SeriesInspectionRow.id == series_id))
                .mappings()
                .first()
            )
        return None if row is None else dict(row) | {"created": _utc(row["created"])}

    def list(
        self,
        *,
        since: Any = None,
        until: Any = None,
        model: str | None = None,
        verdict: str | None = None,
        source: str | None = None,
        station: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[dict]:
        """Inspections oldest first (then by id: a stable order, pages never overlap), filtered: `since`
        (inclusive) and `until` (exclusive) as `parse_time` reads them, `model` an id or a version (or the
        start of one), `verdict` anomalous / normal / error, `source` a part of the file name."""
        if not 0 <= int(limit) <= MAX_LIMIT:
            raise ValueError(f"limit: from 0 to {MAX_LIMIT}, not {limit}")
        if not 0 <= int(offset) <= MAX_OFFSET:
            raise ValueError(f"offset: from 0 to {MAX_OFFSET}, not {offset}")
        query = self._filtered(since, until, model, verdict, source, station).limit(int(limit)).offset(int(offset))
        with self.engine.connect() as connection:
            return [_listed(row) for row in connection.execute(query).mappings()]

    def count(self, **filters: Any) -> int:
        query = select(func.count()).select_from(self._filtered(**filters).order_by(None).subquery())
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def _filtered(self, since=None, until=None, model=None, verdict=None, source=None, station=None):
        columns = [getattr(InspectionRow, name) for name in LISTED]
        query = select(*columns).order_by(InspectionRow.created, InspectionRow.id)
        start, end = parse_time(since, "since"), parse_time(until, "until")
        words = [w for w in (model, verdict, source, station) if w is not None]
        if any("\x00" in str(w) for w in words):  # never stored (cleaned on writing), and PostgreSQL refuses it
            return query.where(false())
        if start is not None:
            query = query.where(InspectionRow.created >= start)
        if end is not None:
            query = query.where(InspectionRow.created < end)
        if model:
            query = query.where(
                (InspectionRow.model_id == model) | InspectionRow.model_version.startswith(model, autoescape=True)
            )
        if verdict:
            query = query.where(InspectionRow.verdict == verdict)
        if source:
            query = query.where(InspectionRow.source.contains(source, autoescape=True))
        if station:
            query = query.where(InspectionRow.station == station)
        return query

    def iter(self, batch: int = 2000, **filters: Any) -> Iterator[builtins.list[dict]]:
        """Every inspection the filters keep, in the listing's order, `batch` at a time."""
        query = self._filtered(**filters)
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=batch).execute(query).mappings()
            for part in result.partitions(batch):
                yield [_listed(row) for row in part]

    def export(self, path: str | os.PathLike, format: str | None = None, **filters: Any) -> int:
        """The filtered inspections to a CSV or Parquet file (by `format`, else the file's suffix); how many.
        Regions are JSON text; `created` an ISO 8601 time in CSV, a UTC timestamp in Parquet."""
        path = Path(path)
        format = (format or path.suffix.lstrip(".")).lower()
        if format not in ("csv", "parquet"):
            raise ValueError(f"export format is csv or parquet, not {format!r}")
        count = 0
        if format == "csv":
            with path.open("w", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, fieldnames=LISTED)
                writer.writeheader()
                for rows in self.iter(**filters):
                    count += len(rows)
                    writer.writerows(_flat(row) | {"created": row["created"].isoformat()} for row in rows)
            return count
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [
                (name, pa.timestamp("us", tz="UTC"))
                if name == "created"
                else (name, pa.float64())
                if name in ("score", "probability", "confidence")
                else (name, pa.string())
                for name in LISTED
            ]
        )
        with pq.ParquetWriter(path, schema) as parquet:
            for rows in self.iter(**filters):
                count += len(rows)
                parquet.write_table(pa.Table.from_pylist([_flat(row) for row in rows], schema=schema))
        return count


def _engine(url: str, dialect: str) -> Engine:
    if dialect != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions begun below, not by the driver
        cursor = dbapi_connection.cursor()
        for pragma in ("busy_timeout=60000", "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        writes = connection.get_execution_options().get("records_write")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _listed(row: Mapping) -> dict:
    out = {name: row[name] for name in LISTED}
    out["created"] = _utc(row["created"])
    return out


def _flat(row: dict) -> dict:
    return row | {"regions": json.dumps(row["regions"])}


def _clean(value: Any) -> Any:
    """Text without NUL characters (PostgreSQL refuses them; a file name could hold one)."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy numbers and arrays as Python ones, tuples as lists, non-finite floats as None
    (neither JSON nor PostgreSQL's json type has them), NUL characters replaced."""
    if isinstance(value, Mapping):
        return {str(_clean(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _clean(value)
    if value is None or isinstance(value, bool | int):
        return value
    return _clean(str(value))
