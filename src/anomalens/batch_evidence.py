"""Batch evidence: a batch's own image scores, where they are clearly two groups, refine the references'
decision (`batch_refined`), say how far today's parts sit from the references (`reference_shift`), and, with no
normal images at all, find the batch's normal images (`batch_calibration`).

Batch evidence (`batch_refined`), only when asked for (by default each image is decided alone, so its
verdict depends on it and the model only): the references' scores sit
above a new normal image's at few shots and with many references alike (`calibration`), so a batch whose own scores
form two modes says where its normal images actually are. Only a batch of BATCH_EVIDENCE_MIN images or more
that the bimodality gate (`bimodal`: a likelihood-ratio test of two Gaussian components against one, critical
values simulated on one-mode batches for a GATE_FALSE_MOVES false-move rate) finds clearly two groups may
move it: a two-component Gaussian mixture of the batch's scores gives the score where the two modes are
equally likely; where that lies below the references' threshold it becomes the threshold (the probability
stays the references' predictive one, about it: never a mixture posterior of a handful of images). It only ever
lowers the threshold, so no batch, however defective, pulls it up (raising it too, where the low mode lay
below the references' line, lost defects on magnetic_tile and raised it on all-defective batches there).
Nor below the lowest reference's own score (`lowest_normal`): a line that would flag every reference, each
a known normal image scored as new, is too low (a batch whose normal images form two modes, battery_weld at
2–4 shots, put it there); the mixture (kept in `mixture`, for the record) then moves up with it.
`bench/verdicts.md` measures it against the reference rule alone.

With no normal images at all (zero-shot), `batch_calibration` first finds the batch's own normal images
without labels: a one- or two-component Gaussian mixture of the log image scores, the number chosen by
BIC; with two, the images of the low component are taken as normal. `calibration.calibrate` then runs on
them, so verdicts and regions work exactly as with references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .calibration import SYNTHETIC_RULES, Calibration, calibrate

REFINED = (
    "t-bound",
    *SYNTHETIC_RULES,
    "labelled-defects",
)  # rules a batch refines (not a stated operating point, not text)
SPLITS = (0.2, 0.35, 0.5, 0.65, 0.8)  # a batch mixture's EM starts from its scores split at these quantiles
MIXTURE_MIN = 8  # zero-shot batches smaller than this are not split into modes: all their images calibrate
BATCH_EVIDENCE_MIN = 16  # batches smaller than this never move the references' threshold
GATE_FALSE_MOVES = 0.05  # share of one-mode batches the bimodality gate takes for two groups
GATE_MIN_SIGMA = 0.05  # the gate's components are at least this wide, in the batch's σ
GATE_SPLITS = (0.25, 0.5, 0.75)  # the gate's EM starts from its scores split at these quantiles
TRANSFORM_POWERS = tuple(np.round(np.linspace(-1.0, 3.0, 41), 2))  # the gate's Yeo-Johnson powers
# (batch size, highest 95 % quantile of `gate_statistic` on one-mode batches of that size, normal, gamma(2) or
# lognormal(σ 0.5); gamma's rises with size), plus 0.5 for the simulation's own sampling error: simulated
# once, 1,000 batches each, fixed seed, by
# bench/bimodality_gate.py; between sizes interpolated in log size, beyond the last extended along the last step
GATE_CRITICAL = ((16, 11.25), (24, 11.58), (32, 12.17), (48, 12.42), (64, 13.39), (128, 16.84))


def batch_calibration(scores: np.ndarray, maps: np.ndarray | Sequence[np.ndarray]) -> Calibration:
    """Calibration from an unlabeled batch: the images that a two-component mixture of log scores puts
    in the low (normal) component — or all, when BIC prefers a single component — calibrate as normal
    images. Robust to a majority of defective images as long as the normal ones form their own mode."""
    scores = np.asarray(scores, dtype=np.float64)
    normal = normal_mode(scores)
    return calibrate(scores[normal], [m for m, keep in zip(maps, normal) if keep], "batch-mixture")


def batch_refined(calibration: Calibration, scores: Sequence[float]) -> Calibration:
    """`calibration` refined by a batch's own image scores (see the module's docstring); unchanged for
    batches under BATCH_EVIDENCE_MIN images, batches the bimodality gate (`bimodal`) does not find clearly two
    groups, modes that would raise the threshold (or lower it no further than the lowest normal score), or a
    rule that is not the references' own (a stated false-alarm rate, text probabilities, a zero-shot batch's).
    The probability stays the references' predictive one, about the moved threshold."""
    values = np.asarray([s for s in scores if math.isfinite(s)], dtype=np.float64)
    if calibration.rule not in REFINED or calibration.method == "batch-mixture" or len(values) < BATCH_EVIDENCE_MIN:
        return calibration
    if not bimodal(values):
        return calibration
    fit = _two_modes(values)
    threshold = None if fit is None else _equal_odds(fit)
    floor = -math.inf if calibration.lowest_normal is None else calibration.lowest_normal
    if fit is None or threshold is None or max(threshold, floor) >= calibration.image_threshold:
        return calibration
    if threshold < floor:  # both modes move up: they are equally likely at the floor
        fit = tuple((weight, mean + floor - threshold, sigma) for weight, mean, sigma in fit)  # type: ignore[assignment]
        threshold = floor
    return replace(calibration, image_threshold=threshold, rule="batch-mixture", mixture=fit)


def reference_shift(calibration: Calibration, scores: Sequence[float]) -> float | None:
    """How far a batch's normal-looking images (the low mode of its scores, `normal_mode`) sit from the
    references' own scores: the medians' difference in normal spreads. Positive: today's parts score higher
    than the references did (more false alarms than stated); negative: lower (defects near the line pass).
    None for batches under BATCH_EVIDENCE_MIN scores, or a calibration with no references' median."""
    values = np.asarray([s for s in scores if math.isfinite(s)], dtype=np.float64)
    if calibration.normal_median is None or len(values) < BATCH_EVIDENCE_MIN:
        return None
    return float((np.median(values[normal_mode(values)]) - calibration.normal_median) / calibration.image_scale)


def bimodal(values: Sequence[float] | np.ndarray) -> bool:
    """Whether a batch's scores are clearly two groups: the likelihood ratio of a two-component Gaussian
    mixture against one component (`gate_statistic`) exceeds what one-mode batches of that size reach in
    GATE_FALSE_MOVES of cases (`gate_critical`). Under BATCH_EVIDENCE_MIN scores: never."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return len(x) >= BATCH_EVIDENCE_MIN and float(gate_statistic(x[None])[0]) > gate_critical(len(x))


def gate_critical(n: int) -> float:
    """The (1 − GATE_FALSE_MOVES) quantile of `gate_statistic` on one-mode batches of n scores: GATE_CRITICAL
    interpolated in log n; beyond its last size, extended linearly in n along its last step (a slightly skewed
    mode's statistic grows with n)."""
    sizes, values = zip(*GATE_CRITICAL)
    if n > sizes[-1]:
        return values[-1] + (values[-1] - values[-2]) / (sizes[-1] - sizes[-2]) * (n - sizes[-1])
    return float(np.interp(math.log(max(n, sizes[0])), np.log(sizes), values))


def gate_statistic(batches: np.ndarray) -> np.ndarray:
    """2·(log-likelihood of two Gaussian components − of one) for each row of (B, n) scores, after the
    Yeo-Johnson power that makes the row most like one Gaussian (`_most_gaussian`: a skewed single mode,
    lognormal or gamma-like, shifted or not, is not taken for two). Vectorised over rows, plain numpy."""
    x = _most_gaussian(np.asarray(batches, dtype=np.float64))
    x = (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-300)  # the ratio is affine-free
    n = x.shape[1]
    one = -0.5 * n * (1 + math.log(2 * math.pi))  # standardised: σ = 1 is the fit
    best = np.full(len(x), -np.inf)
    for split in GATE_SPLITS:
        best = np.maximum(best, _em_rows(x, split))
    return np.maximum(2 * (best - one), 0.0)


def _most_gaussian(x: np.ndarray) -> np.ndarray:
    """Each row, standardised by its median and robust spread, Yeo-Johnson transformed by the power in
    TRANSFORM_POWERS of highest profile likelihood as one Gaussian: a skewed single mode, wherever it lies,
    is made symmetric before the mixture is tried."""
    median = np.median(x, 1, keepdims=True)
    spread = 1.4826 * np.median(np.abs(x - median), 1, keepdims=True)
    z = (x - median) / np.maximum(spread, 1e-12 * np.maximum(np.abs(median), 1.0))
    up, down = np.log1p(np.maximum(z, 0)), np.log1p(np.maximum(-z, 0))
    jacobian = (up - down).sum(1)  # Σ sign(z)·log(1 + |z|)
    n = x.shape[1]
    best, chosen = np.full(len(x), -np.inf), z
    for power in TRANSFORM_POWERS:
        high = up if power == 0 else np.expm1(power * up) / power
        low = down if power == 2 else np.expm1((2 - power) * down) / (2 - power)
        y = np.where(z >= 0, high, -low)
        likelihood = -0.5 * n * np.log(np.maximum(y.var(1), 1e-300)) + (power - 1) * jacobian
        better = likelihood > best
        best = np.where(better, likelihood, best)
        chosen = np.where(better[:, None], y, chosen)
    return chosen


def _em_rows(x: np.ndarray, split: float, steps: int = 300) -> np.ndarray:
    """Log-likelihood of a two-component Gaussian mixture fitted by EM to each row of standardised (B, n)
    values, started from the row split at quantile `split`; a row stops once a step gains under 1e-5. A
    component's σ never falls below GATE_MIN_SIGMA (of the row's σ = 1): two values alone make no mode."""
    n = x.shape[1]
    cut = np.quantile(x, split, axis=1, keepdims=True)
    share = np.stack([(x <= cut), (x > cut)], -1).astype(np.float64)  # (B, n, 2) responsibilities
    result = np.full(len(x), -np.inf)
    active = np.arange(len(x))  # the rows still moving
    values = x
    for _ in range(steps):
        counts = share.sum(1) + 1e-12  # (B, 2)
        mean = (share * values[..., None]).sum(1) / counts
        deviation = values[..., None] - mean[:, None]
        sigma = np.maximum(np.sqrt((share * deviation**2).sum(1) / counts), GATE_MIN_SIGMA)
        joint = -0.5 * (deviation / sigma[:, None]) ** 2 + np.log(np.maximum(counts / n, 1e-300) / sigma)[:, None]
        total = np.logaddexp(joint[..., 0], joint[..., 1])
        likelihood = total.sum(1) - 0.5 * n * math.log(2 * math.pi)
        moving = likelihood - result[active] >= 1e-5
        result[active] = likelihood
        if not moving.any():
            break
        active, values = active[moving], values[moving]
        share = np.exp(joint[moving] - total[moving][..., None])
    return result


def _two_modes(values: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
    """((weight, mean, σ) low, … high) of a two-component Gaussian mixture fitted by EM, if BIC prefers it
    to one component and each mode holds at least two of the values. Plain numpy: the torch-free runtime
    (`deploy`), which has neither scipy nor scikit-learn, decides batches too."""
    x, n = values, len(values)
    floor = 1e-6 * max(float(np.ptp(x)), 1e-12)  # a mode of identical scores still has a width

    def log_density(mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        return -0.5 * ((x[:, None] - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)

    one = log_density(np.array([x.mean()]), np.array([max(float(x.std()), floor)])).sum()

    def em(split: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """EM from the values split at quantile `split`: (log-likelihood, weights, means, σs)."""
        parts = [x[x <= np.quantile(x, split)], x[x > np.quantile(x, split)]]
        if min(len(part) for part in parts) < 2:
            return -math.inf, np.ones(2) / 2, np.zeros(2), np.ones(2)
        weight = np.array([len(part) / n for part in parts])
        mean = np.array([part.mean() for part in parts])
        sigma = np.array([max(float(part.std()), floor) for part in parts])
        previous = -math.inf
        for _ in range(500):
            joint = log_density(mean, sigma) + np.log(np.maximum(weight, 1e-300))
            total = np.logaddexp(joint[:, 0], joint[:, 1])
            likelihood = float(total.sum())
            if likelihood - previous < 1e-9 * abs(likelihood):
                break
            previous = likelihood
            share = np.exp(joint - total[:, None])  # each value's responsibility of each mode
            counts = share.sum(0) + 1e-12
            weight, mean = counts / n, (share * x[:, None]).sum(0) / counts
            sigma = np.maximum(np.sqrt((share * (x[:, None] - mean) ** 2).sum(0) / counts), floor)
        return likelihood, weight, mean, sigma

    # EM finds a local optimum: start from several splits, keep the likeliest
    likelihood, weight, mean, sigma = max((em(split) for split in SPLITS), key=lambda fit: fit[0])
    bic_one, bic_two = -2 * one + 2 * math.log(n), -2 * likelihood + 5 * math.log(n)
    members = np.bincount(np.argmax(log_density(mean, sigma) + np.log(np.maximum(weight, 1e-300)), 1), minlength=2)
    if bic_two >= bic_one or members.min() < 2:
        return None
    low, high = np.argsort(mean)
    return tuple((float(weight[i]), float(mean[i]), float(sigma[i])) for i in (low, high))  # type: ignore[return-value]


def _equal_odds(fit: tuple[tuple[float, float, float], tuple[float, float, float]]) -> float | None:
    """The score between the two modes' centres where they are equally likely (bisection); None if none."""
    low, high = fit[0][1], fit[1][1]
    if not _high_posterior(low, fit) < 0.5 < _high_posterior(high, fit):
        return None
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _high_posterior(middle, fit) < 0.5 else (low, middle)
    return (low + high) / 2


def _high_posterior(score: float, fit: tuple[tuple[float, float, float], tuple[float, float, float]]) -> float:
    """The probability that `score` belongs to the high mode of `fit` ((weight, mean, σ) low, … high)."""
    logs = [math.log(max(w, 1e-300)) - math.log(s) - 0.5 * ((score - m) / s) ** 2 for w, m, s in fit]
    return 1.0 / (1.0 + math.exp(max(min(logs[0] - logs[1], 700.0), -700.0)))


def normal_mode(scores: np.ndarray) -> np.ndarray:
    """Boolean mask of the scores in the lowest mode of a 1- or 2-component Gaussian mixture (BIC)."""
    from sklearn.mixture import GaussianMixture  # here, not above: as scipy in `prediction_factor`

    x = np.log(np.maximum(scores, 1e-12))[:, None]
    if len(x) < MIXTURE_MIN:
        return np.ones(len(x), bool)
    fits = [GaussianMixture(k, random_state=0).fit(x) for k in (1, 2)]
    best = min(fits, key=lambda m: m.bic(x))
    if best.n_components == 1:
        return np.ones(len(x), bool)
    low = int(np.argmin(best.means_[:, 0]))
    normal = best.predict(x) == low
    return normal if normal.sum() >= 2 else np.ones(len(x), bool)
