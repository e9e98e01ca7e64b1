"""The records database opened: its URL, the engine (SQLite's settings), and the tables migrated to the current
revision. `Database` is what every part of `RecordStore` stands on.

SQLite runs in WAL mode with `synchronous=NORMAL`: a committed record survives the writing process being
killed at any moment (a power cut may lose the last commits), readers never wait for writers, and writers
(several processes on one file) take the write lock at the start of their transaction (`BEGIN IMMEDIATE`) and
wait up to a minute for it, so none fails half way. PostgreSQL needs nothing of the kind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Insert, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from .schema import Base
from .values import default_station

ENV_URL = "ANOMALENS_RECORDS_URL"
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x616E6F6D  # PostgreSQL advisory lock held while migrating ("anom")
DIALECTS = ("sqlite", "postgresql")  # the databases records are kept in


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


class Database:
    """The open database: `engine` for reading, `writer` for writing (on SQLite, it takes the write lock when
    its transaction begins), `dialect` ("sqlite", "postgresql") and the `station` that writes."""

    def __init__(self, url: str | os.PathLike | None = None, *, station: str | None = None):
        self.url = database_url(url)
        self.station = station if station is not None else default_station()
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect not in DIALECTS:
            raise ValueError(f"records are kept in SQLite or PostgreSQL, not {self.dialect}")
        self.engine = _engine(self.url, self.dialect)
        self.writer = self.engine.execution_options(records_write=True)  # BEGIN IMMEDIATE on SQLite
        self._migrate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def insert_once(self, table: type[Base], key: str) -> Insert:
        """An INSERT that leaves out a row whose unique `key` column the table holds already (SQLite's and
        PostgreSQL's ON CONFLICT DO NOTHING): a row sent again is written once."""
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])

    def _migrate(self) -> None:
        """The tables brought to the current revision, once however many processes open the database together:
        the migration runs holding the write lock (SQLite) or an advisory lock (PostgreSQL)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.writer.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


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
