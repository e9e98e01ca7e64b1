"""After the experts: tiles' maps stitched back into their image's map (overlaps blended) and the image's score
taken as its highest tile's. In numpy, shared by the torch inspector and the ONNX runtime."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .preprocessing import OVERLAP, TilePlan


def blend_window(size: int, overlap: float = OVERLAP) -> np.ndarray:
    """(size, size) weights of one tile's map when overlapping maps are averaged: 1 in the middle, falling
    linearly toward the border over half the overlap, so each tile's border (where its features see zero
    padding) gives way to the neighbour that sees that place whole. Never 0: a canvas edge, which one tile
    alone covers, keeps its value."""
    ramp = max(1.0, size * overlap / 2)
    distance = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5)
    edge = np.clip(distance / ramp, 1e-3, 1.0).astype(np.float32)
    return edge[:, None] * edge[None, :]


class Stitching:
    """One image's map assembled from its tiles' maps (each (size, size), in any order), overlaps blended by
    `blend_window`. Holds two canvas-sized float32 arrays, never the tiles."""

    def __init__(self, plan: TilePlan):
        self.plan = plan
        self.total = np.zeros(plan.canvas, np.float32)
        self.weight = np.zeros(plan.canvas, np.float32)
        self.window = blend_window(plan.size)

    def add(self, index: int, tile_map: np.ndarray) -> None:
        if len(self.plan.origins) == 1:  # nothing to blend with: the map as it is
            self.total = np.asarray(tile_map, np.float32)
            return
        y, x = self.plan.origins[index]
        s = self.plan.size
        self.total[y : y + s, x : x + s] += self.window * tile_map
        self.weight[y : y + s, x : x + s] += self.window

    def result(self) -> np.ndarray:
        """The (height, width) canvas map."""
        return self.total if len(self.plan.origins) == 1 else self.total / self.weight


class ImageMaps:
    """Tiles' maps and scores gathered into their images: each image's stitched map (`Stitching`) and its
    highest tile's score, the image's score."""

    def __init__(self, plans: Sequence[TilePlan]):
        self.plans = list(plans)
        self.stitchings = [Stitching(plan) for plan in plans]
        self.scores = np.full(len(plans), -np.inf)

    def add(self, image: int, index: int, tile_map: np.ndarray, score: float) -> bool:
        """Tile `index` of image `image`; True when it is that image's highest so far."""
        self.stitchings[image].add(index, tile_map)
        highest = score > self.scores[image]
        if highest:
            self.scores[image] = score
        return bool(highest)

    def maps(self) -> list[np.ndarray]:
        return [stitching.result() for stitching in self.stitchings]
