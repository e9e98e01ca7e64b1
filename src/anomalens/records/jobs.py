"""The service's fit jobs kept in the records (`serve --records`) rather than in files beside the models, so
that a restarted service reads them back with its inspections and chats. A job belongs to the station and the
models folder it fits into: two services on one database each read back only their own."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from .database import Database
from .schema import FitJobRow
from .values import clean, fitting, jsonable

FIELDS = ("id", "model_id", "total", "done", "status", "error", "skipped", "started")  # a job as the service keeps it


class FitJobs:
    """One service's fit jobs: `save` a job as now reported (added or updated), `load` them all, oldest
    first. What `service.ModelStore` asks of a journal of jobs."""

    def __init__(self, database: Database, models: str | os.PathLike):
        self.database = database
        self.owner = {"station": database.station, "models": str(Path(models).resolve())}

    def save(self, job: Mapping[str, Any]) -> None:
        row = {
            "model_id": str(job.get("model_id") or ""),
            "status": str(job.get("status") or ""),
            "done": int(job.get("done") or 0),
            "total": int(job.get("total") or 0),
            "error": job.get("error"),
            "skipped": jsonable(list(job.get("skipped") or [])),
            "updated": time.time(),
        }
        row = fitting({k: clean(v) for k, v in row.items()}, FitJobRow.__table__)
        job_id = str(job["id"])
        with self.database.writer.begin() as connection:
            if not connection.execute(update(FitJobRow).where(FitJobRow.id == job_id).values(**row)).rowcount:
                started = float(job.get("started") or row["updated"])
                connection.execute(insert(FitJobRow), [row | self.owner | {"id": job_id, "started": started}])

    def load(self) -> list[dict]:
        query = select(*(getattr(FitJobRow, name) for name in FIELDS)).order_by(FitJobRow.started, FitJobRow.id)
        query = query.where(FitJobRow.station == self.owner["station"], FitJobRow.models == self.owner["models"])
        with self.database.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]
