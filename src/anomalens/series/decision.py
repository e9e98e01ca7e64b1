"""The decision from normal data only: a threshold on per-step scores set by the reference itself.

The reference's leave-one-out map is cut into blocks of `BLOCK_WINDOWS` times the longest window; each
block's maximum is what the most extreme moment of a stretch of normal data scores. A Gumbel law (the
extreme-value law of maxima) fitted to those block maxima gives the threshold that one normal block in
`RETURN_BLOCKS` would exceed: about one false alarm per `RETURN_BLOCKS` blocks of normal data, however
long the series inspected (a per-block 90 % bound, as for one image, would alarm every few blocks).
`max_reference_alarms` (a count) raises it so that the reference itself would raise at most that many alarms.

Each channel is decided on its own (a channel with few distinct values, whose normal scores run high, must
never silence the others), and the channels together keep the stated family-wise rate: with C channels,
each channel's block return period is Šidák's, 1 / (1 - (1 - 1/RETURN_BLOCKS)^(1/C)), so that a normal
block raises an alarm on any channel once in RETURN_BLOCKS blocks (channels taken as independent; when
they are correlated the rate is lower, never higher).
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


def gumbel_return_quantile(blocks: float) -> float:
    """The unit Gumbel's quantile that one block in `blocks` exceeds, -log(-log(q)): scipy's gumbel_r.ppf in
    closed form (the series path imports no scipy)."""
    return -math.log(-math.log(1.0 - 1.0 / blocks))


GUMBEL_RETURN_QUANTILE = gumbel_return_quantile(RETURN_BLOCKS)
FAMILY_RULE = f"Šidák over channels: a false alarm in at most 1 of {RETURN_BLOCKS} normal blocks on any channel"


def sidak_return_blocks(channels: int, family_blocks: float = RETURN_BLOCKS) -> float:
    """Per-channel return period (in blocks) that keeps the family-wise one in `family_blocks` over `channels`."""
    per_channel = -math.expm1(math.log1p(-1.0 / family_blocks) / max(channels, 1))  # 1 - (1 - p)^(1/C), exactly
    return 1.0 / per_channel


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


def calibrate_series(
    normal_map: np.ndarray,
    window: int,
    max_reference_alarms: int | None = None,
    return_blocks: float = RETURN_BLOCKS,
) -> SeriesCalibration:
    """One channel's threshold: one normal block in `return_blocks` exceeds it."""
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
        threshold = float(gumbel_return_quantile(return_blocks) * scale + loc)
    else:  # too few blocks for a tail: a wide margin over what there is
        threshold = median + 5.0 * spread
    scale = spread
    if max_reference_alarms is not None:
        ordered = np.sort(maxima)[::-1]
        if max_reference_alarms < ordered.size:
            threshold = max(threshold, float(np.nextafter(ordered[max_reference_alarms], np.inf)))
    return SeriesCalibration(float(threshold), float(scale), float(np.median(normal_map)), int(n_blocks))
