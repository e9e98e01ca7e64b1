"""The decision stage: verdicts with no hand-set threshold, fitted from normal images only.

Every route uses it the same way: `calibrate` (or `batch_calibration`, `probability_calibration`) gives a
`Calibration`, whose `decide` and `probability` turn an image score into the verdict, and whose `to_dict` is
its state in model files (a plain JSON dict, read back by `Calibration(**state)`).

The expert scores every normal reference as if it were new (leave-one-out: its own patches are taken out of
the memory bank), and, where it can (`Expert.left_out_scores`), synthetic anomalies made from the references
(`anomalous_evidence`), scored the same way. Two bounds place the image threshold, and the lower one is taken:
- "t-bound" (the rule of model files written before): the one-sided 90 % prediction bound for a new normal
  image's score, median + t(0.90, n−1)·√(1 + 1/n)·σ. Right with many references, too high with few:
  leave-one-out scores sit well above a new normal image's at k ≤ 8 (a reference is matched against k − 1
  others, a new image against all k), so it put the threshold above most defects (`bench/verdicts.md`,
  battery_weld k = 2: every defect passed).
- "synthetic-quartile": the lower quartile of the synthetic anomalies' scores, which are matched against the
  same k − 1 references and carry the same bias. With many references it can sit above real defects
  (battery_weld full-shot), which the t-bound then catches.
A stated operating point (`max_false_alarms`, e.g. 0.01) replaces either: the prediction bound at that level.
The probability is a logistic of the distance from the threshold, in units of the normal scores' spread, or,
where synthetic anomalies placed the threshold, of the normal and synthetic scores' joint spread (at few
shots the normal scores alone spread so little that the logistic was sure of wrong verdicts).
The pixel threshold, which outlines regions, is a high quantile of the normal pixels' scores. Test labels
are never seen.

Batch-aware refinement (`batch_refined`), when a batch is inspected together: the references' scores sit
above a new normal image's at few shots and with many references alike (above), so a batch whose own scores
form two modes says where its normal images actually are. A two-component Gaussian mixture of the batch's
scores (BIC against one) gives the score where the two modes are equally likely; where that lies below the
references' threshold it becomes the threshold, and the probability the high mode's posterior. It only ever
lowers the threshold, so no batch, however defective, pulls it up (raising it too, where the low mode lay
below the references' line, lost defects on magnetic_tile and raised it on all-defective batches there).
Nor below the lowest reference's own score (`lowest_normal`): a line that would flag every reference, each
a known normal image scored as new, is too low (a batch whose normal images form two modes, battery_weld at
2–4 shots, put it there); the mixture then moves up with it, so the posterior is 0.5 at the threshold.
`bench/verdicts.md` measures it against the reference rule alone.

With no normal images at all (zero-shot), `batch_calibration` first finds the batch's own normal images
without labels: a one- or two-component Gaussian mixture of the log image scores, the number chosen by
BIC; with two, the images of the low component are taken as normal. The calibration above then runs on
them, so verdicts and regions work exactly as with references.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .robust import MIN_SCALE, median_and_spread

if TYPE_CHECKING:  # deciding (the torch-free ONNX runtime) needs neither torch nor the experts
    import torch

    from .experts import Expert

__all__ = [
    "METHODS",
    "MIN_ANOMALIES",
    "MIN_SCALE",
    "RULES",
    "Calibration",
    "batch_calibration",
    "anomalous_evidence",
    "batch_refined",
    "calibrate",
    "normal_mode",
    "prediction_factor",
    "probability_calibration",
    "upper_threshold",
]

PREDICTION_LEVEL = 0.90  # "t-bound": a new normal image scores below the image threshold with this probability
ANOMALY_QUANTILE = 0.25  # "synthetic-quartile": the image threshold is this quantile of synthetic anomalies' scores
RULES = ("t-bound", "synthetic-quartile", "false-alarms", "text-probability", "batch-mixture")  # what `rule` may say
# what `method` may say: how the normal scores were obtained
METHODS = ("leave-one-out", "self-similarity", "held-out", "batch-mixture", "text-probability")
REFINED = ("t-bound", "synthetic-quartile")  # rules a batch refines (not a stated operating point, not text)
MIN_ANOMALIES = 8  # fewer synthetic anomaly scores than this are not used
SYNTHETIC_ANOMALIES = 24  # made from the first references, in turn
SYNTHETIC_SOURCES = SYNTHETIC_ANOMALIES  # references kept (as pixels) while fitting, to make them from
PIXEL_QUANTILE = 0.999  # normal pixels above the pixel threshold
LOGISTIC_SLOPE = 1.5  # probability 0.95 two σ past the threshold
SPLITS = (0.2, 0.35, 0.5, 0.65, 0.8)  # a batch mixture's EM starts from its scores split at these quantiles
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
    # how the image threshold was placed: "t-bound" (normal evidence alone; model files written before this
    # field hold it), "synthetic-quartile", "false-alarms" (a stated operating point), "text-probability"
    rule: str = "t-bound"
    n_synthetic: int = 0  # synthetic anomalies it was fitted on
    # a batch's two score modes (`batch_refined`): ((weight, mean, σ) of the low one, … of the high one), both
    # moved up where the lowest normal score held the threshold above their equal-odds point
    mixture: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    # the probability's width where it is not image_scale: the joint spread of normal and synthetic anomaly
    # scores when those placed the threshold ("synthetic-quartile"); model files written before: None
    probability_scale: float | None = None
    lowest_normal: float | None = None  # the lowest normal image score (model files written before: None)

    def decide(self, score: float) -> bool:
        """The verdict: anomalous at or above the image threshold."""
        return score >= self.image_threshold

    def probability(self, score: float) -> float:
        """Anomaly probability: the high mode's posterior where a batch refined the threshold, else a
        logistic of the distance from the threshold in units of `probability_scale` (or normal spread)."""
        if self.mixture is not None:
            return _high_posterior(score, self.mixture)
        z = (score - self.image_threshold) / (self.probability_scale or self.image_scale)
        return 1.0 / (1.0 + math.exp(-LOGISTIC_SLOPE * max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict:
        return asdict(self)


def upper_threshold(values: np.ndarray) -> tuple[float, float]:
    """(prediction bound, σ) of normal values (σ: `median_and_spread`)."""
    median, sigma = median_and_spread(values)
    return median + prediction_factor(np.size(values)) * sigma, sigma


def prediction_factor(n: int, level: float = PREDICTION_LEVEL) -> float:
    """Student-t one-sided prediction bound for one new draw, in σ units, from n normal samples."""
    # here, not above: deciding (the torch-free ONNX runtime) needs no scipy; special, not stats (the same
    # inverse t distribution without stats' half-second import, paid by every fit)
    from scipy.special import stdtrit

    return float(stdtrit(max(n - 1, 1), level) * math.sqrt(1 + 1 / n))


def calibrate(
    normal_scores: np.ndarray,
    normal_maps: np.ndarray | Sequence[np.ndarray],
    method: str,
    anomaly_scores: np.ndarray | None = None,
    max_false_alarms: float | None = None,
) -> Calibration:
    """normal_scores (n,) image scores and normal_maps, the n normal images' anomaly maps (an (n, H, W) array,
    or n maps of their own sizes: images laid out at their aspect ratio), scored as if new; anomaly_scores
    (m,), those of synthetic anomalies scored the same way (None: none); max_false_alarms, a stated share of
    normal images that may be flagged (None: the default rule)."""
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("calibration needs at least one normal image")
    pixels = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in normal_maps])
    peaks = np.array([np.max(m) for m in normal_maps])
    anomalies = np.asarray([] if anomaly_scores is None else anomaly_scores, dtype=np.float64)
    median, scale = median_and_spread(scores)
    if max_false_alarms is not None:
        if not 0 < max_false_alarms < 1:
            raise ValueError(
                f"max_false_alarms is a share of normal images above 0 and below 1, not {max_false_alarms}"
            )
        rule, threshold = "false-alarms", median + prediction_factor(scores.size, 1 - max_false_alarms) * scale
    else:
        rule, threshold = "t-bound", median + prediction_factor(scores.size) * scale
        if anomalies.size >= MIN_ANOMALIES and np.quantile(anomalies, ANOMALY_QUANTILE) < threshold:
            rule, threshold = "synthetic-quartile", float(np.quantile(anomalies, ANOMALY_QUANTILE))
    # a threshold placed by synthetic anomalies is as unsure as the two populations are spread: at few shots
    # the normal scores alone spread little, and a logistic that narrow was sure of wrong verdicts
    joint = median_and_spread(np.r_[scores, anomalies])[1] if rule == "synthetic-quartile" else 0.0
    return Calibration(
        image_threshold=threshold,
        image_scale=scale,
        pixel_threshold=float(np.quantile(pixels, PIXEL_QUANTILE)),
        region_threshold=upper_threshold(peaks)[0],
        pixel_floor=float(np.median(pixels)),
        n_normal=int(scores.size),
        method=method,
        rule=rule,
        n_synthetic=int(anomalies.size) if rule == "synthetic-quartile" else 0,
        probability_scale=joint if joint > scale else None,
        lowest_normal=float(scores.min()),
    )


def anomalous_evidence(
    expert: Expert, references: torch.Tensor, embed: Callable[[torch.Tensor], list[torch.Tensor]], seed: int = 0
) -> np.ndarray | None:
    """Image scores of SYNTHETIC_ANOMALIES synthetic anomalies (`anomalens.synth`: pastes, blends, stains of
    random size and strength) made from the first fitted references, `references` (n, 3, S, S) uint8: anomaly
    j is made in reference j mod n, from a random reference's content, and scored with its reference left out
    (`Expert.left_out_scores`). None when the expert cannot score them so."""
    import torch  # here, not above: as scipy in `prediction_factor`

    from .synth import foreground, synthesize

    rng = np.random.default_rng(seed)
    images = references.permute(0, 2, 3, 1).float().div(255).numpy()
    owners = [j % len(images) for j in range(SYNTHETIC_ANOMALIES)]
    objects = {i: foreground(images[i]) for i in set(owners)}  # once per reference, not per anomaly
    made = [synthesize(images[i], images[rng.integers(len(images))], rng, object_mask=objects[i]).image for i in owners]
    features = embed(torch.from_numpy(np.stack(made)).permute(0, 3, 1, 2).contiguous())
    scores = expert.left_out_scores(features, owners)
    return None if scores is None else scores.double().numpy()


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
        rule="text-probability",
    )


def batch_calibration(scores: np.ndarray, maps: np.ndarray | Sequence[np.ndarray]) -> Calibration:
    """Calibration from an unlabeled batch: the images that a two-component mixture of log scores puts
    in the low (normal) component — or all, when BIC prefers a single component — calibrate as normal
    images. Robust to a majority of defective images as long as the normal ones form their own mode."""
    scores = np.asarray(scores, dtype=np.float64)
    normal = normal_mode(scores)
    return calibrate(scores[normal], [m for m, keep in zip(maps, normal) if keep], "batch-mixture")


def batch_refined(calibration: Calibration, scores: Sequence[float]) -> Calibration:
    """`calibration` refined by a batch's own image scores (see the module's docstring); unchanged for
    batches under MIXTURE_MIN images, one mode, modes that would raise the threshold (or lower it no further
    than the lowest normal score), or a rule that is not the references' own (a stated false-alarm rate, text
    probabilities, a zero-shot batch's)."""
    values = np.asarray([s for s in scores if math.isfinite(s)], dtype=np.float64)
    if calibration.rule not in REFINED or calibration.method == "batch-mixture" or len(values) < MIXTURE_MIN:
        return calibration
    fit = _two_modes(values)
    threshold = None if fit is None else _equal_odds(fit)
    floor = -math.inf if calibration.lowest_normal is None else calibration.lowest_normal
    if fit is None or threshold is None or max(threshold, floor) >= calibration.image_threshold:
        return calibration
    if threshold < floor:  # both modes move up: the posterior is 0.5 at the floor
        fit = tuple((weight, mean + floor - threshold, sigma) for weight, mean, sigma in fit)  # type: ignore[assignment]
        threshold = floor
    return replace(calibration, image_threshold=threshold, rule="batch-mixture", mixture=fit)


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
