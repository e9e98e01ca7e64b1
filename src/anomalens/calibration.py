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
- "synthetic-anomalies": the median (ANOMALY_QUANTILE) of the synthetic anomalies' scores, which are matched
  against the same k − 1 references and carry the same bias; used only from 2 to 8 references
  (SYNTHETIC_MIN_NORMAL, SYNTHETIC_MAX_NORMAL): with one reference both are scored against themselves, and
  with many the t-bound needs no help (there the synthetic line fell among good parts: 74 % of a steel
  product's good parts flagged full-shot). Model files written before may say "synthetic-quartile" (the lower
  quartile, at any number of references): they are decided by the threshold they were saved with.
Every constant of the two (`DecisionRule`) was chosen leave-one-set-out over the five shared sets
(`bench/verdicts.py`, bench/verdicts.md).
A stated operating point (`max_false_alarms`, e.g. 0.01) replaces either: the prediction bound at that level.
The probability is as sure as the evidence behind the threshold: a Student-t predictive distribution of the
normal scores (n − 1 degrees of freedom, their spread widened by √(1 + 1/n)) at the distance from the
threshold, or, where synthetic anomalies placed the threshold, with the normal and synthetic scores' joint
spread (at few shots the normal scores alone spread so little that a narrow curve was sure of wrong verdicts).
The pixel threshold, which outlines regions, is a high quantile of the normal pixels' scores. Test labels
are never seen.

Batch evidence (`batch_refined`), only when asked for (by default each image is decided alone, so its
verdict depends on it and the model only): the references' scores sit
above a new normal image's at few shots and with many references alike (above), so a batch whose own scores
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
    "DecisionRule",
    "batch_calibration",
    "anomalous_evidence",
    "batch_refined",
    "calibrate",
    "image_decision",
    "normal_mode",
    "prediction_factor",
    "reference_shift",
    "probability_calibration",
    "upper_threshold",
]

PREDICTION_LEVEL = 0.90  # "t-bound": a new normal image scores below the image threshold with this probability
ANOMALY_QUANTILE = 0.5  # "synthetic-anomalies": the image threshold is this quantile of synthetic anomalies' scores
SYNTHETIC_MAX_NORMAL = 8  # … where there are at most this many normal images …
SYNTHETIC_MIN_NORMAL = 2  # … and at least this many
PROBABILITY_WIDTH = 1.0  # the probability's Student-t scale, in units of the spread behind the threshold
SYNTHETIC_RULES = ("synthetic-anomalies", "synthetic-quartile")  # the latter: model files written before
# "labelled-defects": an operator's labelled defects (teaching), MIN_ANOMALIES or more, at any number of
# references: the threshold is this quantile of their scores where it lies below the t-bound. Real defects are
# surer evidence than synthetic ones; not yet chosen leave-one-set-out (bench/feedback.py will measure it)
LABELLED_QUANTILE = 0.25
RULES = ("t-bound", *SYNTHETIC_RULES, "labelled-defects", "false-alarms", "text-probability", "batch-mixture")
# what `method` may say: how the normal scores were obtained
METHODS = ("leave-one-out", "self-similarity", "held-out", "batch-mixture", "text-probability")
REFINED = (
    "t-bound",
    *SYNTHETIC_RULES,
    "labelled-defects",
)  # rules a batch refines (not a stated operating point, not text)
MIN_ANOMALIES = 8  # fewer synthetic anomaly scores than this are not used
SYNTHETIC_ANOMALIES = 24  # made from the first references, in turn
SYNTHETIC_SOURCES = SYNTHETIC_ANOMALIES  # references kept (as pixels) while fitting, to make them from
PIXEL_QUANTILE = 0.999  # normal pixels above the pixel threshold
LOGISTIC_SLOPE = 1.5  # probability 0.95 two σ past the threshold
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
    # field hold it), "synthetic-anomalies", "false-alarms" (a stated operating point), "text-probability"
    rule: str = "t-bound"
    n_synthetic: int = 0  # synthetic anomalies it was fitted on
    # a batch's two score modes (`batch_refined`): ((weight, mean, σ) of the low one, … of the high one), both
    # moved up where the lowest normal score held the threshold above their equal-odds point
    mixture: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    # the probability's width where it is not image_scale: the joint spread of normal and synthetic anomaly
    # scores when those placed the threshold (SYNTHETIC_RULES) — times the rule's width; files written before: None
    probability_scale: float | None = None
    lowest_normal: float | None = None  # the lowest normal image score (model files written before: None)
    normal_median: float | None = None  # the normal image scores' median (model files written before: None)

    def decide(self, score: float) -> bool:
        """The verdict: anomalous at or above the image threshold."""
        return score >= self.image_threshold

    def probability(self, score: float) -> float:
        """Anomaly probability, as sure as the evidence behind the threshold: the Student-t predictive
        distribution of the normal scores (n − 1 degrees of freedom, scale `probability_scale` or the normal
        spread, widened by √(1 + 1/n)) at the distance from the threshold, 0.5 on it; few references give
        heavy tails, so less sure probabilities. With no normal image (text probabilities): a logistic."""
        if self.n_normal < 1:
            z = (score - self.image_threshold) / (self.probability_scale or self.image_scale)
            return 1.0 / (1.0 + math.exp(-LOGISTIC_SLOPE * max(min(z, 50.0), -50.0)))
        spread, dof = self.predictive()
        return student_t_cdf((score - self.image_threshold) / spread, dof)

    def predictive(self) -> tuple[float, int]:
        """(scale, degrees of freedom) of the Student-t predictive distribution `probability` uses."""
        return self._widened(self.probability_scale or self.image_scale)

    def _widened(self, scale: float) -> tuple[float, int]:
        """`scale` widened by √(1 + 1/n) for one new draw, and the n − 1 degrees of freedom of n normal images."""
        return scale * math.sqrt(1 + 1 / self.n_normal), max(self.n_normal - 1, 1)

    def normal_predictive(self) -> dict:
        """Where a new normal part's score falls: the normal median and the Student-t predictive spread around it
        (the normal spread widened by √(1 + 1/n), n − 1 degrees of freedom); empty without normal scores."""
        if self.normal_median is None or self.n_normal < 1:
            return {}
        spread, dof = self._widened(self.image_scale)
        return {"normal_median": self.normal_median, "normal_spread": spread, "normal_dof": dof}

    def margin(self, score: float) -> float:
        """How far `score` lies from the threshold, in normal spreads (σ of the normal image scores)."""
        return (score - self.image_threshold) / self.image_scale

    def to_dict(self) -> dict:
        return asdict(self)


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


@dataclass(frozen=True)
class DecisionRule:
    """The constants that place the image threshold and shape the probability. Defaults chosen
    leave-one-set-out over every shared set by `bench/verdicts.py` (bench/verdicts.md)."""

    prediction_level: float = PREDICTION_LEVEL  # "t-bound": the one-sided prediction level
    anomaly_quantile: float = ANOMALY_QUANTILE  # "synthetic-anomalies": this quantile of the synthetic scores …
    synthetic_max_normal: int = SYNTHETIC_MAX_NORMAL  # … used only with at most this many normal images …
    synthetic_min_normal: int = SYNTHETIC_MIN_NORMAL  # … and at least this many (one: scored against itself)
    width: float = PROBABILITY_WIDTH  # the probability's spread, in units of the spread behind the threshold


def image_decision(
    scores: np.ndarray,
    anomalies: np.ndarray,
    max_false_alarms: float | None = None,
    rule: DecisionRule = DecisionRule(),
    defects: np.ndarray | None = None,
) -> tuple[str, float, float | None]:
    """(rule name, image threshold, probability scale or None for the normal spread) from the normal images'
    scores as if new, synthetic anomalies' scores (may be empty) and labelled defects' (taught; None: none)."""
    median, scale = median_and_spread(scores)
    placing = None
    if max_false_alarms is not None:
        if not 0 < max_false_alarms < 1:
            raise ValueError(
                f"max_false_alarms is a share of normal images above 0 and below 1, not {max_false_alarms}"
            )
        name, threshold = "false-alarms", median + prediction_factor(scores.size, 1 - max_false_alarms) * scale
    else:
        name, threshold = "t-bound", median + prediction_factor(scores.size, rule.prediction_level) * scale
        placing = _placing_evidence(scores.size, anomalies, defects, rule)
        if placing is not None and np.quantile(placing[1], placing[2]) < threshold:
            name, threshold = placing[0], float(np.quantile(placing[1], placing[2]))
    # a threshold placed by anomalies is as unsure as the two populations are spread: at few shots the normal
    # scores alone spread little, and a curve that narrow was sure of wrong verdicts
    spread = scale
    if placing is not None and name == placing[0]:
        spread = max(median_and_spread(np.r_[scores, placing[1]])[1], scale)
    return name, float(threshold), (rule.width * spread if rule.width * spread != scale else None)


def _placing_evidence(
    n_normal: int, anomalies: np.ndarray, defects: np.ndarray | None, rule: DecisionRule
) -> tuple[str, np.ndarray, float] | None:
    """(rule name, scores, quantile) of the anomalies that may place the line below the t-bound: labelled
    defects (taught: real ones, at any number of references), else synthetic anomalies within the rule's
    range of references; None where neither may."""
    if defects is not None and defects.size >= MIN_ANOMALIES:
        return "labelled-defects", defects, LABELLED_QUANTILE
    if anomalies.size >= MIN_ANOMALIES and rule.synthetic_min_normal <= n_normal <= rule.synthetic_max_normal:
        return "synthetic-anomalies", anomalies, rule.anomaly_quantile
    return None


def calibrate(
    normal_scores: np.ndarray,
    normal_maps: np.ndarray | Sequence[np.ndarray],
    method: str,
    anomaly_scores: np.ndarray | None = None,
    max_false_alarms: float | None = None,
    rule: DecisionRule = DecisionRule(),
    defect_scores: np.ndarray | None = None,
) -> Calibration:
    """normal_scores (n,) image scores and normal_maps, the n normal images' anomaly maps (an (n, H, W) array,
    or n maps of their own sizes: images laid out at their aspect ratio), scored as if new; anomaly_scores
    (m,), those of synthetic anomalies scored the same way (None: none); max_false_alarms, a stated share of
    normal images that may be flagged (None: the default rule); defect_scores, labelled defects' (taught)."""
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("calibration needs at least one normal image")
    pixels = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in normal_maps])
    peaks = np.array([np.max(m) for m in normal_maps])
    anomalies = np.asarray([] if anomaly_scores is None else anomaly_scores, dtype=np.float64)
    defects = None if defect_scores is None else np.asarray(defect_scores, dtype=np.float64)
    name, threshold, probability_scale = image_decision(scores, anomalies, max_false_alarms, rule, defects)
    return Calibration(
        image_threshold=threshold,
        image_scale=median_and_spread(scores)[1],
        pixel_threshold=float(np.quantile(pixels, PIXEL_QUANTILE)),
        region_threshold=upper_threshold(peaks)[0],
        pixel_floor=float(np.median(pixels)),
        n_normal=int(scores.size),
        method=method,
        rule=name,
        n_synthetic=int(anomalies.size) if name == "synthetic-anomalies" else 0,
        probability_scale=probability_scale,
        lowest_normal=float(scores.min()),
        normal_median=float(np.median(scores)),
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
