"""Anomaly map → defect regions (connected components) and where they are, in AnomalyGPT's words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

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
    labels, slices = components(anomaly_map >= threshold)
    count = len(slices)
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
    inside = flat > 0
    peaks = np.full(count + 1, -np.inf)
    np.maximum.at(peaks, flat[inside], anomaly_map.ravel()[inside])
    peaks = peaks[1:]
    best = int(np.argmax(peaks))
    regions = []
    for i, (rows, cols) in enumerate(slices):
        if i != best and (areas[i] < keep_min or (seed is not None and peaks[i] < seed)):
            continue
        (x0, x1), (y0, y1) = pixel_span(cols, sx, out_w), pixel_span(rows, sy, out_h)
        regions.append(
            Region(
                box=(x0, y0, x1, y1),
                area_fraction=float(areas[i] / (height * width)),
                peak=float(peaks[i]),
                centroid=(float((cx[i] + 0.5) * sx - 0.5), float((cy[i] + 0.5) * sy - 0.5)),
                location=grid_location(cx[i], cy[i], width, height),
            )
        )
    return sorted(regions, key=lambda r: -r.peak)


def pixel_span(cells: slice, scale: float, length: int) -> tuple[int, int]:
    """A component's [start, stop) along one axis of the map → the image's pixels: never empty, never outside
    the image, however the map was stretched (256 map rows over a 20-pixel-high image round to one row, or to
    none)."""
    start = min(max(round(cells.start * scale), 0), length - 1)
    return start, min(max(round(cells.stop * scale), start + 1), length)


def components(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """8-connected components of a boolean mask: labels 1… numbered in raster order of each component's first
    pixel, and each one's (rows, columns) bounding slices, as scipy.ndimage's `label` (3×3 structure) and
    `find_objects` give them. In numpy, for the torch- and scipy-free ONNX runtime: each row's runs are
    joined to the runs they touch on the row below."""
    height, width = mask.shape
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)  # runs in raster order: [start, end) on their row
    ends = np.nonzero(edges == -1)[1]
    span = width + 2  # row * span + column orders runs by row, then column
    touching_from = np.searchsorted(rows * span + ends, (rows + 1) * span + starts, "left")
    touching_to = np.searchsorted(rows * span + starts, (rows + 1) * span + ends, "right")
    parent = list(range(len(rows)))  # union-find over runs; a set's root is its first run

    def root(run: int) -> int:
        while parent[run] != run:
            parent[run] = parent[parent[run]]  # path halving
            run = parent[run]
        return run

    for run in range(len(rows)):
        for below in range(touching_from[run], touching_to[run]):
            a, b = root(run), root(below)
            parent[max(a, b)] = min(a, b)
    first_runs, run_labels = np.unique([root(run) for run in range(len(rows))], return_inverse=True)
    run_labels = run_labels.reshape(-1) + 1
    lengths = ends - starts
    first_pixels = rows * width + starts - (np.cumsum(lengths) - lengths)  # less the run's place in the list
    pixels = np.repeat(first_pixels, lengths) + np.arange(lengths.sum())
    labels = np.zeros(height * width, np.int32)
    labels[pixels] = np.repeat(run_labels, lengths)
    count = len(first_runs)
    top, left, bottom, right = (np.full(count, fill) for fill in (height, width, 0, 0))
    np.minimum.at(top, run_labels - 1, rows)
    np.minimum.at(left, run_labels - 1, starts)
    np.maximum.at(bottom, run_labels - 1, rows + 1)
    np.maximum.at(right, run_labels - 1, ends)
    slices = [(slice(int(t), int(b)), slice(int(x0), int(x1))) for t, b, x0, x1 in zip(top, bottom, left, right)]
    return labels.reshape(height, width), slices


def location_names(regions: Sequence[Region]) -> list[str]:
    """The regions' grid cells, each named once, strongest region first."""
    return list(dict.fromkeys(r.location for r in sorted(regions, key=lambda r: -r.peak)))


def describe_location(regions: list[Region]) -> str:
    """Where the defects are, e.g. "bottom left" or "top right and center" (strongest region first)."""
    names = location_names(regions)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
