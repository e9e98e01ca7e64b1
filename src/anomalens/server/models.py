"""The models part of the HTTP service: list the stored models, fit one from uploaded normal images (a job to
poll), describe one (its version and lineage), delete one."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, UploadFile

from .context import ServiceContext
from .errors import ApiError
from .uploads import read_uploads


def model_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter()
    store = ctx.store

    @router.get("/v1/models")
    def list_models() -> dict:
        return {"models": store.list()}

    @router.post("/v1/models", status_code=202)
    def fit_model(
        files: list[UploadFile] = File(description="Normal images of the product."),
        model_id: str | None = Form(None, description="Id for the new model (default: generated)."),
    ) -> dict:
        if model_id is not None:
            store.path(model_id)  # validate before reading the images
        decoded = read_uploads(ctx.uploads(files), ctx.limits)
        good = [u.image for u in decoded if u.image is not None]
        skipped = [f"{u.name}: {u.error}" for u in decoded if u.error]
        if not good:
            raise ApiError(400, "no readable normal image to fit on", skipped=skipped)
        return store.start_fit(model_id, good, skipped).to_dict()

    @router.get("/v1/jobs/{job_id}")
    def job(job_id: str) -> dict:
        return store.job(job_id).to_dict()

    @router.get("/v1/models/{model_id}")
    def describe_model(model_id: str) -> dict:
        return store.describe(model_id)

    @router.delete("/v1/models/{model_id}")
    def delete_model(model_id: str) -> dict:
        store.delete(model_id)
        return {"deleted": model_id}

    return router
