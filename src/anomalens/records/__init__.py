"""Inspection records in a database (issue 31): every inspection, chat turn, series inspection and fit job,
kept where an auditor can ask months later why a part passed and a restarted service finds yesterday's work.
An embedded SQLite file by default, PostgreSQL by URL for a line of many stations; SQLAlchemy 2 with Alembic
migrations, run when a store is opened. Needs the records extra: pip install 'anomalens[records]'.

The modules: `database` (URL, engine, migrations), `values` (what a record holds, made storable), `store`
(`RecordStore`: writing), `queries` (reading, filters), `export` (CSV, Parquet), `jobs` (the service's fit
jobs), `feedback` (operators' feedback, checked), `chats` (findings kept for chat), `schema` (the tables)."""

from __future__ import annotations

from .database import ENV_URL, database_url
from .feedback import FEEDBACK_SOURCES, FEEDBACK_VERDICTS, UnknownInspection
from .store import RecordStore
from .values import VERDICTS, inspection_record, parse_time, series_record, sha256_file

__all__ = [
    "ENV_URL",
    "FEEDBACK_SOURCES",
    "FEEDBACK_VERDICTS",
    "VERDICTS",
    "RecordStore",
    "UnknownInspection",
    "database_url",
    "inspection_record",
    "parse_time",
    "series_record",
    "sha256_file",
]
