"""Anomaly map → defect regions (connected components) and where they are, in AnomalyGPT's words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

MIN_AREA_FRACTION = 0.0005  # components smaller than this share of the image are noise (unless the peak)
ROWS, COLS = ("top", "", "bottom"), ("left", "", "right")


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
    area_fraction: float  # share of the image's pixels
    peak: float  # highest anomaly score inside
    centroid: tuple[float, float]  # x, y in pixels
    location: str  # 3×3 grid cell: "top left", "top", …, "center", …, "bottom right"

    def to_dict(self) -> dict:
        return asdict(self)


def grid_location(x: float, y: float, width: int, height: int) -> str:
    """Name of the 3×3 grid cell holding point (x, y)."""
    row = ROWS[min(int(3 * y / height), 2)]
    col = COLS[min(int(3 * x / width), 2)]
    return " ".join(part for part in (row, col) if part) or "center"


def find_regions(
    anomaly_map: np.ndarray, threshold: float, seed: float | None = None, image_size: tuple[int, int] | None = None
) -> list[Region]:
    """Connected components (8-connectivity) of map ≥ threshold, highest peak first. With `seed`, only
    components whose peak reaches it are kept (hysteresis), except the highest one, which always is.
    With `image_size` (width, height), boxes and centroids are given in that image's pixels: the map
    may be a smaller rendering of it, which is much cheaper to analyse."""
    mask = anomaly_map >= threshold
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return []
    height, width = anomaly_map.shape
    out_w, out_h = image_size or (width, height)
    sx, sy = out_w / width, out_h / height
    keep_min = MIN_AREA_FRACTION * height * width
    # Per-region sums with bincount: one pass over the image however many specks there are.
    flat = labels.ravel()
    areas = np.bincount(flat, minlength=count + 1)[1:]
    ys, xs = np.indices(labels.shape)
    cy = np.bincount(flat, ys.ravel(), count + 1)[1:] / areas
    cx = np.bincount(flat, xs.ravel(), count + 1)[1:] / areas
    slices = ndimage.find_objects(labels)
    inside = flat > 0
    peaks = np.full(count + 1, -np.inf)
    np.maximum.at(peaks, flat[inside], anomaly_map.ravel()[inside])
    peaks = peaks[1:]
    best = int(np.argmax(peaks))
    regions = []
    for i, (rows, cols) in enumerate(slices):
        if i != best and (areas[i] < keep_min or (seed is not None and peaks[i] < seed)):
            continue
        regions.append(
            Region(
                box=(round(cols.start * sx), round(rows.start * sy), round(cols.stop * sx), round(rows.stop * sy)),
                area_fraction=float(areas[i] / (height * width)),
                peak=float(peaks[i]),
                centroid=(float((cx[i] + 0.5) * sx - 0.5), float((cy[i] + 0.5) * sy - 0.5)),
                location=grid_location(cx[i], cy[i], width, height),
            )
        )
    return sorted(regions, key=lambda r: -r.peak)


def location_names(regions: Sequence[Region]) -> list[str]:
    """The regions' grid cells, each named once, strongest region first."""
    return list(dict.fromkeys(r.location for r in sorted(regions, key=lambda r: -r.peak)))


def describe_location(regions: list[Region]) -> str:
    """Where the defects are, e.g. "bottom left" or "top right and center" (strongest region first)."""
    names = location_names(regions)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
