"""The reference detector: distance of each subsequence to its nearest normal reference subsequence.

Matrix-profile style (an AB-join against the reference), at several window lengths, on raw values
(level shifts and spikes matter) and z-normalised (a changed shape or rhythm at the normal level).
The reference is scored against itself leave-one-out (a window never matches its own neighbourhood),
so each length's distances are put in units of its typical normal distance, and the decision can be
taken from normal data only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .registry import register_series_detector

LENGTHS = (8, 32)
MAX_BANK = 20_000  # reference windows kept per window length (evenly strided beyond): bounded work and memory
CHUNK = 1024


def windows(values: np.ndarray, w: int, znorm: bool) -> np.ndarray:
    """(n - w + 1, w) windows of a 1-D series, z-normalised per window if asked (flat windows → 0)."""
    win = sliding_window_view(np.asarray(values, dtype=np.float64), w)
    if not znorm:
        return np.array(win)
    mu, sd = win.mean(1, keepdims=True), win.std(1, keepdims=True)
    return np.where(sd > 1e-9 * (1.0 + np.abs(mu)), (win - mu) / np.maximum(sd, 1e-300), 0.0)


def nearest_distance(queries: np.ndarray, bank: np.ndarray, exclude: int = 0) -> np.ndarray:
    """Per query row, the Euclidean distance to the nearest bank row (per √w). With `exclude` > 0,
    queries are the bank itself and rows closer than `exclude` positions are not neighbours (leave-one-out)."""
    stride = max(1, -(-bank.shape[0] // MAX_BANK))
    idx = np.arange(0, bank.shape[0], stride)
    b = bank[idx]
    b2 = (b * b).sum(1)
    out = np.empty(queries.shape[0])
    for s in range(0, queries.shape[0], CHUNK):
        q = queries[s : s + CHUNK]
        d2 = b2[None, :] - 2.0 * q @ b.T
        if exclude:
            d2[np.abs(np.arange(s, s + q.shape[0])[:, None] - idx[None, :]) < exclude] = np.inf
        out[s : s + q.shape[0]] = d2.min(1) + (q * q).sum(1)
    return np.sqrt(np.maximum(out, 0.0) / bank.shape[1])


def step_map(window_scores: np.ndarray, w: int, n: int) -> np.ndarray:
    """Per time step, the mean score of the windows covering it: a spike peaks on its own step."""
    c = np.concatenate(([0.0], np.cumsum(window_scores)))
    t = np.arange(n)
    lo, hi = np.maximum(t - w + 1, 0), np.minimum(t, window_scores.size - 1)
    return (c[hi + 1] - c[lo]) / (hi - lo + 1)


@register_series_detector
class ReferenceDetector:
    """One channel's series detector on its normal reference; scores are in normal-distance units."""

    name = "reference"
    alarm = None  # the threshold is fitted to the reference's own leave-one-out scores

    def __init__(self, lengths: tuple[int, ...] = LENGTHS):
        self.lengths = lengths
        self.banks: dict[tuple[int, bool], np.ndarray] = {}
        self.units: dict[tuple[int, bool], float] = {}

    @property
    def window(self) -> int:
        return max(self.lengths)

    @property
    def context(self) -> int:
        return self.window - 1  # the windows that end on a step start this far before it

    def fit(self, reference: np.ndarray) -> np.ndarray:
        """Learn the reference; returns its own leave-one-out map (what normal scores)."""
        reference = np.asarray(reference, dtype=np.float64)
        if reference.size < 8:
            raise ValueError(f"a normal reference needs at least 8 points, got {reference.size}")
        self.lengths = tuple(w for w in self.lengths if reference.size >= 4 * w) or (max(2, reference.size // 4),)
        self.banks = {(w, z): windows(reference, w, z) for w in self.lengths for z in (False, True)}
        loo = []
        for key, bank in self.banks.items():
            d = nearest_distance(bank, bank, exclude=key[0])
            d[~np.isfinite(d)] = 0.0
            # a scale floor: a perfectly repeating reference must not make every tiny deviation infinite
            self.units[key] = max(float(np.median(d)), 1e-3 * float(np.std(reference)) + 1e-12, 1e-12)
            loo.append(step_map(d / self.units[key], key[0], reference.size))
        return np.max(loo, axis=0)

    def score(self, values: np.ndarray) -> np.ndarray:
        """Per-step score: the maximum over window lengths and raw / z-normalised distances."""
        values = np.asarray(values, dtype=np.float64)
        maps = [
            step_map(nearest_distance(windows(values, w, z), bank) / self.units[(w, z)], w, values.size)
            for (w, z), bank in self.banks.items()
            if values.size >= w
        ]
        return np.max(maps, axis=0) if maps else np.zeros(values.size)
