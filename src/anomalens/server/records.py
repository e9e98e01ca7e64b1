"""The records part of the HTTP service (`serve --records`): recorded inspections listed and paged (and as
CSV), one in full with its chat and feedback, and an operator's feedback on one
(`POST /v1/inspections/{id}/feedback`). Behind the API key like every /v1 endpoint; every filter a bound parameter (the records' queries)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ..language.chat import Turn
from ..service import Conversations, ModelStore
from ..service.lessons import Lesson, learn
from ..teaching import MAX_PASSED
from .errors import ApiError
from .masks import MASK_FOLDER, kept_mask

if TYPE_CHECKING:
    from ..records import RecordStore

NO_RECORDS = "the service keeps no records: start it with --records FILE_OR_URL"


class FeedbackRequest(BaseModel):
    """An operator's word on an inspection: at least one of verdict, defect_type, box, mask_path, note."""

    model_config = ConfigDict(extra="forbid")
    verdict: str | None = Field(None, max_length=16, description="normal or defective.")
    defect_type: str | None = Field(None, max_length=200, description="The kind of defect, e.g. scratch.")
    box: list[StrictInt] | None = Field(
        None, min_length=4, max_length=4, description="[x0, y0, x1, y1] in the image's pixels (x1, y1 exclusive)."
    )
    mask_path: str | None = Field(None, max_length=4096, description="A mask image's path, where it is kept.")
    mask_png: str | None = Field(
        None,
        max_length=16_000_000,
        description="A mask painted on the image: a PNG the image's size (base64 or a data URL), the defect where "
        "it is neither black nor transparent; kept beside the models (the feedback's mask_path), its bounding box "
        "the place where no box is given.",
    )
    note: str = Field("", max_length=10_000)
    source: str = Field("api", max_length=16, description="Where it was given: chat, page, api or cli.")
    author: str = Field("", max_length=200, description="Who gave it.")
    teach: bool = Field(
        True,
        description="Teach the stored model the inspection was made with (its next version serves from now on) "
        "and decide the image again; false: only keep the feedback.",
    )


def kept(records: RecordStore | None) -> RecordStore:
    if records is None:
        raise ApiError(404, NO_RECORDS)
    return records


FeedbackKeeper = Callable[[str, dict, bool], dict]


def feedback_keeper(records: RecordStore | None, sessions: Conversations, store: ModelStore) -> FeedbackKeeper:
    """`keep(inspection_id, feedback, teach)`: the feedback (the API's fields) on record, and, with `teach`, the
    stored model that made the inspection taught by it (`lessons.learn`); as the API answers it. The page's
    buttons and the chat's corrections come the same way."""

    def keep(inspection_id: str, feedback: dict, teach: bool) -> dict:
        mask_png = feedback.pop("mask_png", None)
        if mask_png is not None:  # painted on the page: checked against the image, kept as a file
            found = kept(records).get(inspection_id)
            if found is None:
                raise ApiError(404, f"no inspection {inspection_id[:80]!r} in the records")
            size = (found.get("result") or {}).get("image_size")
            masked = kept_mask(mask_png, size, store.folder / MASK_FOLDER, inspection_id)
            feedback |= {"mask_path": masked["mask_path"], "box": feedback.get("box") or masked["box"]}
        try:
            given = kept(records).add_feedback(inspection_id, **feedback)
        except LookupError as error:  # records.UnknownInspection
            raise ApiError(404, str(error)) from None
        except ValueError as error:
            raise ApiError(422, str(error)) from None
        if not teach:
            return {"inspection_id": inspection_id, **given, "lesson": None}
        picture = held_picture(sessions, inspection_id)
        recorded = kept(records).get(inspection_id) or {}
        passed = passed_pictures(kept(records), sessions, recorded.get("model_id"))
        lesson = learn(store, inspection_id, recorded, given, picture, passed)
        return {"inspection_id": inspection_id, **given, "lesson": lesson.to_dict()}

    return keep


def held_picture(sessions: Conversations, inspection_id: str) -> Image.Image | None:
    """The inspected image as the service still holds it (its conversation's), or None."""
    session = sessions.get(inspection_id)
    picture = session.images.query if session is not None and session.images is not None else None
    return picture if isinstance(picture, Image.Image) else None


def passed_pictures(records: RecordStore, sessions: Conversations, model_id: str | None) -> list[Image.Image]:
    """The pictures the service still holds of the latest parts `model_id` passed that no one gave feedback on
    (at most MAX_PASSED), oldest first."""
    if not model_id:
        return []
    rows = records.passed_uncorrected(MAX_PASSED, model=model_id)
    return [picture for row in rows if (picture := held_picture(sessions, row["id"])) is not None]


def corrected_in_chat(keep_feedback: FeedbackKeeper, records, inspection_id: str, turn: Turn, size) -> str:
    """What became of a correction said in the chat (`turn.correction`), in words added to its answer: kept
    and taught as the page's buttons are (`size`: the image's width and height, for the place named)."""
    if records is None:
        return "It is not kept: the service keeps no records (start it with --records to keep and teach corrections)."
    said = turn.correction
    assert said is not None  # the chat recognised a correction
    box = said.box(*size)
    feedback = {"verdict": said.verdict, "defect_type": said.defect_type, "box": list(box) if box else None}
    try:
        answered = keep_feedback(inspection_id, feedback | {"note": turn.question, "source": "chat"}, True)
    except ApiError as error:
        return f"It could not be kept: {error.message}"
    return Lesson(**answered["lesson"]).words()


def listing_filters(
    since: str | None = Query(None, max_length=100, description="From this time (ISO 8601 or epoch seconds)."),
    until: str | None = Query(None, max_length=100, description="Before this time."),
    model: str | None = Query(None, max_length=200, description="A model id, or its version (hash) or a prefix."),
    verdict: str | None = Query(None, max_length=16, description="anomalous, normal or error."),
    source: str | None = Query(None, max_length=1000, description="Part of the image's file name."),
) -> dict:
    """The listing's filters, from the query (the list and its CSV export share them)."""
    return {"since": since, "until": until, "model": model, "verdict": verdict, "source": source}


def csv_export(records: RecordStore, filters: dict) -> Response:
    """The filtered inspections as a CSV file, written by the records' export."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "inspections.csv"
        try:
            records.export(path, "csv", **filters)
        except ValueError as error:
            raise ApiError(422, str(error)) from None
        return Response(
            path.read_bytes(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="inspections.csv"'},
        )


def records_routes(records: RecordStore | None, sessions: Conversations, keep_feedback: FeedbackKeeper) -> APIRouter:
    """The routes; without `records`, an inspection is found only among the conversations in memory."""
    router = APIRouter()

    @router.get("/v1/inspections")
    def list_inspections(
        filters: dict = Depends(listing_filters),
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=2**62),
    ) -> dict:
        """Recorded inspections, oldest first, filtered and paged (the service needs --records)."""
        try:
            found = kept(records).list(**filters, limit=limit, offset=offset)
            total = kept(records).count(**filters)
        except ValueError as error:
            raise ApiError(422, str(error)) from None
        return {"inspections": found, "total": total, "limit": limit, "offset": offset}

    @router.get("/v1/inspections.csv", response_class=Response)
    def export_inspections(filters: dict = Depends(listing_filters)) -> Response:
        """The filtered inspections as a CSV file (the records' export: the listing's columns)."""
        return csv_export(kept(records), filters)

    @router.get("/v1/inspections/{inspection_id}")
    def get_inspection(inspection_id: str) -> dict:
        """One inspection: its result, the findings, the chat so far and the feedback given (from the records
        when kept)."""
        if records is not None:
            recorded = records.get(inspection_id)
            if recorded is not None:
                return {"inspection_id": inspection_id, **recorded}
        session = sessions.get(inspection_id)
        if session is None:
            raise ApiError(404, f"unknown or expired inspection {inspection_id!r}")
        return {
            "inspection_id": inspection_id,
            "findings": session.findings.to_dict(),
            "chat": [turn.to_dict() for turn in session.turns],
        }

    @router.post("/v1/inspections/{inspection_id}/feedback", status_code=201)
    def give_feedback(inspection_id: str, feedback: FeedbackRequest) -> dict:
        """An operator's word on a recorded inspection (the service needs --records): the feedback as kept,
        and what it taught (`lessons.Lesson`: the model's new version and the image decided again by it, or
        why nothing was taught). An unknown inspection is a 404; a value that cannot be right (a box outside the
        image, a verdict other than normal or defective, feedback that says nothing) a 422 that names it."""
        return keep_feedback(inspection_id, feedback.model_dump(exclude={"teach"}), feedback.teach)

    return router
