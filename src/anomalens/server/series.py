"""The series part of the HTTP service: uploaded CSV/Parquet bytes → `SeriesDetector` → result, grounded
answers and the plot; findings kept (bounded) so later questions are answered from them."""

from __future__ import annotations

import base64
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from ..series import SeriesDetector, SeriesResult, load_series, series_failure, split_reference
from ..series.answers import answer_series
from ..series.plot import plot_series
from .errors import ApiError
from .questions import Question

if TYPE_CHECKING:
    from .context import ServiceContext


def _load(name: str, data: bytes, columns: list[str] | None):
    suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in (".csv", ".parquet", ".pq") else ".csv"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return load_series(path, columns=columns or None)
        except ValueError as error:  # name the upload, not the temporary file
            raise ValueError(str(error).replace(str(path), name or "upload")) from None


def inspect_upload(
    name: str, data: bytes, reference: tuple[str, bytes] | None, fraction: float, columns: list[str] | None
) -> tuple[SeriesResult, int]:
    """(result, reference points); raises ValueError with a message for the client."""
    series = _load(name, data, columns)
    if reference is not None:
        detector = SeriesDetector(_load(reference[0], reference[1], columns))
        return detector.inspect(series), detector.reference_points
    ref, _ = split_reference(series, fraction)
    detector = SeriesDetector(ref)
    return detector.inspect(series, starts_with_reference=True), detector.reference_points


def plot_png(result: SeriesResult, reference_points: int, own_reference: bool) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = plot_series(result, Path(folder) / "plot.png", reference_points if own_reference else 0)
        return base64.b64encode(path.read_bytes()).decode()


class SeriesChatRequest(BaseModel):
    series_id: str = Field(description="From a /v1/series/inspect result.")
    question: Question


def series_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/series/inspect")
    def series_inspect(
        file: UploadFile = File(description="A time series: CSV or Parquet, a time column and value columns."),
        reference: UploadFile | None = File(None, description="Normal data (default: the series' first part)."),
        reference_fraction: float = Form(0.2, gt=0, lt=1, description="Share of the series taken as normal."),
        columns: list[str] | None = Form(None, description="Value columns (default: all but the time)."),
        plot: bool = Form(True, description="Include the plot PNG (base64)."),
    ) -> dict:
        (name, data), *_ = ctx.uploads([file])
        ref = ctx.uploads([reference])[0] if reference is not None else None
        for upload_name, content in [(name, data)] + ([ref] if ref else []):
            if len(content) > ctx.limits.max_file_bytes:
                raise ApiError(413, f"{upload_name or 'upload'} is larger than {ctx.limits.max_file_bytes} bytes")
        try:
            result, reference_points = inspect_upload(name, data, ref, reference_fraction, columns)
            record = result.to_dict() | {"file": name}
            if plot:
                record["plot_png"] = plot_png(result, reference_points, ref is None)
        except Exception as error:  # noqa: BLE001 - a bad or extreme file is the client's error, named
            raise ApiError(400, series_failure(name or "upload", error)) from None
        series_id = uuid.uuid4().hex
        chat = ctx.series_chats.add(series_id, result, reference_points)
        record |= {"series_id": series_id, "answer": answer_series("Is anything wrong?", chat.findings)}
        record.pop("source")
        if ctx.records is not None:
            from ..records import series_record

            ctx.records.add_series(series_record({k: v for k, v in record.items() if k != "plot_png"}, id=series_id))
        return record

    @router.post("/v1/series/chat")
    def series_chat(request: SeriesChatRequest) -> dict:
        chat = ctx.series_chats.get(request.series_id)
        if chat is None:
            raise ApiError(404, f"unknown or expired series {request.series_id!r}; inspect it again")
        turn = ctx.answered(chat, request.question)
        return {"series_id": request.series_id, **turn.to_dict(), "turn": len(chat.turns)}

    return router
