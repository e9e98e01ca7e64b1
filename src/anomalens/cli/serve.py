"""`anomalens serve`: the inspection service over HTTP, with its web chat page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .common import app, err, fail
from .files import check_writable
from .options import ClipModelOpt, ClipWeightsOpt, MaxPixelsOpt
from .records import RecordsOpt, open_records

SERVE_MODULES = {"fastapi", "uvicorn", "starlette", "multipart", "python_multipart"}  # what the serve extra installs


# long: its 16 options are the signature typer reads; the body is 35 lines
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    models: Annotated[Path, typer.Option(help="Folder of model files the service serves and fits into.")] = Path(
        "anomalens-models"
    ),
    api_key: Annotated[
        Optional[str],
        typer.Option(envvar="ANOMALENS_API_KEY", help="Require this key (X-API-Key header) on /v1 requests."),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Language backend for chat: grounded, llama-cpp or openai.")
    ] = "grounded",
    llm_model: Annotated[Optional[Path], typer.Option(help="GGUF file for llama-cpp.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint for the openai backend.")] = None,
    llm_name: Annotated[Optional[str], typer.Option(help="Model name for the openai backend.")] = None,
    vision: Annotated[bool, typer.Option(help="The openai model reads images.")] = False,
    guard: Annotated[str, typer.Option(help="correct, judge or off.")] = "correct",
    max_request_mb: Annotated[
        float,
        typer.Option(min=0.01, help="Largest request body accepted, in MB (at least 0.01: 10 KB)."),
    ] = 64,
    max_pixels: MaxPixelsOpt = 40_000_000,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
    records: RecordsOpt = None,
    folder_root: Annotated[
        Optional[list[str]],
        typer.Option(help="NAME=PATH: a server folder the page may list and inspect (repeatable; none: off)."),
    ] = None,
):
    """Start the inspection service: REST API under /v1 (docs at /docs) and the web chat page at /."""
    try:
        import uvicorn

        from ..server import Limits, create_app
        from ..server.folders import folder_roots
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in SERVE_MODULES:
            raise
        fail("the service needs the serve extra: pip install 'anomalens[serve]'")
    language_model = _language_model(backend, llm_model, base_url, llm_name, vision)
    check_writable(models)
    try:
        roots = folder_roots(folder_root or [])
    except ValueError as error:
        fail(str(error))
    store = open_records(records) if records else None  # inspections, chats and fit jobs outlive a restart
    request_bytes = int(max_request_mb * 1024 * 1024)
    limits = Limits(
        max_request_bytes=request_bytes, max_file_bytes=min(request_bytes, Limits.max_file_bytes), max_pixels=max_pixels
    )
    application = create_app(
        models,
        api_key=api_key,
        language_model=language_model,
        guard=guard,
        limits=limits,
        clip_weights=clip_weights,
        clip_model=clip_model,
        records=store,
        folder_roots=roots,
    )
    err.print(
        f"AnomaLens at http://{escape(host)}:{port}/ (API docs: /docs); models in {escape(str(models.resolve()))}"
        + (f"; records in {escape(repr(store))}" if store else "")
        + "".join(f"; folder {escape(name)}: {escape(str(path))}" for name, path in roots.items())
    )
    uvicorn.run(application, host=host, port=port, log_level="warning")


def _language_model(backend: str, llm_model: Path | None, base_url: str | None, llm_name: str | None, vision: bool):
    """The chat's language model (None: the grounded composer); a backend that cannot start fails the command."""
    from ..language import BackendError, create_language_model

    try:
        return create_language_model(backend, model_path=llm_model, base_url=base_url, model=llm_name, vision=vision)
    except BackendError as error:
        fail(str(error))
