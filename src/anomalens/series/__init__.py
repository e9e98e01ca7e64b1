"""Time series, with the same shape as images: a per-step anomaly map from experts, a decision from normal
data only, anomalous time windows described in words, and grounded answers about them.

Nothing here needs torch: `load` (CSV / Parquet), `reference` (nearest-neighbour distance to normal
subsequences), `streaming` (online, past-only scores in bounded memory), `decision`, `regions`,
`detector` (composes them), `answers` (findings and the grounded composer), `plot` (matplotlib).
"""

from .decision import SeriesCalibration, calibrate_series
from .detector import SeriesDetector, SeriesResult, stream_scores
from .load import Series, SeriesFormatError, load_series, series_failure, split_reference
from .regions import NormalRange, TimeWindow
from .streaming import StreamingDetector

__all__ = [
    "NormalRange",
    "Series",
    "SeriesCalibration",
    "SeriesDetector",
    "SeriesFormatError",
    "SeriesResult",
    "StreamingDetector",
    "TimeWindow",
    "calibrate_series",
    "load_series",
    "series_failure",
    "split_reference",
    "stream_scores",
]
