"""The normal reference images a stored model keeps (the first `evidence.KEPT_PIXELS` it was fitted on, at its
input size), served as PNG: the page shows a part beside the normal image it is most like. A name is looked up
in the model's own list of references, never used as a path."""

from __future__ import annotations

import io

import numpy as np
from fastapi import APIRouter, Response
from PIL import Image

from ..predictor import Predictor
from ..service import ModelStore
from .errors import ApiError


def reference_routes(store: ModelStore) -> APIRouter:
    router = APIRouter()

    # `name:path`: a name holding '/' (never a reference's) reaches the lookup and is refused there, in words
    @router.get(
        "/v1/models/{model_id}/references/{name:path}",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "The reference's kept pixels."}},
    )
    def reference(model_id: str, name: str) -> Response:
        """A normal reference the model keeps, as PNG at the model's input size (a result's `nearest_reference`
        names one); 404 when the model keeps none or not that one."""
        pixels = kept_reference(store.get(model_id), model_id, name)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    return router


def kept_reference(model: Predictor, model_id: str, name: str) -> np.ndarray:
    """The pixels (H×W×3 uint8) of the reference `name`: reference i's are the kept images' i-th, the first
    `len(pixels)` references only (an exported or older model keeps none)."""
    references = getattr(model, "references", None)
    evidence = getattr(model, "evidence", None)
    pixels = evidence.pixels if evidence is not None else None
    kept = references.names[: len(pixels)] if references is not None and pixels is not None else []
    if not kept:
        raise ApiError(404, f"model {model_id!r} keeps no reference images")
    if name not in kept:
        raise ApiError(404, f"model {model_id!r} keeps no reference named {name[:100]!r} (it keeps {', '.join(kept)})")
    assert pixels is not None  # references kept
    return pixels[kept.index(name)].permute(1, 2, 0).numpy()
