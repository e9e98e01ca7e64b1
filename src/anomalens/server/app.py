"""The inspection service over HTTP: a versioned REST API (`/v1`, OpenAPI at `/docs`) and the web chat page,
on one FastAPI app. Line software posts images and gets verdicts; a person uploads a photo, sees the
heatmap and chats about it. Inspections run concurrently (a fitted inspector's predict changes nothing);
only the language model, whose llama.cpp context is not thread-safe, answers one question at a time."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from functools import partial
from importlib.resources import files as package_files
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..language import LanguageModel
from ..service import Conversations, InspectionService, ModelStore, SeriesChats, StoreError
from ..version import __version__
from .chat import chat_routes
from .context import ServiceContext
from .errors import ApiError
from .folders import folder_routes
from .inspect import inspect_routes, inspect_stored
from .limits import BodyLimit
from .models import model_routes
from .records import feedback_keeper, records_routes
from .references import reference_routes
from .series import series_routes
from .uploads import Limits, return_freed_memory

if TYPE_CHECKING:
    from ..records import RecordStore


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
    sessions = Conversations()
    ctx = ServiceContext(
        store=store,
        service=InspectionService(
            language_model=language_model, guard=guard, clip_weights=clip_weights, clip_model=clip_model
        ),
        sessions=sessions,
        series_chats=SeriesChats(language_model),
        keep_feedback=feedback_keeper(records, sessions, store),
        records=records,
        limits=limits,
        language_model=language_model,
        guard=guard,
    )
    handle_errors(app)
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)  # inside the key check: added first
    require_key(app, api_key)

    @app.get("/v1/health")
    def health() -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "models": len(store.ids()),
            "language_backend": language_model.name if language_model else "grounded",
        }

    for routes in (model_routes, inspect_routes, chat_routes, series_routes):
        app.include_router(routes(ctx))
    app.include_router(records_routes(records, sessions, ctx.keep_feedback))
    app.include_router(reference_routes(store))
    app.include_router(folder_routes(folder_roots or {}, partial(inspect_stored, ctx), limits))
    serve_page(app)
    app.state.store = store
    app.state.records = records
    return app


def handle_errors(app: FastAPI) -> None:
    """Every error answered as `{"error": words}` with its status."""

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


def require_key(app: FastAPI, api_key: str | None) -> None:
    """With a key, every /v1 route but health asks for it (the X-API-Key header, or a Bearer token)."""

    @app.middleware("http")
    async def guard_requests(request: Request, call_next):
        if request.url.path.startswith("/v1/") and request.url.path != "/v1/health" and api_key:
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
            if not secrets.compare_digest(given.encode(), api_key.encode()):
                return JSONResponse(
                    {"error": "missing or wrong API key (send it in the X-API-Key header)"}, status_code=401
                )
        return await call_next(request)


def serve_page(app: FastAPI) -> None:
    """The web page at `/`, its scripts and styles under `/static` (served here: the page asks no other host)."""
    static = Path(str(package_files("anomalens") / "server" / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(static / "index.html")
