"""`RecordStore(url)`: the records database, opened (and migrated to the current tables) on construction.

`url` is a SQLAlchemy URL (`postgresql+psycopg://user@host/db`; `postgresql://` means the same) or a bare
path, which names a SQLite file; without one, the environment's ANOMALENS_RECORDS_URL (`database.py`: the
engine and its settings). This module writes; `queries.py` reads; `export.py` writes files of what is read;
`feedback.py` checks an operator's feedback before it is written; `jobs.py` keeps the service's fit jobs."""

from __future__ import annotations

import builtins
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert, select

from .export import export_rows
from .feedback import UnknownInspection, feedback_row
from .jobs import FitJobs
from .queries import Queries, given_feedback, unstorable
from .schema import ChatTurnRow, FeedbackRow, InspectionRow, SeriesInspectionRow
from .values import VERDICTS, clean, finite, fitting, jsonable, run_key

INSPECTION_COLUMNS = [column.name for column in InspectionRow.__table__.columns]
GIVEN_COLUMNS = set(INSPECTION_COLUMNS) - {"run_key"}  # what a record may hold: its run key is made here
SERIES_COLUMNS = [column.name for column in SeriesInspectionRow.__table__.columns]


class RecordStore(Queries):
    def add_inspection(self, record: Mapping[str, Any]) -> str:
        """One inspection, committed before this returns; its id (given, or a new one; the one recorded
        already when its run holds it)."""
        row = self._inspection_row(record)
        if self._insert([row]):
            return row["id"]
        with self.engine.connect() as connection:
            return connection.execute(
                select(InspectionRow.id).where(InspectionRow.run_key == row["run_key"])
            ).scalar_one()

    def add_inspections(self, records: Iterable[Mapping[str, Any]]) -> builtins.list[str]:
        """Inspections in one transaction (all or none); the ids of those written, in order. A record given a
        `run` is written once: one that its run holds already (the same image and model version, `run_key`)
        is left out, however often a rerun sends it."""
        return self._insert([self._inspection_row(record) for record in records])

    def _insert(self, rows: builtins.list[dict]) -> builtins.list[str]:
        if not rows:
            return []
        query = self.insert_once(InspectionRow, "run_key").returning(InspectionRow.id)
        with self.writer.begin() as connection:
            written = set(connection.execute(query, rows).scalars())
        return [row["id"] for row in rows if row["id"] in written]

    def _inspection_row(self, record: Mapping[str, Any]) -> dict:
        unknown = set(record) - GIVEN_COLUMNS
        if unknown:
            raise ValueError(f"unknown record field(s): {', '.join(sorted(unknown))}")
        row: dict[str, Any] = dict.fromkeys(INSPECTION_COLUMNS) | {  # every column: rows written together alike
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
        if row.get("run") is not None:
            image = str(row.get("image_path") or row["source"])
            row["run_key"] = run_key(str(row["run"]), image, row.get("image_sha256"), row.get("model_version"))
        if row.get("verdict") not in VERDICTS:
            raise ValueError(f"verdict is one of {', '.join(VERDICTS)}, not {row.get('verdict')!r}")
        for key in ("score", "probability", "confidence"):
            row[key] = finite(row.get(key))
        for key in ("regions", "result", "findings"):
            row[key] = jsonable(row[key])
        return fitting({key: clean(value) for key, value in row.items()}, InspectionRow.__table__)

    def add_chat_turn(self, inspection_id: str, turn: int, detail: Mapping[str, Any]) -> None:
        """A question and its answer (`detail`: the turn as answered: question, answer, backend, guard, …)."""
        detail = jsonable(dict(detail))
        row = {
            "inspection_id": inspection_id,
            "turn": int(turn),
            "created": time.time(),
            "question": str(detail.get("question", "")),
            "answer": str(detail.get("answer", "")),
            "backend": str(detail.get("backend") or "grounded"),
            "detail": detail,
        }
        with self.writer.begin() as connection:
            connection.execute(insert(ChatTurnRow), [{k: clean(v) for k, v in row.items()}])

    def add_series(self, record: Mapping[str, Any]) -> str:
        """A series inspection (`series_record`: source, verdict, score, probability, error, windows, result),
        committed before this returns; its id (given, or a new one)."""
        unknown = set(record) - set(SERIES_COLUMNS)
        if unknown:
            raise ValueError(f"unknown series record field(s): {', '.join(sorted(unknown))}")
        row = dict.fromkeys(SERIES_COLUMNS) | {"station": self.station, "source": "", "windows": [], "result": {}}
        row |= {key: value for key, value in record.items() if value is not None}
        row["id"] = str(row["id"] or uuid.uuid4().hex)
        row["created"] = float(row["created"] or time.time())
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"verdict is one of {', '.join(VERDICTS)}, not {row['verdict']!r}")
        row["score"], row["probability"] = finite(row["score"]), finite(row["probability"])
        row["windows"], row["result"] = jsonable(row["windows"]), jsonable(row["result"])
        row = fitting({k: clean(v) for k, v in row.items()}, SeriesInspectionRow.__table__)
        with self.writer.begin() as connection:
            connection.execute(insert(SeriesInspectionRow), [row])
        return row["id"]

    def add_feedback(self, inspection_id: str, **given: Any) -> dict:
        """An operator's word on a recorded inspection (`given`: verdict, defect_type, box, mask_path, note,
        source, author; checked by `feedback_row`), committed before this returns: the feedback as kept. An
        inspection the records do not hold is `UnknownInspection`; a value that cannot be right, ValueError."""
        with self.writer.begin() as connection:
            found = None
            if not unstorable(inspection_id):
                query = select(InspectionRow.result).where(InspectionRow.id == inspection_id)
                found = connection.execute(query).first()
            if found is None:
                raise UnknownInspection(f"no inspection {inspection_id[:80]!r} in the records")
            row = feedback_row(inspection_id, (found.result or {}).get("image_size"), **given)
            row["id"] = connection.execute(insert(FeedbackRow).returning(FeedbackRow.id), [row]).scalar_one()
        return given_feedback(row)

    def fit_jobs(self, models: str | os.PathLike) -> FitJobs:
        """The fit jobs of the service that fits into the folder `models` on this station."""
        return FitJobs(self, models)

    def export(self, path: str | os.PathLike, format: str | None = None, **filters: Any) -> int:
        """The filtered inspections (as `list` filters them) to a CSV or Parquet file; how many (`export_rows`)."""
        return export_rows(self.iter(**filters), path, format)
