"""The inspection service over HTTP: a versioned REST API (`/v1`, OpenAPI at `/docs`) and the web chat page,
on one FastAPI app. Line software posts images and gets verdicts; a person uploads a photo, sees the
heatmap and chats about it. Inspections run concurrently (a fitted inspector's predict changes nothing);
only the language model, whose llama.cpp context is not thread-safe, answers one question at a time."""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import threading
import uuid
from collections.abc import Mapping
from importlib.resources import files as package_files
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..language import LanguageModel
from ..predictor import Predictor, model_identity
from ..series import series_failure
from ..series.answers import answer_series
from ..service import Conversations, Inspection, InspectionService, ModelStore, StoreError
from ..version import __version__
from .errors import ApiError
from .folders import folder_routes
from .limits import BodyLimit
from .records import corrected_in_chat, feedback_keeper, records_routes
from .references import reference_routes
from .series import SeriesChats, inspect_upload, plot_png
from .uploads import Limits, read_uploads, return_freed_memory

if TYPE_CHECKING:
    from ..records import RecordStore


class ChatRequest(BaseModel):
    inspection_id: str = Field(description="From a /v1/inspect result.")
    question: str = Field(min_length=1, max_length=2000, json_schema_extra={"pattern": r"\S"})

    @field_validator("question")
    @classmethod
    def question_has_words(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("the question is empty (it holds only spaces)")
        return question.strip()


class SeriesChatRequest(BaseModel):
    series_id: str = Field(description="From a /v1/series/inspect result.")
    question: str = Field(min_length=1, max_length=2000, json_schema_extra={"pattern": r"\S"})

    @field_validator("question")
    @classmethod
    def question_has_words(cls, question: str) -> str:
        return ChatRequest.question_has_words(question)


def create_app(
    models_dir: str | Path,
    *,
    api_key: str | None = None,
    language_model: LanguageModel | None = None,
    guard: str = "correct",
    limits: Limits = Limits(),
    clip_weights: str | Path | None = None,
    clip_model: str | None = None,
    records: RecordStore | None = None,
    folder_roots: Mapping[str, Path] | None = None,
) -> FastAPI:
    """The app; with `records`, every inspection, chat turn, series inspection and fit job is written there,
    and an inspection (and its chat) is found there after a restart. `folder_roots`: named server folders
    the page may read and inspect (folders.py; none: that feature is off)."""
    return_freed_memory()
    app = FastAPI(
        title="AnomaLens",
        version=__version__,
        description="Industrial visual anomaly inspection: verdicts, anomaly maps, regions and answers.",
    )
    store = ModelStore(models_dir, jobs=records.fit_jobs(models_dir) if records is not None else None)
    service = InspectionService(
        language_model=language_model, guard=guard, clip_weights=clip_weights, clip_model=clip_model
    )
    sessions = Conversations()  # inspections kept for chat, bounded in count and in picture bytes
    series_chats = SeriesChats(language_model)  # series findings kept for chat
    model_lock = threading.Lock()  # one language-model call at a time (llama.cpp contexts are not thread-safe)
    keep_feedback = feedback_keeper(records, sessions, store)  # the API's, the page's and the chat's corrections
    if records is not None:
        from ..records import inspection_record, series_record
        from ..records.chats import findings_json, restored_session

    # ---- errors and limits ---------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return JSONResponse({"error": error.message, **error.extra}, status_code=error.status)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        return JSONResponse({"error": "invalid request: " + "; ".join(problems)}, status_code=422)

    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)  # inside the key check: added first

    @app.middleware("http")
    async def guard_requests(request: Request, call_next):
        if request.url.path.startswith("/v1/") and request.url.path != "/v1/health" and api_key:
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
            if not secrets.compare_digest(given.encode(), api_key.encode()):
                return JSONResponse(
                    {"error": "missing or wrong API key (send it in the X-API-Key header)"}, status_code=401
                )
        return await call_next(request)

    def uploads(items: list[UploadFile] | None) -> list[tuple[str, bytes]]:
        items = items or []
        if len(items) > limits.max_files:
            raise ApiError(413, f"too many files ({len(items)}; the limit is {limits.max_files})")
        return [(item.filename or "", item.file.read(limits.max_file_bytes + 1)) for item in items]

    # ---- API -----------------------------------------------------------------------------------
    @app.get("/v1/health")
    def health() -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "models": len(store.ids()),
            "language_backend": language_model.name if language_model else "grounded",
        }

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"models": store.list()}

    @app.post("/v1/models", status_code=202)
    def fit_model(
        files: list[UploadFile] = File(description="Normal images of the product."),
        model_id: str | None = Form(None, description="Id for the new model (default: generated)."),
    ) -> dict:
        if model_id is not None:
            store.path(model_id)  # validate before reading the images
        decoded = read_uploads(uploads(files), limits)
        good = [u.image for u in decoded if u.image is not None]
        skipped = [f"{u.name}: {u.error}" for u in decoded if u.error]
        if not good:
            raise ApiError(400, "no readable normal image to fit on", skipped=skipped)
        return store.start_fit(model_id, good, skipped).to_dict()

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str) -> dict:
        return store.job(job_id).to_dict()

    @app.get("/v1/models/{model_id}")
    def describe_model(model_id: str) -> dict:
        return store.describe(model_id)

    @app.delete("/v1/models/{model_id}")
    def delete_model(model_id: str) -> dict:
        store.delete(model_id)
        return {"deleted": model_id}

    @app.post("/v1/inspect")
    def inspect(
        files: list[UploadFile] = File(description="Images to inspect."),
        model_id: str | None = Form(None, description="A fitted model's id."),
        references: list[UploadFile] | None = File(None, description="Normal reference images (few-shot)."),
        zero_shot: bool = Form(
            False,
            description="No normal images: CLIP and text about class_name when "
            "the service has CLIP weights, else the images (at least "
            "2) are scored against each other.",
        ),
        class_name: str | None = Form(None, max_length=100, description="Product class, for the answers."),
        overlay: bool = Form(False, description="Include the heatmap overlay PNG (base64)."),
        batch_evidence: bool = Form(
            False,
            description="Decide the request's images as one batch: the threshold may move on the batch's own "
            "scores where they are clearly two groups (at least 16 images). Default: each image alone, its "
            "verdict depending on it and the model only. Each result's `decision.mode` says which.",
        ),
    ) -> dict:
        if zero_shot + (model_id is not None) + bool(references) != 1:
            raise ApiError(
                400, "give exactly one of model_id (a fitted model), references (normal images) or zero_shot"
            )
        given = uploads(files)
        given_refs: list[tuple[str, bytes]] = []  # few-shot: the references, whose hashes make the model's version
        inspector: Predictor
        if zero_shot:
            try:
                inspector = service.zero_shot(class_name)
            except (ValueError, FileNotFoundError) as error:
                raise ApiError(503, f"zero-shot route A is not available: {error}") from None
        elif model_id is not None:
            inspector = store.get(model_id)
        else:
            given_refs = uploads(references)
            refs = read_uploads(given_refs, limits)
            normal = [u.image for u in refs if u.image is not None]
            if not normal:
                raise ApiError(400, "no readable reference image", references=[f"{u.name}: {u.error}" for u in refs])
            inspector = service.fit(normal)
        asked = {"class_name": class_name, "overlay": overlay, "batch_evidence": batch_evidence}
        return inspect_given(given, inspector, model_id, asked, given_refs)

    def inspect_given(
        given: list[tuple[str, bytes]], inspector: Predictor, model_id: str | None, asked: dict, given_refs: list
    ) -> dict:
        """The /v1/inspect answer for the images `given` (name, bytes) by `inspector`; `asked`: the request's
        class_name, overlay and batch_evidence. Server folders (folders.py) inspect through it too."""
        class_name = asked["class_name"]
        queries = read_uploads(given, limits)
        digests = {id(u): hashlib.sha256(data).hexdigest() for u, (_, data) in zip(queries, given)}
        model: dict = {"class_name": class_name or ""}
        if records is not None:  # few-shot: the version is the hash of the reference images as uploaded
            model |= dict(zip(("model_id", "model_version"), model_identity(inspector, [d for _, d in given_refs])))
        readable = [u for u in queries if u.image is not None]
        if not readable:
            raise ApiError(
                400,
                "no readable image to inspect",
                results=[{"file": u.name, "ok": False, "error": u.error} for u in queries],
            )
        try:
            inspections = iter(
                service.inspect(
                    inspector,
                    [u.image for u in readable if u.image is not None],
                    class_name=class_name or "",
                    batch_evidence=asked["batch_evidence"],
                )
            )
            results = [
                _record(u, next(inspections), asked["overlay"], model | {"image_sha256": digests[id(u)]})
                if u.image is not None
                else {"file": u.name, "ok": False, "error": u.error}
                for u in queries
            ]
        except ValueError as error:  # route B with fewer than 2 readable images
            raise ApiError(400, str(error)) from None
        return {"model_id": model_id, "expert": inspector.metadata.expert, "results": results}

    def _record(upload, inspection: Inspection, want_overlay: bool, fields: dict) -> dict:
        """The image's result, kept for chat (and in the records); one that fails here (its overlay, its
        answer, its record) is its own error."""
        try:
            return _inspected(upload, inspection, want_overlay, fields)
        except Exception as error:  # noqa: BLE001 - this image's failure alone, never the request's
            failed = inspection.failed(error).result
            return {"file": upload.name, "ok": False, "error": failed.error}

    def _inspected(upload, inspection: Inspection, want_overlay: bool, fields: dict) -> dict:
        if not inspection.ok:
            return {"file": upload.name, "ok": False, "error": inspection.result.error}
        session = service.chat(inspection)
        inspection_id = uuid.uuid4().hex
        guess = inspection.findings.defect_type if inspection.findings else None
        record = inspection.result.to_dict() | {
            "file": upload.name,
            "inspection_id": inspection_id,
            "answer": inspection.answer(),
            "defect_type": guess.name if guess and inspection.result.anomalous else None,  # a normal part has none
            "nearest_reference": inspection.result.nearest_reference,
        }
        record.pop("source")
        if records is not None:  # written before it is answered: what a client is told is on record
            records.add_inspection(
                inspection_record(
                    record,
                    id=inspection_id,
                    expert=inspection.result.expert,
                    findings=findings_json(inspection.findings),
                    defect_type=guess.name if guess else None,
                    **fields,
                )
            )
        sessions.add(inspection_id, session)
        if want_overlay:
            buffer = io.BytesIO()
            assert session.images is not None and session.images.overlay is not None  # service.chat shows it
            session.images.overlay.save(buffer, format="PNG")
            record["overlay_png"] = base64.b64encode(buffer.getvalue()).decode()
        return record

    def answered(session, question: str):
        """A chat turn, one language-model call at a time; a model that fails leaves the findings' answer and
        says why (the turn's model_error)."""
        with model_lock:
            return session.ask(question)

    def conversation(inspection_id: str):
        """The chat about an inspection: kept in memory, else rebuilt from its record (after a restart)."""
        session = sessions.get(inspection_id)
        if session is None and records is not None:
            recorded = records.get(inspection_id)
            session = restored_session(recorded, language_model, guard) if recorded else None
            if session is not None:
                sessions.add(inspection_id, session)
        return session

    @app.post("/v1/chat")
    def chat(request: ChatRequest) -> dict:
        session = conversation(request.inspection_id)
        if session is None:
            raise ApiError(404, f"unknown or expired inspection {request.inspection_id!r}; inspect the image again")
        turn = answered(session, request.question)
        if turn.correction is not None:  # "this one is fine", "it's a crack at the top": kept, and taught
            said = corrected_in_chat(keep_feedback, records, request.inspection_id, turn, session.findings.image_size)
            turn.answer = f"{turn.answer} {said}"
        if records is not None:
            records.add_chat_turn(request.inspection_id, len(session.turns), turn.to_dict())
        return {"inspection_id": request.inspection_id, **turn.to_dict(), "turn": len(session.turns)}

    @app.post("/v1/series/inspect")
    def series_inspect(
        file: UploadFile = File(description="A time series: CSV or Parquet, a time column and value columns."),
        reference: UploadFile | None = File(None, description="Normal data (default: the series' first part)."),
        reference_fraction: float = Form(0.2, gt=0, lt=1, description="Share of the series taken as normal."),
        columns: list[str] | None = Form(None, description="Value columns (default: all but the time)."),
        plot: bool = Form(True, description="Include the plot PNG (base64)."),
    ) -> dict:
        (name, data), *_ = uploads([file])
        ref = uploads([reference])[0] if reference is not None else None
        for upload_name, content in [(name, data)] + ([ref] if ref else []):
            if len(content) > limits.max_file_bytes:
                raise ApiError(413, f"{upload_name or 'upload'} is larger than {limits.max_file_bytes} bytes")
        try:
            result, reference_points = inspect_upload(name, data, ref, reference_fraction, columns)
            record = result.to_dict() | {"file": name}
            if plot:
                record["plot_png"] = plot_png(result, reference_points, ref is None)
        except Exception as error:  # noqa: BLE001 - a bad or extreme file is the client's error, named
            raise ApiError(400, series_failure(name or "upload", error)) from None
        series_id = uuid.uuid4().hex
        chat = series_chats.add(series_id, result, reference_points)
        record |= {"series_id": series_id, "answer": answer_series("Is anything wrong?", chat.findings)}
        record.pop("source")
        if records is not None:
            records.add_series(series_record({k: v for k, v in record.items() if k != "plot_png"}, id=series_id))
        return record

    @app.post("/v1/series/chat")
    def series_chat(request: SeriesChatRequest) -> dict:
        chat = series_chats.get(request.series_id)
        if chat is None:
            raise ApiError(404, f"unknown or expired series {request.series_id!r}; inspect it again")
        turn = answered(chat, request.question)
        return {"series_id": request.series_id, **turn.to_dict(), "turn": len(chat.turns)}

    app.include_router(records_routes(records, sessions, keep_feedback))
    app.include_router(reference_routes(store))

    def inspect_stored(given: list[tuple[str, bytes]], model_id: str, asked: dict) -> dict:
        return inspect_given(given, store.get(model_id), model_id, asked, [])

    app.include_router(folder_routes(folder_roots or {}, inspect_stored, limits))

    # ---- web page ------------------------------------------------------------------------------
    static = Path(str(package_files("anomalens") / "server" / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(static / "index.html")

    app.state.store = store
    app.state.records = records
    return app
