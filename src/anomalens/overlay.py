"""Heatmap overlays a person can read: the map is scaled by the calibration (not per image), so a normal
part stays calm and a defect glows; defect regions get a box."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .calibration import Calibration
from .data import as_float, to_uint8
from .regions import Region

# A compact "jet": blue → cyan → green → yellow → red at 0, .25, .5, .75, 1.
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array([[0, 0, 0.6], [0, 0.8, 1], [0.2, 0.9, 0.2], [1, 0.9, 0], [0.9, 0, 0]], dtype=np.float32)
BOX_COLOUR = (255, 0, 0)


def normalised_map(anomaly_map: np.ndarray, calibration: Calibration) -> np.ndarray:
    """0 at a typical normal pixel, 0.75 (yellow) at the pixel threshold, 1 (red) a third further on."""
    span = max(calibration.pixel_threshold - calibration.pixel_floor, 1e-12)
    return np.clip(0.75 * (anomaly_map - calibration.pixel_floor) / span, 0.0, 1.0).astype(np.float32)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → RGB floats in [0, 1]."""
    return np.stack([np.interp(values, _STOPS, _COLOURS[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def render_overlay(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    calibration: Calibration,
    regions: Sequence[Region] = (),
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """The image with the heatmap blended in where it is anomalous, and boxes around the regions. `size` is
    the (width, height) the boxes are measured in, when the image was decoded smaller than that."""
    heat = normalised_map(anomaly_map, calibration)
    alpha = (0.65 * heat)[..., None]  # normal areas keep the photo as it is
    blended = (1 - alpha) * as_float(image) + alpha * heat_colours(heat)
    picture = Image.fromarray(to_uint8(blended))
    draw = ImageDraw.Draw(picture)
    width = max(1, round(max(picture.size) / 200))
    sx, sy = (picture.width / size[0], picture.height / size[1]) if size else (1.0, 1.0)
    for region in regions:
        x0, y0, x1, y1 = region.box
        left, right = _drawn_span(x0, x1, sx, picture.width)
        top, bottom = _drawn_span(y0, y1, sy, picture.height)
        draw.rectangle((left, top, right, bottom), outline=BOX_COLOUR, width=width)
    return picture


def _drawn_span(start: int, stop: int, scale: float, length: int) -> tuple[int, int]:
    """A box's [start, stop) along one axis, in the pixels of the image as given → the first and last pixel
    of the picture drawn (which may be smaller: a strip decoded at half size), at least one pixel and inside
    it. Scaled as floats, a 1-pixel box on a half-size picture would end before it starts."""
    first = min(max(math.floor(start * scale), 0), length - 1)
    return first, min(max(math.ceil(stop * scale) - 1, first), length - 1)
