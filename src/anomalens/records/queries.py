"""Reading the records: one inspection in full, and inspections listed, counted and streamed in a stable order
under filters. Every filter is a bound parameter (the source substring too, its `%` and `_` escaped): nothing
a caller gives is ever part of the SQL."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import false, func, select

from .database import Database
from .schema import ChatTurnRow, InspectionRow, SeriesInspectionRow
from .values import parse_time, utc

MAX_LIMIT = 10_000  # rows one page may hold
MAX_OFFSET = 2**62  # beyond any table; larger ones are refused rather than overflow a 64-bit parameter
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
    "run",
]


class Queries(Database):
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
            return listed(row) | {"result": row["result"], "findings": row["findings"], "chat": list(turns)}

    def get_series(self, series_id: str) -> dict | None:
        if "\x00" in series_id:
            return None
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(SeriesInspectionRow).where(SeriesInspectionRow.id == series_id))
                .mappings()
                .first()
            )
        return None if row is None else dict(row) | {"created": utc(row["created"])}

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
        query = paged(self._filtered(since, until, model, verdict, source, station), limit, offset)
        with self.engine.connect() as connection:
            return [listed(row) for row in connection.execute(query).mappings()]

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
                yield [listed(row) for row in part]


def paged(query, limit: int, offset: int):
    """The query's page (`limit` rows from `offset`), both checked: a value out of range is an error that
    says the range, never a silent clamp."""
    if not 0 <= int(limit) <= MAX_LIMIT:
        raise ValueError(f"limit: from 0 to {MAX_LIMIT}, not {limit}")
    if not 0 <= int(offset) <= MAX_OFFSET:
        raise ValueError(f"offset: from 0 to {MAX_OFFSET}, not {offset}")
    return query.limit(int(limit)).offset(int(offset))


def listed(row: Mapping) -> dict:
    out = {name: row[name] for name in LISTED}
    out["created"] = utc(row["created"])
    return out
