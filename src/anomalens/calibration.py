"""The decision stage: verdicts with no hand-set threshold, fitted from normal images only.

Every route uses it the same way: `calibrate` (or `batch_calibration`, `probability_calibration`) gives a
`Calibration`, whose `decide` and `probability` turn an image score into the verdict, and whose `to_dict` is
its state in model files (a plain JSON dict, read back by `Calibration(**state)`).

The expert scores every normal reference as if it were new (leave-one-out), and, where it can
(`Expert.left_out_scores`), synthetic anomalies made from the references (`anomalous_evidence`). The lower of two
bounds places the image threshold (constants in `DecisionRule`, chosen leave-one-set-out, bench/verdicts.md):
- "t-bound": the one-sided 90 % prediction bound for a new normal image's score, median + t(0.90, n−1)·√(1 + 1/n)·σ.
  Too high with few references: a reference is matched against k − 1 others, a new image against all k
  (battery_weld k = 2: every defect passed);
- "synthetic-anomalies": the median of the synthetic anomalies' scores, which carry the same bias; only from 2 to 8
  references (with one both are scored against themselves; with many the synthetic line fell among good parts:
  74 % of a steel product's flagged full-shot). Files written before may say "synthetic-quartile": they are
  decided by the threshold they were saved with.
Taught, labelled defects may place it too ("labelled-defects"), and parts the line passed and no one corrected,
scored by the model as it now is, are new normal parts, which its references (the false alarms, left out of a
memory of a few) are not: MIN_ANOMALIES of them join the normal scores and place it ("passed-parts").
A stated operating point (`max_false_alarms`, e.g. 0.01) replaces them all (`stated_bound`).
The probability is as sure as the evidence behind the threshold: a Student-t predictive distribution of the
normal scores (n − 1 degrees of freedom, spread widened by √(1 + 1/n)), or, where anomalies placed the threshold,
with their joint spread (at few shots a curve as narrow as the normal scores was sure of wrong verdicts). The pixel
threshold is a high quantile of normal pixels' scores. Test labels are never seen. Synthetic anomalies are made
in `synthetic_evidence`; a batch's own evidence is in `batch_evidence`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .robust import MIN_SCALE, median_and_spread, student_t_cdf

__all__ = [
    "METHODS",
    "MIN_ANOMALIES",
    "MIN_SCALE",
    "RULES",
    "Calibration",
    "DecisionRule",
    "calibrate",
    "image_decision",
    "prediction_factor",
    "probability_calibration",
    "stated_bound",
    "upper_threshold",
]

PREDICTION_LEVEL = 0.90  # "t-bound": a new normal image scores below the image threshold with this probability
ANOMALY_QUANTILE = 0.5  # "synthetic-anomalies": the image threshold is this quantile of synthetic anomalies' scores
SYNTHETIC_MAX_NORMAL = 8  # … where there are at most this many normal images …
SYNTHETIC_MIN_NORMAL = 2  # … and at least this many
PROBABILITY_WIDTH = 1.0  # the probability's Student-t scale, in units of the spread behind the threshold
SYNTHETIC_RULES = ("synthetic-anomalies", "synthetic-quartile")  # the latter: model files written before
# "labelled-defects": MIN_ANOMALIES or more labelled defects (taught): this quantile of their scores where below the
# t-bound (leave-one-set-out among 0, 0.1, 0.25, 0.5 before passed parts were taught, bench/feedback.py)
LABELLED_QUANTILE = 0.25
# "passed-parts": MIN_ANOMALIES or more passed parts (taught) join the normal scores, and the threshold is their
# prediction bound at this level, whatever anomalies say (labelled defects, mostly missed ones, put the line among
# new good parts). Leave-one-set-out among 0.8, 0.9, 0.95, 0.975 on models taught under 0.95; on those taught
# under 0.9 it is 0.8 (worst loss 0.048 against 0.058): not settled (bench/feedback.py, bench/feedback.md)
PASSED_LEVEL = 0.9
RULES = ("t-bound", *SYNTHETIC_RULES, "labelled-defects", "passed-parts", "false-alarms", "text-probability",
         "batch-mixture")  # fmt: skip
# what `method` may say: how the normal scores were obtained
METHODS = ("leave-one-out", "self-similarity", "held-out", "batch-mixture", "text-probability")
MIN_ANOMALIES = 8  # fewer synthetic anomaly scores than this are not used
PIXEL_QUANTILE = 0.999  # normal pixels above the pixel threshold
LOGISTIC_SLOPE = 1.5  # probability 0.95 two σ past the threshold


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
    n_passed: int = 0  # scores of parts passed in production among the normal ones (`calibrate`'s passed_scores)

    def words(self) -> str:
        """The calibration in a line, as `fit` prints it and the model store describes it (the page shows that)."""
        n = f"{self.n_normal} images" + (f" and {self.n_passed} passed parts" if self.n_passed else "")
        return f"image threshold {self.image_threshold:.4g} ({self.rule}; {self.method}, {n}), pixel threshold {self.pixel_threshold:.4g}"

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
        """`scale` widened by √(1 + 1/n) for one new draw, and n − 1 degrees of freedom: n normal scores."""
        n = self.n_normal + self.n_passed
        return scale * math.sqrt(1 + 1 / n), max(n - 1, 1)

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
    labelled_quantile: float = LABELLED_QUANTILE  # "labelled-defects": this quantile of taught defects' scores
    passed_level: float = PASSED_LEVEL  # "passed-parts": the prediction level over normal and passed parts' scores


def image_decision(
    scores: np.ndarray,
    anomalies: np.ndarray,
    max_false_alarms: float | None = None,
    rule: DecisionRule = DecisionRule(),
    defects: np.ndarray | None = None,
    passed: np.ndarray | None = None,
) -> tuple[str, float, float | None]:
    """(rule name, image threshold, probability scale or None for the normal spread) from the normal images' scores
    as if new, synthetic anomalies' (may be empty), labelled defects' and passed parts' (taught; None: none)."""
    scores, production = normal_evidence(scores, passed)
    median, scale = median_and_spread(scores)
    placing = None
    if max_false_alarms is not None:
        if not 0 < max_false_alarms < 1:
            raise ValueError(
                f"max_false_alarms is a share of normal images above 0 and below 1, not {max_false_alarms}"
            )
        name, threshold = "false-alarms", stated_bound(scores, max_false_alarms, median, scale)
    elif production:
        name, threshold = "passed-parts", median + prediction_factor(scores.size, rule.passed_level) * scale
    else:
        name, threshold = "t-bound", median + prediction_factor(scores.size, rule.prediction_level) * scale
        placing = _placing_evidence(scores, anomalies, defects, rule)
        if placing is not None and placing[2] < threshold:
            name, threshold = placing[0], placing[2]
    # a threshold placed by anomalies is as unsure as the two populations are spread: at few shots the normal
    # scores alone spread little, and a curve that narrow was sure of wrong verdicts
    spread = scale
    if placing is not None and name == placing[0]:
        spread = max(median_and_spread(np.r_[scores, placing[1]])[1], scale)
    return name, float(threshold), (rule.width * spread if rule.width * spread != scale else None)


def normal_evidence(scores: np.ndarray, passed: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """(normal scores the decision reads, whether passed parts are among them): the references' scores as if new,
    and the passed parts' where there are MIN_ANOMALIES of them (the module says why)."""
    if passed is None or passed.size < MIN_ANOMALIES:
        return scores, False
    return np.r_[scores, passed], True


def stated_bound(scores: np.ndarray, max_false_alarms: float, median: float, scale: float) -> float:
    """The threshold of a stated operating point: the Student-t prediction bound at 1 − max_false_alarms, raised
    to the rank bound where there are enough normal scores — the ⌈(n + 1)(1 − share)⌉-th smallest, above which a
    new normal score falls with probability at most the share whatever their distribution (split conformal).
    Normal scores have a long upper tail the robust spread does not see: by the t-bound alone 10–15 % of a shared
    set's own references lay above its 5 % line, and 23 % of one set's good test parts (bench/verdicts.md)."""
    bound = median + prediction_factor(scores.size, 1 - max_false_alarms) * scale
    rank = math.ceil((scores.size + 1) * (1 - max_false_alarms))
    return max(bound, float(np.sort(scores)[rank - 1])) if rank <= scores.size else bound


def _placing_evidence(
    scores: np.ndarray, anomalies: np.ndarray, defects: np.ndarray | None, rule: DecisionRule
) -> tuple[str, np.ndarray, float] | None:
    """(rule name, scores, line) of the anomalies that may place the line below the t-bound, the lowest: labelled
    defects (taught: real ones, at any number of references) — fewer than MIN_ANOMALIES of them above every normal
    score, as too few to stand alone —, and synthetic anomalies within the rule's range of
    references (the few labelled defects among them); None where none may."""
    defects = np.empty(0) if defects is None else defects
    if defects.size >= MIN_ANOMALIES:
        return "labelled-defects", defects, float(np.quantile(defects, rule.labelled_quantile))
    found = []
    if defects.size:
        line = max(float(np.quantile(defects, rule.labelled_quantile)), float(np.nextafter(scores.max(), np.inf)))
        found.append(("labelled-defects", defects, line))
    if anomalies.size >= MIN_ANOMALIES and rule.synthetic_min_normal <= scores.size <= rule.synthetic_max_normal:
        found.append(("synthetic-anomalies", anomalies, float(np.quantile(anomalies, rule.anomaly_quantile))))
    return min(found, key=lambda placing: placing[2]) if found else None


def calibrate(
    normal_scores: np.ndarray,
    normal_maps: np.ndarray | Sequence[np.ndarray],
    method: str,
    anomaly_scores: np.ndarray | None = None,
    max_false_alarms: float | None = None,
    rule: DecisionRule = DecisionRule(),
    defect_scores: np.ndarray | None = None,
    passed_scores: np.ndarray | None = None,
) -> Calibration:
    """normal_scores (n,) image scores and normal_maps, the n normal images' anomaly maps (an (n, H, W) array,
    or n maps of their own sizes: images laid out at their aspect ratio), scored as if new; anomaly_scores
    (m,), those of synthetic anomalies scored the same way (None: none); max_false_alarms, a stated share of
    normal images that may be flagged (None: the default rule); defect_scores, labelled defects' (taught);
    passed_scores, parts a line passed and no one corrected, scored by the model as it is (taught)."""
    references = np.asarray(normal_scores, dtype=np.float64)
    if references.size == 0:
        raise ValueError("calibration needs at least one normal image")
    passed = None if passed_scores is None else np.asarray(passed_scores, dtype=np.float64)
    scores, _ = normal_evidence(references, passed)
    pixels = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in normal_maps])
    peaks = np.array([np.max(m) for m in normal_maps])
    anomalies = np.asarray([] if anomaly_scores is None else anomaly_scores, dtype=np.float64)
    defects = None if defect_scores is None else np.asarray(defect_scores, dtype=np.float64)
    name, threshold, probability_scale = image_decision(references, anomalies, max_false_alarms, rule, defects, passed)
    return Calibration(
        image_threshold=threshold,
        image_scale=median_and_spread(scores)[1],
        pixel_threshold=float(np.quantile(pixels, PIXEL_QUANTILE)),
        region_threshold=upper_threshold(peaks)[0],
        pixel_floor=float(np.median(pixels)),
        n_normal=int(references.size),
        method=method,
        rule=name,
        n_synthetic=int(anomalies.size) if name == "synthetic-anomalies" else 0,
        probability_scale=probability_scale,
        lowest_normal=float(scores.min()),
        normal_median=float(np.median(scores)),
        n_passed=int(scores.size - references.size),
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
        rule="text-probability",
    )
