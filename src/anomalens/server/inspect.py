"""The inspect part of the HTTP service: uploaded images → the predictor the request names (a stored model,
uploaded references or zero-shot) → one result per image, kept for chat and in the records; one image that
cannot be read or scored is its own error, never the request's."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid

from fastapi import APIRouter, File, Form, UploadFile

from ..predictor import Predictor, model_identity
from ..service import Inspection
from .context import ServiceContext
from .errors import ApiError
from .uploads import Upload, read_uploads

ZERO_SHOT_HELP = "No normal images: inspect on a zero-shot route (zero_shot_route)."
ZERO_SHOT_ROUTE_HELP = (
    "A registered zero-shot route by name (implies zero_shot): mutual, the images (at least 2) scored against "
    "each other, or clip, CLIP and text about class_name (where the service has CLIP weights). Default: clip "
    "when the service has CLIP weights, else mutual. The response's zero_shot_route says which was used."
)
BATCH_EVIDENCE_HELP = (
    "Decide the request's images as one batch: the threshold may move on the batch's own scores where they are "
    "clearly two groups (at least 16 images). Default: each image alone, its verdict depending on it and the "
    "model only. Each result's `decision.mode` says which."
)


def inspect_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/inspect")
    def inspect(
        files: list[UploadFile] = File(description="Images to inspect."),
        model_id: str | None = Form(None, description="A fitted model's id."),
        references: list[UploadFile] | None = File(None, description="Normal reference images (few-shot)."),
        zero_shot: bool = Form(False, description=ZERO_SHOT_HELP),
        zero_shot_route: str | None = Form(None, max_length=100, description=ZERO_SHOT_ROUTE_HELP),
        class_name: str | None = Form(None, max_length=100, description="Product class, for the answers."),
        overlay: bool = Form(False, description="Include the heatmap overlay PNG (base64)."),
        batch_evidence: bool = Form(False, description=BATCH_EVIDENCE_HELP),
    ) -> dict:
        route = zero_shot_route or (ctx.service.default_zero_shot_route if zero_shot else None)
        if bool(route) + (model_id is not None) + bool(references) != 1:
            raise ApiError(
                400,
                "give exactly one of model_id (a fitted model), references (normal images) or zero_shot "
                "(or zero_shot_route)",
            )
        given = ctx.uploads(files)
        given_refs = ctx.uploads(references) if references else []  # their hashes make a few-shot model's version
        inspector = chosen_predictor(ctx, model_id, given_refs, route, class_name)
        asked = {"class_name": class_name, "overlay": overlay, "batch_evidence": batch_evidence}
        return {"zero_shot_route": route} | inspect_given(ctx, given, inspector, model_id, asked, given_refs)

    return router


def inspect_given(
    ctx: ServiceContext,
    given: list[tuple[str, bytes]],
    inspector: Predictor,
    model_id: str | None,
    asked: dict,
    given_refs: list[tuple[str, bytes]],
) -> dict:
    """The /v1/inspect answer for the images `given` (name, bytes) by `inspector`; `asked`: the request's
    class_name, overlay and batch_evidence. Server folders (folders.py) inspect through it too."""
    asked = asked | {"class_name": asked.get("class_name") or ""}
    queries = read_uploads(given, ctx.limits)
    model: dict = {"class_name": asked["class_name"]}
    if ctx.records is not None:  # few-shot: the version is the hash of the reference images as uploaded
        model |= dict(zip(("model_id", "model_version"), model_identity(inspector, [d for _, d in given_refs])))
    digests = [hashlib.sha256(data).hexdigest() for _, data in given]
    results = inspected_uploads(ctx, inspector, queries, digests, model, asked)
    return {"model_id": model_id, "expert": inspector.metadata.expert, "results": results}


def inspect_stored(ctx: ServiceContext, given: list[tuple[str, bytes]], model_id: str, asked: dict) -> dict:
    """The images `given` by the stored model `model_id` (server folders)."""
    return inspect_given(ctx, given, ctx.store.get(model_id), model_id, asked, [])


def chosen_predictor(
    ctx: ServiceContext,
    model_id: str | None,
    given_refs: list[tuple[str, bytes]],
    zero_shot_route: str | None,
    class_name: str | None,
) -> Predictor:
    """The predictor the request names: a zero-shot route, a stored model, or one fitted on the uploaded
    references."""
    if zero_shot_route:
        runs = ctx.service.zero_shot_routes()
        if zero_shot_route not in runs:  # unknown, or one this service has no CLIP for: the client's to change
            raise ApiError(
                400, f"zero-shot route {zero_shot_route!r} is not served here; choose one of {', '.join(runs)}"
            )
        try:
            return ctx.service.zero_shot(zero_shot_route, class_name)
        except (ValueError, FileNotFoundError) as error:
            raise ApiError(503, f"zero-shot route {zero_shot_route} is not available: {error}") from None
    if model_id is not None:
        return ctx.store.get(model_id)
    refs = read_uploads(given_refs, ctx.limits)
    normal = [u.image for u in refs if u.image is not None]
    if not normal:
        raise ApiError(400, "no readable reference image", references=[f"{u.name}: {u.error}" for u in refs])
    return ctx.service.fit(normal)


def inspected_uploads(
    ctx: ServiceContext, inspector: Predictor, queries: list[Upload], digests: list[str], model: dict, options: dict
) -> list[dict]:
    """A result per upload, in order (`digests`: each upload's SHA-256); an unreadable one is its error."""
    readable = [u for u in queries if u.image is not None]
    if not readable:
        results = [{"file": u.name, "ok": False, "error": u.error} for u in queries]
        raise ApiError(400, "no readable image to inspect", results=results)
    try:
        inspections = iter(
            ctx.service.inspect(
                inspector,
                [u.image for u in readable if u.image is not None],
                class_name=options["class_name"],
                batch_evidence=options["batch_evidence"],
            )
        )
        return [
            kept_result(ctx, u, next(inspections), options["overlay"], model | {"image_sha256": digest})
            if u.image is not None
            else {"file": u.name, "ok": False, "error": u.error}
            for u, digest in zip(queries, digests)
        ]
    except ValueError as error:  # route B with fewer than 2 readable images
        raise ApiError(400, str(error)) from None


def kept_result(ctx: ServiceContext, upload: Upload, inspection: Inspection, overlay: bool, fields: dict) -> dict:
    """The image's result, kept for chat (and in the records); one that fails here (its overlay, its answer, its
    record) is its own error."""
    try:
        return _kept(ctx, upload, inspection, overlay, fields)
    except Exception as error:  # noqa: BLE001 - this image's failure alone, never the request's
        failed = inspection.failed(error).result
        return {"file": upload.name, "ok": False, "error": failed.error}


def _kept(ctx: ServiceContext, upload: Upload, inspection: Inspection, overlay: bool, fields: dict) -> dict:
    if not inspection.ok:
        return {"file": upload.name, "ok": False, "error": inspection.result.error}
    session = ctx.service.chat(inspection)
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
    if ctx.records is not None:  # written before it is answered: what a client is told is on record
        from ..records import inspection_record
        from ..records.chats import findings_json

        findings = findings_json(inspection.findings)
        ctx.records.add_inspection(
            inspection_record(
                record,
                id=inspection_id,
                expert=inspection.result.expert,
                findings=findings,
                defect_type=guess.name if guess else None,
                **fields,
            )
        )
    ctx.sessions.add(inspection_id, session)
    if overlay:
        buffer = io.BytesIO()
        assert session.images is not None and session.images.overlay is not None  # service.chat shows it
        session.images.overlay.save(buffer, format="PNG")
        record["overlay_png"] = base64.b64encode(buffer.getvalue()).decode()
    return record
