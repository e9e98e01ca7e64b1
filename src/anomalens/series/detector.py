"""One series' inspection: reference experts per channel → combined map → decision → time windows.

`SeriesDetector(reference)` fits a `ReferenceExpert` per channel on the normal reference and calibrates
the combined map (the maximum over channels) on the reference's own leave-one-out map. `inspect(series)`
returns a `SeriesResult`: the per-step map, which channel drives each step, the verdict, its
probability and the anomalous windows, described. `stream_scores` is the online route (NAB, live lines).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .decision import SeriesCalibration, calibrate_series
from .load import Series
from .reference import ReferenceExpert
from .regions import NormalRange, TimeWindow, find_windows
from .streaming import StreamingDetector


@dataclass
class SeriesResult:
    series: Series
    scores: np.ndarray  # (n,) per-step anomaly map: the maximum over channels
    channel_scores: np.ndarray  # (n, channels)
    calibration: SeriesCalibration
    normals: list[NormalRange]  # each channel's normal range, from the reference
    windows: list[TimeWindow] = field(default_factory=list)

    @property
    def anomalous(self) -> bool:
        return bool(self.windows)

    @property
    def peak_score(self) -> float:
        return float(self.scores.max()) if self.scores.size else 0.0

    @property
    def probability(self) -> float:
        return self.calibration.probability(self.peak_score)

    def to_dict(self) -> dict:
        s = self.series
        return {
            "source": s.source,
            "points": len(s),
            "channels": s.channels,
            "anomalous": self.anomalous,
            "probability": round(self.probability, 4),
            "peak_score": round(self.peak_score, 4),
            "calibration": self.calibration.to_dict(),
            "normal_ranges": {c: vars(n) for c, n in zip(s.channels, self.normals)},
            "missing_values_filled": s.missing,
            "gaps": [s.time_text(i) for i in s.gaps[:20]],
            "windows": [
                {
                    **w.to_dict(),
                    "start_time": s.time_text(w.start),
                    "end_time": s.time_text(w.end),
                    "peak_time": s.time_text(w.peak),
                }
                for w in self.windows
            ],
        }


class SeriesDetector:
    def __init__(self, reference: Series, max_false_alarms: int | None = None):
        self.channels = reference.channels
        self.experts = [ReferenceExpert(reference.values[:, k]) for k in range(len(self.channels))]
        self.normals = [NormalRange.of(reference.values[:, k]) for k in range(len(self.channels))]
        self.reference_points = len(reference)
        normal_map = np.max([e.normal_map for e in self.experts], axis=0)
        self.calibration = calibrate_series(normal_map, max(max(e.lengths) for e in self.experts), max_false_alarms)

    def inspect(self, series: Series, starts_with_reference: bool = False) -> SeriesResult:
        """Score a series; if it starts with the reference itself, those steps get their leave-one-out
        scores (scored against themselves they would all be 0)."""
        if series.channels != self.channels:
            raise ValueError(f"channels {series.channels} differ from the reference's {self.channels}")
        per_channel = np.stack([e.score(series.values[:, k]) for k, e in enumerate(self.experts)], axis=1)
        if starts_with_reference:
            per_channel[: self.reference_points] = np.stack([e.normal_map for e in self.experts], axis=1)
        scores = per_channel.max(1)
        windows = find_windows(
            scores, per_channel, series.values, series.channels, self.normals, self.calibration.threshold
        )
        return SeriesResult(series, scores, per_channel, self.calibration, self.normals, windows)


def stream_scores(values: np.ndarray, learning: int = 750) -> tuple[np.ndarray, np.ndarray]:
    """Online scores of a (n, channels) series, each step from the past only: (max over channels, driving channel)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    per_channel = np.stack([StreamingDetector(learning).update(values[:, k]) for k in range(values.shape[1])], axis=1)
    return per_channel.max(1), per_channel.argmax(1)
