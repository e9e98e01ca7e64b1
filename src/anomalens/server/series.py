"""The series routes of the HTTP service (`/v1/series/inspect`, `/v1/series/chat`): uploaded CSV/Parquet
bytes → `series.inspection` (which sets up the detector) → result, grounded answers and the plot; findings
kept (bounded) so later questions are answered from them. Formatting only: no detector is built here."""

from __future__ import annotations

import base64
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from ..series import SeriesResult, series_failure
from ..series.answers import answer_series
from ..series.inspection import DetectOptions, ReadOptions, fixed_detector, inspect_series
from ..series.plot import PlotUnavailable, plot_series
from ..series.registry import DEFAULT_DETECTOR
from .errors import ApiError
from .questions import Question
from .uploads import Limits

if TYPE_CHECKING:
    from .context import ServiceContext


class SeriesChatRequest(BaseModel):
    series_id: str = Field(description="From a /v1/series/inspect result.")
    question: Question


def _load(name: str, data: bytes, read: ReadOptions):
    suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in (".csv", ".parquet", ".pq") else ".csv"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return read.load(path)
        except ValueError as error:  # name the upload, not the temporary file
            raise ValueError(str(error).replace(str(path), name or "upload")) from None


def inspect_upload(
    upload: tuple[str, bytes], reference: tuple[str, bytes] | None, read: ReadOptions, options: DetectOptions
) -> SeriesResult:
    """The result; raises ValueError with a message for the client."""
    fixed = fixed_detector(_load(*reference, read), options) if reference is not None else None
    return inspect_series(_load(*upload, read), options, fixed)


def plot_png(result: SeriesResult) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = plot_series(result, Path(folder) / "plot.png")
        return base64.b64encode(path.read_bytes()).decode()


def _plot(result: SeriesResult) -> dict:
    """The plot PNG (base64), or a note that it needs matplotlib: the result stands without it."""
    try:
        return {"plot_png": plot_png(result)}
    except PlotUnavailable as missing:
        return {"plot_note": str(missing)}


def _read_upload(upload: UploadFile, limits: Limits) -> tuple[str, bytes]:
    name, data = upload.filename or "", upload.file.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise ApiError(413, f"{name or 'upload'} is larger than {limits.max_file_bytes} bytes")
    return name, data


def series_routes(ctx: ServiceContext) -> APIRouter:
    router, limits, chats = APIRouter(), ctx.limits, ctx.series_chats

    @router.post("/v1/series/inspect")
    def series_inspect(
        file: UploadFile = File(description="A time series: CSV or Parquet, a time column and value columns."),
        reference: UploadFile | None = File(None, description="Normal data (default: the series' first part)."),
        reference_fraction: float = Form(0.2, gt=0, lt=1, description="Share of the series taken as normal."),
        reference_rows: int | None = Form(None, ge=8, description="The first N rows are normal (not the share)."),
        columns: list[str] | None = Form(None, description="Value columns (default: all but time and labels)."),
        detector: str = Form(DEFAULT_DETECTOR, description="A registered series detector."),
        plot: bool = Form(True, description="Include the plot PNG (base64)."),
    ) -> dict:
        upload = _read_upload(file, limits)
        ref = _read_upload(reference, limits) if reference is not None else None
        read = ReadOptions(columns=tuple(columns or ()))
        options = DetectOptions(detector, reference_fraction, reference_rows)
        try:
            result = inspect_upload(upload, ref, read, options)
            record = result.to_dict() | {"file": upload[0]}
            if plot:
                record |= _plot(result)
        except Exception as error:  # noqa: BLE001 - a bad or extreme file is the client's error, named
            raise ApiError(400, series_failure(upload[0] or "upload", error)) from None
        series_id = uuid.uuid4().hex
        chat = chats.add(series_id, result)
        record |= {"series_id": series_id, "answer": answer_series("Is anything wrong?", chat.findings)}
        record.pop("source")
        if ctx.records is not None:
            from ..records import series_record

            ctx.records.add_series(series_record({k: v for k, v in record.items() if k != "plot_png"}, id=series_id))
        return record

    @router.post("/v1/series/chat")
    def series_chat(request: SeriesChatRequest) -> dict:
        chat = chats.get(request.series_id)
        if chat is None:
            raise ApiError(404, f"unknown or expired series {request.series_id!r}; inspect it again")
        turn = ctx.answered(chat, request.question)
        return {"series_id": request.series_id, **turn.to_dict(), "turn": len(chat.turns)}

    return router
