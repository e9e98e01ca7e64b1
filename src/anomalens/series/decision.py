"""The decision from normal data only: a threshold on per-step scores set by the reference itself.

The reference's leave-one-out map is cut into blocks of `BLOCK_WINDOWS` times the longest window; each
block's maximum is what the most extreme moment of a stretch of normal data scores. A Gumbel law (the
extreme-value law of maxima) fitted to those block maxima gives the threshold that one normal block in
`RETURN_BLOCKS` would exceed: about one false alarm per `RETURN_BLOCKS` blocks of normal data, however
long the series inspected (a per-block 90 % bound, as for one image, would alarm every few blocks).
`max_false_alarms` raises it so that the reference itself would raise at most that many alarms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..calibration import LOGISTIC_SLOPE
from ..robust import median_and_spread

BLOCK_WINDOWS = 4
MIN_BLOCKS = 4
RETURN_BLOCKS = 1000
GUMBEL_IQR = math.log(math.log(4.0)) - math.log(math.log(4.0 / 3.0))  # interquartile range of a unit Gumbel
# the unit Gumbel's quantile that one block in RETURN_BLOCKS exceeds, -log(-log(q)): scipy's gumbel_r.ppf, in
# closed form (the series path imports no scipy)
GUMBEL_RETURN_QUANTILE = -math.log(-math.log(1.0 - 1.0 / RETURN_BLOCKS))


@dataclass(frozen=True)
class SeriesCalibration:
    threshold: float  # per-step score at and above which a step is anomalous
    scale: float  # spread of the normal block maxima
    normal_level: float  # median per-step score of the reference
    n_blocks: int

    def probability(self, score: float) -> float:
        z = (score - self.threshold) / self.scale
        return 1.0 / (1.0 + math.exp(-LOGISTIC_SLOPE * max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_series(normal_map: np.ndarray, window: int, max_false_alarms: int | None = None) -> SeriesCalibration:
    normal_map = np.asarray(normal_map, dtype=np.float64)
    block = max(1, min(BLOCK_WINDOWS * window, normal_map.size // MIN_BLOCKS))
    n_blocks = max(1, normal_map.size // block)
    maxima = normal_map[: n_blocks * block].reshape(n_blocks, block).max(1)
    median, spread = median_and_spread(maxima)
    q1, q3 = np.percentile(maxima, [25, 75])
    if maxima.size >= MIN_BLOCKS and q3 > q1:
        # Gumbel fitted from quartiles, not maximum likelihood: an anomaly left in the reference moves it little
        scale = (q3 - q1) / GUMBEL_IQR
        loc = float(np.median(maxima)) + scale * math.log(math.log(2.0))
        threshold = float(GUMBEL_RETURN_QUANTILE * scale + loc)
    else:  # too few blocks for a tail: a wide margin over what there is
        threshold = median + 5.0 * spread
    scale = spread
    if max_false_alarms is not None:
        ordered = np.sort(maxima)[::-1]
        if max_false_alarms < ordered.size:
            threshold = max(threshold, float(np.nextafter(ordered[max_false_alarms], np.inf)))
    return SeriesCalibration(float(threshold), float(scale), float(np.median(normal_map)), int(n_blocks))
