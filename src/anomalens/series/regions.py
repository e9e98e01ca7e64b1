"""Anomalous time windows: where the per-step map crosses the threshold, and what happened there in words.

A window runs over consecutive anomalous steps (gaps shorter than `MERGE_GAP` steps are bridged). Its
description compares the values inside with the channel's normal range (1st–99th percentile of the
reference) and its normal step-to-step variation: a flat line, a spike or a dip, a drift, a level
change (drop or rise, in % of the normal level: only when the window's level is clearly outside the normal
range), or, with the values inside or at the edge of the normal range, a change of rhythm or shape. Numbers
are rounded to a hundredth of the normal range's width: finer digits are noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

MERGE_GAP = 8
SPIKE_STEPS = 16  # an excursion out of range no longer than this (and back) is a spike or a dip
FLAT_SHARE = 0.6  # share of steps that barely move in a flat line
SPIKE_MARGIN = 0.25  # … reaching this fraction of the range's width past it (less: the shape changed)
LEVEL_MARGIN = 0.1  # a level change is one past the normal range by at least this fraction of its width


@dataclass(frozen=True)
class NormalRange:
    low: float
    high: float
    wiggle: float  # typical |step-to-step change| in normal data
    median: float

    @staticmethod
    def of(values: np.ndarray) -> NormalRange:
        values = np.asarray(values, dtype=np.float64)
        low, median, high = np.percentile(values, [1, 50, 99])
        wiggle = float(np.median(np.abs(np.diff(values)))) if values.size > 1 else 0.0
        return NormalRange(float(low), float(high), wiggle, float(median))


@dataclass(frozen=True)
class TimeWindow:
    start: int  # first row
    end: int  # last row (inclusive)
    peak: int  # row of the highest score
    peak_score: float
    channels: list[str]  # most anomalous first
    kind: str  # spike, dip, drop, rise, drift, flat line, rhythm
    description: str

    def to_dict(self) -> dict:
        return asdict(self)


def anomalous_runs(flags: np.ndarray, merge_gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Inclusive (start, end) rows of runs of True, bridging gaps shorter than merge_gap."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > merge_gap)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def describe(values: np.ndarray, normal: NormalRange) -> tuple[str, str]:
    """(kind, words) for the values of one anomalous window of one channel."""
    v = np.asarray(values, dtype=np.float64)
    width = max(normal.high - normal.low, 1e-12)
    steps = np.abs(np.diff(v))
    if v.size >= MERGE_GAP and np.mean(steps <= 0.1 * normal.wiggle + 1e-12 * width) >= FLAT_SHARE:
        return "flat line", f"a flat line: the signal stopped varying (at about {_number(float(np.median(v)), width)})"
    quarters = [float(q.mean()) for q in np.array_split(v, 4)] if v.size > 2 * SPIKE_STEPS else []
    if (
        quarters
        and abs(quarters[-1] - quarters[0]) > 0.5 * width
        and (np.all(np.diff(quarters) > 0) or np.all(np.diff(quarters) < 0))
    ):
        change = quarters[-1] - quarters[0]
        way = "upward" if change > 0 else "downward"
        return (
            "drift",
            f"a drift {way} of {_number(abs(change), width)} over {v.size} steps "
            f"({_percent_text(abs(change), normal)} of the normal level)",
        )
    return _level_or_rhythm(v, normal, width)


def _level_or_rhythm(v: np.ndarray, normal: NormalRange, width: float) -> tuple[str, str]:
    """A spike or dip, a level change clearly outside the normal range, or a change of shape within it."""
    above, below = v > normal.high, v < normal.low
    med = float(np.median(v))
    normal_text = f"normal range {_number(normal.low, width)} to {_number(normal.high, width)}"
    up, down = v.max() - normal.high, normal.low - v.min()
    if (
        normal.low <= med <= normal.high
        and max(up, down) > SPIKE_MARGIN * width
        and (above | below).sum() <= SPIKE_STEPS
    ):
        if up >= down:
            return "spike", f"a spike up to {_number(v.max(), width)} ({normal_text})"
        return "dip", f"a dip down to {_number(v.min(), width)} ({normal_text})"
    level = f"to about {_number(med, width)} ({normal_text})"
    if med < normal.low - LEVEL_MARGIN * width:
        return "drop", f"a drop of {_percent_text(normal.median - med, normal)} below normal, {level}"
    if med > normal.high + LEVEL_MARGIN * width:
        return "rise", f"a rise of {_percent_text(med - normal.median, normal)} above normal, {level}"
    where = "inside" if normal.low <= med <= normal.high else "at the edge of"
    return "rhythm", f"a change of rhythm or shape (periodicity), with the values {where} the normal range"


def _number(x: float, width: float) -> str:
    """x to a hundredth of the normal range's width (at most 6 decimals; large values without any)."""
    decimals = min(6, max(0, -math.floor(math.log10(max(width, 1e-12) / 100))))
    return f"{x:,.{decimals}f}"


def _percent(change: float, normal: NormalRange) -> float:
    """A change in % of the normal median level (of the range's width when the level is near zero)."""
    return 100.0 * change / max(abs(normal.median), normal.high - normal.low, 1e-12)


def _percent_text(change: float, normal: NormalRange) -> str:
    p = _percent(change, normal)
    return f"{p:.0f} %" if p >= 1 else f"{p:.1g} %"


def find_windows(
    scores: np.ndarray,
    channel_scores: np.ndarray,
    values: np.ndarray,
    channels: list[str],
    normals: list[NormalRange],
    threshold: float,
) -> list[TimeWindow]:
    """Windows of one series: scores (n,) combined, channel_scores and values (n, channels)."""
    out = []
    for start, end in anomalous_runs(scores >= threshold):
        peak = start + int(np.argmax(scores[start : end + 1]))
        per_channel = channel_scores[start : end + 1].max(0)
        order = [int(k) for k in np.argsort(-per_channel) if per_channel[k] >= threshold] or [
            int(np.argmax(per_channel))
        ]
        main = order[0]
        kind, words = describe(values[start : end + 1, main], normals[main])
        out.append(TimeWindow(start, end, peak, float(scores[peak]), [channels[k] for k in order], kind, words))
    return out
