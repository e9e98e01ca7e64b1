"""Time series, with the same shape as images: a per-step anomaly map from registered series detectors, a
decision per channel from normal data only, anomalous time windows described in words, and grounded answers.

Nothing here needs torch: `load` (CSV / Parquet), `registry` (series detectors by name), `reference`
(nearest-neighbour distance to normal subsequences), `streaming` (online, past-only scores in bounded memory),
`decision`, `regions`, `detector` (composes them), `inspection` (one file from options: what every front end
calls), `output` (JSON, per-point CSV / Parquet, plot), `evaluation` (NAB layout), `nab` (NAB's scorer),
`answers` (findings and the grounded composer), `plot` (matplotlib, optional).
"""

from .decision import SeriesCalibration, calibrate_series
from .detector import SeriesDetector, SeriesResult
from .load import Series, SeriesFormatError, load_series, reference_length, series_failure, split_reference
from .reference import ReferenceDetector
from .regions import NormalRange, TimeWindow
from .registry import (
    DEFAULT_DETECTOR,
    SERIES_DETECTORS,
    ChannelDetector,
    register_series_detector,
    series_detector,
)
from .streaming import StreamingDetector, StreamingSeriesDetector

__all__ = [
    "DEFAULT_DETECTOR",
    "SERIES_DETECTORS",
    "ChannelDetector",
    "NormalRange",
    "ReferenceDetector",
    "Series",
    "SeriesCalibration",
    "SeriesDetector",
    "SeriesFormatError",
    "SeriesResult",
    "StreamingDetector",
    "StreamingSeriesDetector",
    "TimeWindow",
    "calibrate_series",
    "load_series",
    "reference_length",
    "register_series_detector",
    "series_detector",
    "series_failure",
    "split_reference",
]
