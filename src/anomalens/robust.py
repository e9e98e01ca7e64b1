"""The spread of normal values, robust to an odd one out: shared by the experts' normalisation (fusion)
and the decision's thresholds."""

from __future__ import annotations

import numpy as np

ROBUST_MIN = 8  # from this many normal values on, σ comes from the median absolute deviation
MIN_SCALE = 0.05  # σ never below this fraction of the median: a few references under-state spread


def median_and_spread(values: np.ndarray) -> tuple[float, float]:
    """(median, σ) of normal values; σ from the median absolute deviation when there are enough values to
    ignore an odd one out, else the standard deviation, never below MIN_SCALE·median."""
    values = np.asarray(values, dtype=np.float64)
    median = float(np.median(values))
    if values.size >= ROBUST_MIN:
        sigma = 1.4826 * float(np.median(np.abs(values - median)))
    else:
        sigma = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return median, max(sigma, MIN_SCALE * abs(median), 1e-6)
