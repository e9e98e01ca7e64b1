"""One series' inspection: a registered series detector per channel → a decision per channel → time windows.

`SeriesDetector(reference, detector="reference")` fits one detector (`registry`) per channel on the normal
reference and decides each channel from that channel's own normal scores (`decision`: a Gumbel threshold,
Šidák over channels for a stated family-wise rate; or the detector's own alarm level). The combined map is
each step's highest score in units of its channel's threshold, so 1 is the line on every channel and no
channel's scale can silence another. `inspect(series)` returns a `SeriesResult`: the combined and the
per-channel maps, the per-point decision, the verdict, its probability and the windows, described.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .decision import FAMILY_RULE, SeriesCalibration, calibrate_series, sidak_return_blocks
from .load import Series
from .regions import NormalRange, TimeWindow, find_windows
from .registry import DEFAULT_DETECTOR, ChannelDetector, series_detector


@dataclass
class SeriesResult:
    series: Series
    scores: np.ndarray  # (n,) combined map: the highest channel score in units of its channel's threshold
    channel_scores: np.ndarray  # (n, channels), each in its detector's units
    calibration: SeriesCalibration  # of the combined map: threshold 1
    channel_calibrations: list[SeriesCalibration]
    normals: list[NormalRange]  # each channel's normal range, from the reference
    windows: list[TimeWindow] = field(default_factory=list)
    reference_points: int = 0
    own_reference: bool = False  # the reference is the series' own start
    detector: str = DEFAULT_DETECTOR
    rule: str = FAMILY_RULE  # how the channels' decisions are combined

    @property
    def anomalous(self) -> bool:
        return bool(self.windows)

    @property
    def peak_score(self) -> float:
        return float(self.scores.max()) if self.scores.size else 0.0

    @property
    def probability(self) -> float:
        return self.calibration.probability(self.peak_score)

    @property
    def point_anomalous(self) -> np.ndarray:
        """The per-point decision: inside an anomalous window."""
        flags = np.zeros(len(self.series), dtype=bool)
        for w in self.windows:
            flags[w.start : w.end + 1] = True
        return flags

    def to_dict(self) -> dict:
        s = self.series
        return {
            "source": s.source,
            "points": len(s),
            "channels": s.channels,
            "left_out_columns": s.left_out,
            "detector": self.detector,
            "anomalous": self.anomalous,
            "probability": round(self.probability, 4),
            "peak_score": round(self.peak_score, 4),
            "decision": self.rule,
            "calibration": self.calibration.to_dict(),
            "channel_thresholds": {c: round(k.threshold, 4) for c, k in zip(s.channels, self.channel_calibrations)},
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
    def __init__(self, reference: Series, detector: str = DEFAULT_DETECTOR, max_reference_alarms: int | None = None):
        self.channels, self.name = reference.channels, detector
        self.detectors = [series_detector(detector) for _ in self.channels]
        self.normal_maps = [d.fit(reference.values[:, k]) for k, d in enumerate(self.detectors)]
        self.normals = [NormalRange.of(reference.values[:, k]) for k in range(len(self.channels))]
        self.reference_points = len(reference)
        blocks = sidak_return_blocks(len(self.channels))
        self.calibrations = [
            _channel_calibration(d, m, max_reference_alarms, blocks) for d, m in zip(self.detectors, self.normal_maps)
        ]
        self.thresholds = np.maximum([c.threshold for c in self.calibrations], 1e-12)  # a flat reference: 0
        self.rule = (
            FAMILY_RULE
            if self.detectors[0].alarm is None
            else f"each channel at the {detector} detector's own alarm level {self.detectors[0].alarm}"
        )
        relative = [c.scale / c.threshold for c in self.calibrations if c.threshold > 0]
        combined_normal = np.max(np.stack(self.normal_maps, axis=1) / self.thresholds, axis=1)
        self.calibration = SeriesCalibration(
            1.0,
            float(np.median(relative)) if relative else 1.0,
            float(np.median(combined_normal)),
            min(c.n_blocks for c in self.calibrations),
        )

    def inspect(self, series: Series, starts_with_reference: bool = False) -> SeriesResult:
        """Score a series; if it starts with the reference itself, those steps keep their own normal scores
        (leave-one-out or past-only) and only what follows is scored."""
        if series.channels != self.channels:
            raise ValueError(f"channels {series.channels} differ from the reference's {self.channels}")
        per_channel = np.stack(
            [
                self._channel_scores(d, k, series.values[:, k], starts_with_reference)
                for k, d in enumerate(self.detectors)
            ],
            axis=1,
        )
        relative = per_channel / self.thresholds
        scores = relative.max(1)
        windows = find_windows(scores, relative, series.values, series.channels, self.normals, 1.0)
        return SeriesResult(
            series,
            scores,
            per_channel,
            self.calibration,
            self.calibrations,
            self.normals,
            windows,
            self.reference_points,
            starts_with_reference,
            self.name,
            self.rule,
        )

    def _channel_scores(self, detector: ChannelDetector, k: int, values: np.ndarray, starts_with_reference: bool):
        if not starts_with_reference:
            return detector.score(values)
        ref = self.reference_points
        lead = min(ref, detector.context)  # the reference's last points, so the first steps after it are whole
        after = detector.score(values[ref - lead :])[lead:]
        return np.concatenate([self.normal_maps[k], after])


def _channel_calibration(
    detector: ChannelDetector, normal_map: np.ndarray, max_reference_alarms: int | None, return_blocks: float
) -> SeriesCalibration:
    if detector.alarm is not None:  # scores on a stated scale: the detector's own level
        return SeriesCalibration(detector.alarm, 1.0 - detector.alarm, float(np.median(normal_map)), 1)
    return calibrate_series(normal_map, detector.window, max_reference_alarms, return_blocks)
