"""Decisions with no hand-set threshold: thresholds come from normal images only.

The inspector scores every normal training image as if it were new (leave-one-out: its own patches
are taken out of the memory bank), so the spread of those scores is what a new normal image looks
like. The image threshold is the one-sided 90 % prediction bound for a new normal image's score:
median + t(0.95, n−1)·√(1 + 1/n)·σ, which widens honestly when there are only a few references
(1.8σ for 4, 1.3σ for 40). The pixel threshold, which outlines regions, is a high quantile of the
normal pixels' scores. Test labels are never seen.

With no normal images at all (zero-shot), `batch_calibration` first finds the batch's own normal images
without labels: a one- or two-component Gaussian mixture of the log image scores, the number chosen by
BIC; with two, the images of the low component are taken as normal. The calibration above then runs on
them, so verdicts and regions work exactly as with references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .robust import MIN_SCALE, median_and_spread

__all__ = [
    "MIN_SCALE",
    "Calibration",
    "batch_calibration",
    "calibrate",
    "normal_mode",
    "prediction_factor",
    "probability_calibration",
    "upper_threshold",
]

PREDICTION_LEVEL = 0.90  # a new normal image scores below the image threshold with this probability
PIXEL_QUANTILE = 0.999  # normal pixels above the pixel threshold
LOGISTIC_SLOPE = 1.5  # probability 0.95 two σ past the threshold
MIXTURE_MIN = 8  # batches smaller than this are not split into modes: all their images calibrate


@dataclass(frozen=True)
class Calibration:
    image_threshold: float
    image_scale: float  # robust σ of normal image scores
    pixel_threshold: float  # regions extend over pixels at or above this
    region_threshold: float  # … and are reported only if their peak reaches this
    pixel_floor: float  # median normal pixel score: the overlay's zero
    n_normal: int
    method: str  # how normal scores were obtained: "leave-one-out" or "self-similarity"

    def probability(self, score: float) -> float:
        """Anomaly probability: a logistic of the distance from the threshold in units of normal spread."""
        z = (score - self.image_threshold) / self.image_scale
        return 1.0 / (1.0 + math.exp(-LOGISTIC_SLOPE * max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict:
        return asdict(self)


def upper_threshold(values: np.ndarray) -> tuple[float, float]:
    """(prediction bound, σ) of normal values (σ: `median_and_spread`)."""
    median, sigma = median_and_spread(values)
    return median + prediction_factor(np.size(values)) * sigma, sigma


def prediction_factor(n: int) -> float:
    """Student-t one-sided prediction bound for one new draw, in σ units, from n normal samples."""
    from scipy import stats  # here, not above: deciding (the torch-free ONNX runtime) needs no scipy

    return float(stats.t.ppf(PREDICTION_LEVEL, max(n - 1, 1)) * math.sqrt(1 + 1 / n))


def calibrate(normal_scores: np.ndarray, normal_maps: np.ndarray | Sequence[np.ndarray], method: str) -> Calibration:
    """normal_scores (n,) image scores and normal_maps, the n normal images' anomaly maps: an (n, H, W) array,
    or n maps of their own sizes (images laid out at their aspect ratio)."""
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("calibration needs at least one normal image")
    pixels = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in normal_maps])
    peaks = np.array([np.max(m) for m in normal_maps])
    threshold, scale = upper_threshold(scores)
    return Calibration(
        image_threshold=threshold,
        image_scale=scale,
        pixel_threshold=float(np.quantile(pixels, PIXEL_QUANTILE)),
        region_threshold=upper_threshold(peaks)[0],
        pixel_floor=float(np.median(pixels)),
        n_normal=int(scores.size),
        method=method,
    )


def probability_calibration() -> Calibration:
    """For experts whose scores are already anomaly probabilities (CLIP's text prompts, route A): the
    decision is at 0.5, where "anomalous" outweighs "normal", and regions are the patches above 0.5.
    The scale makes the reported probability follow the expert's near the threshold (slope 1 at 0.5)."""
    return Calibration(
        image_threshold=0.5,
        image_scale=LOGISTIC_SLOPE / 4,
        pixel_threshold=0.5,
        region_threshold=0.5,
        pixel_floor=0.25,
        n_normal=0,
        method="text-probability",
    )


def batch_calibration(scores: np.ndarray, maps: np.ndarray | Sequence[np.ndarray]) -> Calibration:
    """Calibration from an unlabeled batch: the images that a two-component mixture of log scores puts
    in the low (normal) component — or all, when BIC prefers a single component — calibrate as normal
    images. Robust to a majority of defective images as long as the normal ones form their own mode."""
    scores = np.asarray(scores, dtype=np.float64)
    normal = normal_mode(scores)
    return calibrate(scores[normal], [m for m, keep in zip(maps, normal) if keep], "batch-mixture")


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
