"""The spread of normal values, robust to an odd one out: shared by the experts' normalisation (fusion)
and the decision's thresholds; and the Student-t distribution the decision's probabilities follow."""

from __future__ import annotations

import math

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


def student_t_cdf(t: float, dof: float) -> float:
    """P(T ≤ t) of Student's t with `dof` degrees of freedom, in plain Python (deciding needs no scipy): the
    regularised incomplete beta function I_x(dof/2, 1/2), x = dof/(dof + t²), by its continued fraction."""
    if not math.isfinite(t):
        return 1.0 if t > 0 else 0.0 if t < 0 else 0.5
    tail = 0.5 * _incomplete_beta(dof / 2, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t > 0 else tail


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Lentz's continued fraction, Numerical Recipes)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast below this point: use the symmetry there
        return 1.0 - _incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    value = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            value *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * value / a
