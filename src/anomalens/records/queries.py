"""Reading the records: one inspection in full, and inspections listed, counted and streamed in a stable order
under filters. Every filter is a bound parameter (the source substring too, its `%` and `_` escaped): nothing
a caller gives is ever part of the SQL."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import false, func, select

from .database import Database
from .schema import ChatTurnRow, FeedbackRow, InspectionRow, SeriesInspectionRow
from .values import clean, parse_time, utc

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
SERIES_LISTED = ["id", "created", "station", "source", "verdict", "score", "probability", "error", "windows"]


class Queries(Database):
    def get(self, inspection_id: str) -> dict | None:
        """The inspection in full (its result as answered, the findings kept for chat, its chat turns), or None."""
        if unstorable(inspection_id):
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
            feedback = connection.execute(feedback_query().where(FeedbackRow.inspection_id == inspection_id)).mappings()
            listing = listed({name: row[name] for name in LISTED})
            in_full = {"result": row["result"], "findings": row["findings"], "chat": list(turns)}
            return listing | in_full | {"feedback": [given_feedback(f) for f in feedback]}

    def get_series(self, series_id: str) -> dict | None:
        """A series inspection in full (its result as answered), or None."""
        if unstorable(series_id):
            return None
        query = select(SeriesInspectionRow).where(SeriesInspectionRow.id == series_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else dict(row) | {"created": utc(row["created"])}

    def feedback_for(self, inspection_id: str) -> builtins.list[dict]:
        """The feedback given on an inspection, oldest first."""
        if unstorable(inspection_id):
            return []
        query = feedback_query().where(FeedbackRow.inspection_id == inspection_id)
        with self.engine.connect() as connection:
            return [given_feedback(row) for row in connection.execute(query).mappings()]

    def list_feedback(
        self, *, since=None, until=None, model=None, verdict=None, source=None, limit: int = 100, offset: int = 0
    ) -> builtins.list[dict]:
        """Feedback oldest first, with the inspection it is on (its image, model and verdict: what a model is
        taught from), filtered: given `since` / `until`, on an inspection by `model` (an id, or a version or its
        start), the feedback's `verdict` (normal, defective) and `source` (chat, page, api, cli)."""
        inspection = (
            InspectionRow.image_path,
            InspectionRow.image_sha256,
            InspectionRow.model_id,
            InspectionRow.model_version,
            InspectionRow.verdict.label("inspection_verdict"),
        )
        query = feedback_query(*inspection).join(InspectionRow, FeedbackRow.inspection_id == InspectionRow.id)
        query = in_time(query, FeedbackRow.created, since, until)
        if unstorable(model, verdict, source):
            return []
        for column, value in ((FeedbackRow.verdict, verdict), (FeedbackRow.source, source)):
            query = query.where(column == value) if value else query
        if model:
            query = query.where(of_model(model))
        with self.engine.connect() as connection:
            return [given_feedback(row) for row in connection.execute(paged(query, limit, offset)).mappings()]

    def list(self, *, limit: int = 100, offset: int = 0, **filters: Any) -> builtins.list[dict]:
        """Inspections oldest first (then by id: a stable order, pages never overlap), filtered: `since`
        (inclusive) and `until` (exclusive) as `parse_time` reads them, `model` an id or a version (or the
        start of one), `verdict` anomalous / normal / error, `source` a part of the file name, `station`."""
        return self._page(self._filtered(**filters), limit, offset)

    def count(self, **filters: Any) -> int:
        return self._count(self._filtered(**filters))

    def passed_uncorrected(self, limit: int, **filters: Any) -> builtins.list[dict]:
        """The latest `limit` inspections (filtered as `list` filters them: by model, time, …) decided normal that
        no one gave feedback on, oldest first: a line's parts passed and let stand, teaching's normal side."""
        query = self._filtered(**filters | {"verdict": "normal"}).where(
            ~select(FeedbackRow.id).where(FeedbackRow.inspection_id == InspectionRow.id).exists()
        )
        latest = query.order_by(None).order_by(InspectionRow.created.desc(), InspectionRow.id.desc())
        return self._page(latest, limit, 0)[::-1]

    def list_series(self, *, limit: int = 100, offset: int = 0, **filters: Any) -> builtins.list[dict]:
        """Series inspections as `list` gives inspections: filtered by time, verdict, file and station (no
        model: the normal data of a series is its own), their windows counted."""
        return self._page(self._series_filtered(**filters), limit, offset)

    def count_series(self, **filters: Any) -> int:
        return self._count(self._series_filtered(**filters))

    def _page(self, query, limit: int, offset: int) -> builtins.list[dict]:
        with self.engine.connect() as connection:
            return [listed(row) for row in connection.execute(paged(query, limit, offset)).mappings()]

    def _count(self, query) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
            )

    def _filtered(self, since=None, until=None, model=None, verdict=None, source=None, station=None):
        query = matching(InspectionRow, LISTED, since, until, verdict, source, station, model)
        if not model or unstorable(model):  # matched nothing already (and is never sent)
            return query
        return query.where(of_model(model))

    def _series_filtered(self, since=None, until=None, verdict=None, source=None, station=None, model=None):
        if model:
            raise ValueError("series inspections have no model: drop the model filter")
        return matching(SeriesInspectionRow, SERIES_LISTED, since, until, verdict, source, station)

    def iter(self, batch: int = 2000, **filters: Any) -> Iterator[builtins.list[dict]]:
        """Every inspection the filters keep, in the listing's order, `batch` at a time."""
        query = self._filtered(**filters)
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=batch).execute(query).mappings()
            for part in result.partitions(batch):
                yield [listed(row) for row in part]


def matching(table: Any, columns: builtins.list[str], since, until, verdict, source, station, *words):
    """`columns` of `table`'s rows, oldest first (then by id), that the filters every kind shares keep: `since`
    and `until` (`in_time`), `verdict`, `source` (a part of it, taken literally), `station`; any of these or
    the other `words` holding a NUL character keeps none."""
    query = select(*(getattr(table, name) for name in columns)).order_by(table.created, table.id)
    query = in_time(query, table.created, since, until)
    if unstorable(verdict, source, station, *words):
        return query.where(false())
    if verdict:
        query = query.where(table.verdict == verdict)
    if source:
        query = query.where(table.source.contains(source, autoescape=True))
    if station:
        query = query.where(table.station == station)
    return query


def in_time(query, column, since, until):
    """The query's rows from `since` (inclusive) to `until` (exclusive), as `parse_time` reads them."""
    start, end = parse_time(since, "since"), parse_time(until, "until")
    if start is not None:
        query = query.where(column >= start)
    return query.where(column < end) if end is not None else query


def unstorable(*words: Any) -> bool:
    """A word holding what is never stored (a NUL character, a lone surrogate: `clean`ed on writing) matches
    nothing, and is never sent: PostgreSQL refuses NUL, and no driver encodes a lone surrogate."""
    return any(clean(str(word)) != str(word) for word in words if word is not None)


def of_model(model: str):
    """Inspections by a model: its id, or its version (a hash) or the start of one."""
    return (InspectionRow.model_id == model) | InspectionRow.model_version.startswith(model, autoescape=True)


def feedback_query(*more):
    """The feedback's columns (and `more`), oldest first, then by id."""
    columns = [getattr(FeedbackRow, column.name) for column in FeedbackRow.__table__.columns]
    return select(*columns, *more).order_by(FeedbackRow.created, FeedbackRow.id)


def given_feedback(row: Mapping) -> dict:
    """A feedback row as a dict, its time a UTC datetime."""
    return dict(row) | {"created": utc(row["created"])}


def paged(query, limit: int, offset: int):
    """The query's page (`limit` rows from `offset`), both checked: a value out of range is an error that
    says the range, never a silent clamp."""
    if not 0 <= int(limit) <= MAX_LIMIT:
        raise ValueError(f"limit: from 0 to {MAX_LIMIT}, not {limit}")
    if not 0 <= int(offset) <= MAX_OFFSET:
        raise ValueError(f"offset: from 0 to {MAX_OFFSET}, not {offset}")
    return query.limit(int(limit)).offset(int(offset))


def listed(row: Mapping) -> dict:
    """A listed row as a dict, its time a UTC datetime."""
    return dict(row) | {"created": utc(row["created"])}
