"""Inspection records in a database (issue 31): every inspection, chat turn, series inspection and fit job,
kept where an auditor can ask months later why a part passed and a restarted service finds yesterday's work.
An embedded SQLite file by default, PostgreSQL by URL for a line of many stations; SQLAlchemy 2 with Alembic
migrations, run when a store is opened. Needs the records extra: pip install 'anomalens[records]'."""

from __future__ import annotations

from .store import (
    ENV_URL,
    VERDICTS,
    RecordStore,
    database_url,
    inspection_record,
    model_version,
    parse_time,
    sha256_file,
)

__all__ = [
    "ENV_URL",
    "VERDICTS",
    "RecordStore",
    "database_url",
    "inspection_record",
    "model_version",
    "parse_time",
    "sha256_file",
]
