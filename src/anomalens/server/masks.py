"""A defect painted on the page with a brush: the feedback's `mask_png`, a PNG the image's size (base64 or a
data URL; the defect where it is neither black nor transparent). Checked against the image, it is kept as a
file beside the models (`<models>/feedback-masks/`, its path on record as the feedback's mask_path, which
`anomalens teach --from-records` reads) and its bounding box places the defect where no box was drawn."""

from __future__ import annotations

import base64
import binascii
import io
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ApiError

MASK_FOLDER = "feedback-masks"
DATA_URL = "data:image/png;base64,"


def painted(mask_png: str) -> np.ndarray:
    """The mask's pixels, True where painted; a 422 naming the problem where it is no PNG."""
    try:
        data = base64.b64decode(mask_png.removeprefix(DATA_URL), validate=True)
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise ValueError(f"it is {image.format}, not PNG")
            pixels = np.asarray(image.convert("RGBA"))
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError) as error:
        raise ApiError(422, f"mask_png: not a readable base64 PNG ({error})") from None
    return (pixels[..., 3] > 0) & (pixels[..., :3].max(axis=-1) > 0)


def kept_mask(mask_png: str, image_size: list[int] | None, folder: Path, inspection_id: str) -> dict:
    """The mask checked against the image's (width, height) and kept: the feedback's mask_path and the box
    around what is painted."""
    marked = painted(mask_png)
    height, width = marked.shape
    if image_size is None:
        raise ApiError(422, "mask_png: the inspection's image size is not on record, so a mask cannot be checked")
    if [width, height] != list(image_size):
        raise ApiError(
            422, f"mask_png is {width}×{height} pixels; the image is {image_size[0]}×{image_size[1]}: paint it at "
            "the image's size"
        )  # fmt: skip
    rows, columns = np.nonzero(marked)
    if not len(rows):
        raise ApiError(422, "mask_png marks no pixel: paint the defect, or send no mask")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{inspection_id}-{uuid.uuid4().hex[:8]}.png"
    Image.fromarray(marked.astype(np.uint8) * 255).save(path)
    box = [int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1]
    return {"mask_path": str(path), "box": box}
