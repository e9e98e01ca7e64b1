from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from scipy.special import stdtr

from anomalens.batch_evidence import reference_shift
from anomalens.calibration import (
    MIN_SCALE,
    PASSED_LEVEL,
    DecisionRule,
    calibrate,
    image_decision,
    prediction_factor,
    stated_bound,
    upper_threshold,
)
from anomalens.calibration import calibrate as calibrate_with
from anomalens.result import shift_note
from anomalens.robust import median_and_spread, student_t_cdf


def test_threshold_is_median_plus_z_robust_sigma():
    scores = np.array([10.0, 11, 12, 13, 14, 15, 16, 17, 100])  # one odd normal image must not inflate σ
    threshold, sigma = upper_threshold(scores)
    mad_sigma = 1.4826 * np.median(np.abs(scores - 14))
    assert sigma == pytest.approx(mad_sigma)
    assert threshold == pytest.approx(14 + prediction_factor(9) * mad_sigma)


def test_prediction_factor_widens_for_few_references():
    # 90 % bound: t(0.90, 3)·√(1 + 1/4) = 1.6377·1.1180; t(0.90, 39)·√(1 + 1/40) = 1.3036·1.0124
    assert prediction_factor(4) == pytest.approx(1.8311, abs=1e-3)
    assert prediction_factor(40) == pytest.approx(1.3198, abs=1e-3)
    assert prediction_factor(1) > prediction_factor(2) > prediction_factor(4) > prediction_factor(1000) > 1.28


def test_few_and_single_references():
    threshold, sigma = upper_threshold(np.array([1.0, 2.0]))
    assert sigma == pytest.approx(np.std([1.0, 2.0], ddof=1))
    threshold, sigma = upper_threshold(np.array([4.0]))
    assert sigma == pytest.approx(MIN_SCALE * 4.0) and threshold > 4.0


def test_calibration_fields_and_probability():
    rng = np.random.default_rng(0)
    maps = rng.random((5, 16, 16)).astype(np.float32)
    cal = calibrate(np.array([1.0, 1.1, 0.9, 1.05, 0.95]), maps, "leave-one-out")
    assert cal.pixel_floor == pytest.approx(np.median(maps))
    assert cal.pixel_threshold == pytest.approx(np.quantile(maps, 0.999))
    assert cal.probability(cal.image_threshold) == pytest.approx(0.5)
    assert cal.probability(cal.image_threshold + 3 * cal.image_scale) > 0.95
    assert cal.probability(cal.image_threshold - 3 * cal.image_scale) < 0.05
    with pytest.raises(ValueError):
        calibrate(np.array([]), maps[:0], "leave-one-out")


def test_synthetic_quantile_flat_exact_case():
    """Normal scores all 2 (σ at its floor, 5 % of the median): the t-bound is 2 + 0.1·factor(4) = 2.183.
    Synthetic anomaly scores 2, 2.0625, …, 2.5 (exact in binary), at the lower quartile (a rule's constant,
    given here; the default's is `DecisionRule().anomaly_quantile`): 2.125 lies below the t-bound and is the
    threshold; scores 1, 2, …, 9 (quartile 3) lie above it, and the t-bound stays."""
    maps = np.zeros((4, 8, 8), np.float32)
    normal = np.full(4, 2.0)
    t_bound = 2 + prediction_factor(4) * 0.1
    calibrate = partial(calibrate_with, rule=DecisionRule(anomaly_quantile=0.25))
    cal = calibrate(normal, maps, "leave-one-out", anomaly_scores=2 + np.arange(9) * 0.0625)
    assert cal.rule == "synthetic-anomalies" and cal.n_synthetic == 9
    assert cal.image_threshold == 2.125 and cal.image_scale == pytest.approx(0.1)
    assert cal.decide(2.125) and not cal.decide(2.1249) and cal.probability(2.125) == 0.5
    high = calibrate(normal, maps, "leave-one-out", anomaly_scores=np.arange(1.0, 10.0))
    assert high.rule == "t-bound" and high.image_threshold == pytest.approx(t_bound) and high.n_synthetic == 0
    few = calibrate(normal, maps, "leave-one-out", anomaly_scores=np.full(3, 2.0))  # too few to count
    assert few.to_dict() == high.to_dict() == calibrate(normal, maps, "leave-one-out").to_dict()
    # the probability's width: the joint spread of the 13 scores (median 2.125, MAD 0.125), not normal σ alone
    assert cal.probability_scale == pytest.approx(1.4826 * 0.125, rel=1e-3) and high.probability_scale is None
    # a Student-t predictive: 3 degrees of freedom (4 normal images), widened by √(1 + 1/4)
    one_spread = stdtr(3, 1 / np.sqrt(1.25))
    assert cal.probability(2.125 + 1.4826 * 0.125) == pytest.approx(one_spread, rel=1e-3)
    older = replace(cal, probability_scale=None)  # as a model file written before the field reads
    assert older.probability(2.225) == pytest.approx(one_spread, rel=1e-3)


def test_a_stated_false_alarm_rate_sets_the_threshold_from_normal_evidence_alone():
    rng = np.random.default_rng(0)
    normal = rng.normal(10, 1, 4000)
    maps = np.zeros((len(normal), 4, 4), np.float32)
    for share in (0.01, 0.1):
        cal = calibrate(normal, maps, "leave-one-out", anomaly_scores=np.arange(20.0), max_false_alarms=share)
        assert cal.rule == "false-alarms" and cal.n_synthetic == 0
        new_normal = rng.normal(10, 1, 20000)
        assert np.mean(new_normal >= cal.image_threshold) == pytest.approx(share, abs=0.25 * share)
    with pytest.raises(ValueError, match="share"):
        calibrate(normal, maps, "leave-one-out", max_false_alarms=1.0)


def test_a_stated_false_alarm_rate_holds_on_normal_scores_with_a_long_upper_tail():
    """Leave-one-out scores of real products are skewed upwards: the robust spread misses the tail, and the
    t-bound alone flagged more than twice the share asked. The rank bound holds it whatever the distribution."""
    rng = np.random.default_rng(1)
    shares, t_bound_shares = [], []
    for _ in range(200):
        normal = 20 + rng.lognormal(0, 0.8, 80)  # 80 references, as a full-shot shared set has
        cal = calibrate(normal, np.zeros((80, 2, 2), np.float32), "leave-one-out", max_false_alarms=0.05)
        new_normal = 20 + rng.lognormal(0, 0.8, 2000)
        shares.append(np.mean(new_normal >= cal.image_threshold))
        median = np.median(normal)
        t_bound = median + prediction_factor(80, 0.95) * 1.4826 * np.median(np.abs(normal - median))
        t_bound_shares.append(np.mean(new_normal >= t_bound))
    assert np.mean(t_bound_shares) > 0.08  # what the stated point did before
    assert np.mean(shares) <= 0.05
    few = calibrate(normal[:10], np.zeros((10, 2, 2), np.float32), "leave-one-out", max_false_alarms=0.05)
    median, spread = median_and_spread(normal[:10])  # too few references for a rank bound: the t-bound alone
    assert few.image_threshold == pytest.approx(median + prediction_factor(10, 0.95) * spread)


def test_synthetic_anomalies_are_scored_with_their_reference_left_out():
    """The memory bank scores its own references, given as owners, exactly as their leave-one-out evidence."""
    from anomalens.experts import NormalImages
    from anomalens.experts.memory_bank import MemoryBankExpert

    torch = pytest.importorskip("torch")
    features = [torch.randn(3, 8, 6, 6, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    expert = MemoryBankExpert()
    evidence = expert.fit(NormalImages(features))
    assert torch.equal(expert.left_out_scores(features, [0, 1, 2]), evidence.scores)
    swapped = [f[[1, 0]] for f in features]  # image 1 scored with image 0 left out: not its own evidence
    assert not torch.equal(expert.left_out_scores(swapped, [0, 1]), evidence.scores[[1, 0]])


def _reference_calibration(threshold: float, rule: str = "synthetic-anomalies"):
    from dataclasses import replace

    return replace(calibrate(np.array([1.0, 1.1, 0.9, 1.05]), [np.zeros((4, 4))], "leave-one-out"), image_threshold=threshold, rule=rule)  # fmt: skip


def _two_groups(rng, normal: int, defective: int) -> np.ndarray:
    return np.r_[rng.normal(1.0, 0.1, normal), rng.normal(3.0, 0.1, defective)]


def test_a_batch_with_two_modes_lowers_a_threshold_set_too_high_to_where_they_are_equally_likely():
    from anomalens.batch_evidence import batch_refined

    rng = np.random.default_rng(0)
    scores = _two_groups(rng, 40, 60)
    refined = batch_refined(_reference_calibration(3.5), scores)
    assert refined.rule == "batch-mixture"
    (w1, m1, s1), (w2, m2, s2) = refined.mixture
    assert (w1, m1, s1, m2, s2) == pytest.approx((0.4, 1.0, 0.1, 3.0, 0.1), abs=0.03)
    # the modes are equally likely where ln(w1/s1) − (x − m1)²/2s1² = ln(w2/s2) − (x − m2)²/2s2²: a quadratic
    a, b = 1 / (2 * s2**2) - 1 / (2 * s1**2), m1 / s1**2 - m2 / s2**2
    c = m2**2 / (2 * s2**2) - m1**2 / (2 * s1**2) + np.log(w1 / s1) - np.log(w2 / s2)
    between = [r.real for r in np.roots([a, b, c]) if m1 < r.real < m2]
    assert len(between) == 1 and refined.image_threshold == pytest.approx(between[0], abs=1e-9)
    assert refined.probability(refined.image_threshold) == pytest.approx(0.5, abs=1e-6)
    assert refined.probability(1.0) < 0.01 and refined.probability(3.0) > 0.99
    assert all(refined.decide(s) for s in scores[40:]) and not any(refined.decide(s) for s in scores[:40])


def test_a_batch_never_puts_the_threshold_below_the_lowest_reference():
    """Equal odds lie near 2 (above); references whose lowest own score is 2.5 hold the line there, the
    posterior moved with it; at or above the references' threshold, the batch changes nothing."""
    from anomalens.batch_evidence import batch_refined

    scores = _two_groups(np.random.default_rng(0), 40, 60)
    free = batch_refined(_reference_calibration(3.5), scores)
    held = batch_refined(replace(_reference_calibration(3.5), lowest_normal=2.5), scores)
    assert free.image_threshold < 2.2 and held.image_threshold == 2.5 and held.rule == "batch-mixture"
    assert held.probability(2.5) == pytest.approx(0.5, abs=1e-6)
    shift = 2.5 - free.image_threshold
    assert held.probability(1.7 + shift) == pytest.approx(free.probability(1.7), abs=1e-9)
    assert held.decide(2.5) and not held.decide(2.49) and not any(held.decide(s) for s in scores[:40])
    above = replace(_reference_calibration(3.5), lowest_normal=3.6)
    assert batch_refined(above, scores) == above
    assert _reference_calibration(3.5).lowest_normal == 0.9  # the lowest of the normal scores it was fitted on


@pytest.mark.parametrize("seed", range(5))
def test_an_all_defective_batch_never_raises_the_threshold(seed):
    from anomalens.batch_evidence import batch_refined

    rng = np.random.default_rng(seed)
    defects = np.r_[rng.normal(2.0, 0.1, 30), rng.normal(4.0, 0.2, 30)]  # two kinds of defect: two modes
    for threshold in (1.5, 2.5, 3.0, 5.0):
        assert batch_refined(_reference_calibration(threshold), defects).image_threshold <= threshold


def test_batches_it_leaves_alone():
    from anomalens.batch_evidence import BATCH_EVIDENCE_MIN, batch_refined

    rng = np.random.default_rng(1)
    reference = _reference_calibration(3.5)
    assert batch_refined(reference, _two_groups(rng, 8, BATCH_EVIDENCE_MIN - 9)) is reference  # too few
    assert batch_refined(reference, rng.normal(1.0, 0.1, 50)) is reference  # one mode
    assert batch_refined(reference, _two_groups(rng, 40, 60) + 10) is reference  # it would raise the threshold
    stated = _reference_calibration(3.5, rule="false-alarms")  # a stated operating point stays
    assert batch_refined(stated, _two_groups(rng, 40, 60)) is stated


def test_the_probability_is_as_sure_as_the_references_behind_the_threshold():
    """A Student-t predictive on the normal scores: 0.5 at the threshold, and the fewer the references, the
    less sure the same margin (in normal spreads) makes it; the plain-Python t matches scipy's."""
    for dof in (1, 2, 3, 7, 19, 200):
        for t in (-40.0, -3.0, -0.5, 0.0, 0.7, 2.5, 12.0):
            assert student_t_cdf(t, dof) == pytest.approx(stdtr(dof, t), abs=1e-12)
    base = _reference_calibration(2.0, rule="t-bound")
    few, many = replace(base, n_normal=3, image_scale=0.1), replace(base, n_normal=200, image_scale=0.1)
    for cal in (few, many):
        assert cal.probability(2.0) == 0.5 and cal.margin(2.3) == pytest.approx(3.0)
    assert 0.5 < few.probability(2.3) < many.probability(2.3) and few.probability(1.7) > many.probability(1.7)
    assert few.probability(2.3) == pytest.approx(stdtr(2, 3 / np.sqrt(1 + 1 / 3)))
    assert many.probability(2.3) == pytest.approx(stdtr(199, 3 / np.sqrt(1 + 1 / 200)))


def _moved(calibration, batches: np.ndarray) -> float:
    """The share of the batches (rows) that move the threshold: the gate is computed for all at once (as
    `bimodal` computes it for one), and those it lets through, with a few it stops, go through `batch_refined`."""
    from anomalens.batch_evidence import batch_refined, gate_critical, gate_statistic

    passed = gate_statistic(batches) > gate_critical(batches.shape[1])
    checked = np.r_[np.flatnonzero(passed), np.flatnonzero(~passed)[:20]]
    moved = [batch_refined(calibration, batches[i]).image_threshold != calibration.image_threshold for i in checked]
    assert not any(moved[int(passed.sum()) :])  # the gate's verdict for one batch is the same as for many
    return float(np.sum(moved) / len(batches))


@pytest.mark.parametrize("kind", ["normal", "gamma", "lognormal"])
@pytest.mark.parametrize("size", [16, 64])
def test_one_mode_batches_move_the_threshold_in_at_most_5_percent(kind, size):
    """1,000 simulated one-mode batches (normal, gamma with shape 2, lognormal with σ 0.5), whose scores the
    references' threshold sits far above (so any split of them would lower it): the bimodality gate lets at
    most 5 % of them move it. A clearly two-group batch of the same size does move it."""
    rng = np.random.default_rng({"normal": 10, "gamma": 11, "lognormal": 12}[kind] * 100 + size)
    draw = {
        "normal": lambda shape: rng.normal(1.0, 0.1, shape),
        "gamma": lambda shape: 0.5 + 0.1 * rng.gamma(2.0, 1.0, shape),
        "lognormal": lambda shape: rng.lognormal(0.0, 0.5, shape),
    }[kind]
    reference = replace(_reference_calibration(50.0), lowest_normal=None)
    assert _moved(reference, draw((1000, size))) <= 0.05
    two = np.stack([_two_groups(rng, size - size // 4, size // 4) for _ in range(20)])
    assert _moved(reference, two) == 1.0


def test_the_gate_is_calibrated_at_the_batch_size():
    from anomalens.batch_evidence import BATCH_EVIDENCE_MIN, GATE_CRITICAL, bimodal, gate_critical

    assert GATE_CRITICAL[0][0] == BATCH_EVIDENCE_MIN and gate_critical(GATE_CRITICAL[0][0]) == GATE_CRITICAL[0][1]
    assert gate_critical(10**4) > GATE_CRITICAL[-1][1] >= GATE_CRITICAL[0][1]
    rng = np.random.default_rng(3)
    assert not bimodal(_two_groups(rng, 10, BATCH_EVIDENCE_MIN - 11))  # too few, however clear
    assert bimodal(_two_groups(rng, 12, 6)) and not bimodal(rng.normal(1.0, 0.1, 200))


def test_the_decision_rule_says_when_synthetic_anomalies_place_the_line_and_how_wide_the_probability_is():
    """The constants `bench/verdicts.py` chooses: the synthetic rule applies only up to `synthetic_max_normal`
    normal images (beyond, the t-bound alone: many references need no synthetic help, and its line fell among
    good parts there), and `width` scales the spread the probability uses."""
    maps = np.zeros((4, 8, 8), np.float32)
    normal, synthetic = np.full(4, 2.0), 2 + np.arange(9) * 0.0625
    few = DecisionRule(anomaly_quantile=0.25, synthetic_max_normal=4, width=1.0)
    assert calibrate(normal, maps, "leave-one-out", synthetic, rule=few).image_threshold == 2.125
    too_many = calibrate(normal, maps, "leave-one-out", synthetic, rule=replace(few, synthetic_max_normal=3))
    assert too_many.rule == "t-bound" and too_many.image_threshold == pytest.approx(2 + prediction_factor(4) * 0.1)
    wide = calibrate(normal, maps, "leave-one-out", synthetic, rule=replace(few, width=2.0))
    narrow = calibrate(normal, maps, "leave-one-out", synthetic, rule=few)
    assert wide.probability_scale == pytest.approx(2 * narrow.probability_scale)
    assert 0.5 < wide.probability(2.3) < narrow.probability(2.3)
    plain = calibrate(normal, maps, "leave-one-out", rule=replace(few, width=2.0))
    assert plain.probability_scale == pytest.approx(0.2) and plain.image_scale == pytest.approx(0.1)
    assert image_decision(normal, synthetic, None, few) == ("synthetic-anomalies", 2.125, narrow.probability_scale)


def test_a_batch_whose_normal_parts_score_unlike_the_references_is_measured_and_noted():
    """`reference_shift`: the batch's low mode against the references' median, in normal spreads (no labels);
    `shift_note` turns a large one into words and leaves verdicts alone."""
    rng = np.random.default_rng(1)
    references = rng.normal(10, 1, 40)
    cal = calibrate(references, np.zeros((40, 4, 4), np.float32), "leave-one-out")
    assert cal.normal_median == pytest.approx(np.median(references))
    shifted = np.r_[rng.normal(12, 1, 48), rng.normal(25, 1, 16)]  # normal parts 2 σ up, and defects
    expected = (np.median(shifted[:48]) - np.median(references)) / cal.image_scale  # the low mode: the 48
    assert reference_shift(cal, shifted) == pytest.approx(expected, abs=0.1) and expected > 1.5
    assert abs(reference_shift(cal, rng.normal(10, 1, 64))) < 0.5
    assert reference_shift(cal, shifted[:15]) is None  # too few to tell
    assert reference_shift(replace(cal, normal_median=None), shifted) is None  # a model file written before
    note = shift_note([(cal, float(s)) for s in shifted])
    assert note is not None and "above the model's references" in note and "verdicts are unchanged" in note
    assert shift_note([(cal, float(s)) for s in rng.normal(10, 1, 64)]) is None
    other = replace(cal, image_threshold=cal.image_threshold + 1)
    assert shift_note([(cal, 12.0)] * 10 + [(other, 12.0)] * 10) is None  # not one model's batch


def test_labelled_defects_place_the_line_at_any_number_of_references():
    """An operator's labelled defects (teaching) are real evidence: MIN_ANOMALIES of them or more place the
    line at their LABELLED_QUANTILE where that lies below the t-bound, even with more references than the
    synthetic rule applies to; fewer may not bring it onto a normal score (here they leave it to the t-bound)."""
    rng = np.random.default_rng(3)
    normal, maps = rng.normal(10, 1, 40), np.zeros((40, 4, 4), np.float32)
    defects = np.linspace(9.5, 14, 9)  # their lower quartile, 10.625, below the t-bound (≈ 11.3)
    cal = calibrate(normal, maps, "leave-one-out", defect_scores=defects)
    assert cal.rule == "labelled-defects" and cal.image_threshold == pytest.approx(np.quantile(defects, 0.25))
    assert cal.probability(cal.image_threshold) == 0.5 and cal.decide(cal.image_threshold)
    too_few = calibrate(normal, maps, "leave-one-out", defect_scores=defects[:7])
    assert too_few.rule == "t-bound" and too_few.image_threshold > cal.image_threshold
    high = calibrate(normal, maps, "leave-one-out", defect_scores=defects + 10)  # all above the t-bound
    assert high.rule == "t-bound"


def test_a_few_labelled_defects_lower_the_line_but_never_onto_a_normal_score():
    """Fewer than MIN_ANOMALIES labelled defects below the line bring it down to their LABELLED_QUANTILE, but no
    lower than just above the highest normal score, even from one reference (the synthetic rule needs two): a
    metal plate's three missed defects under a one-reference line (bench/feedback.py) moved nothing before."""
    maps = np.zeros((1, 4, 4), np.float32)
    missed = np.array([0.82, 0.85, 0.88])
    cal = calibrate(np.array([0.79]), maps, "self-similarity", defect_scores=missed)
    assert cal.rule == "labelled-defects" and cal.image_threshold == pytest.approx(np.quantile(missed, 0.25))
    assert cal.decide(0.85) and not cal.decide(0.79)
    low = calibrate(np.array([0.79]), maps, "self-similarity", defect_scores=np.array([0.5, 0.6]))
    assert low.rule == "labelled-defects" and not low.decide(0.79) and low.decide(0.80)
    assert calibrate(np.array([0.79]), maps, "self-similarity", defect_scores=missed + 1).rule == "t-bound"


def test_parts_passed_in_production_join_the_normal_scores_and_place_the_line():
    """A taught model's references are a line's false alarms left out of a memory of a few images: they score far
    above new normal parts. MIN_ANOMALIES passed parts or more, scored by the model as it is, join its normal
    scores and place the line at their prediction bound (PASSED_LEVEL), whatever labelled defects say; fewer
    change nothing."""
    maps = np.zeros((3, 4, 4), np.float32)
    references, defects = np.array([2.0, 3.0, 3.5]), np.linspace(-3, 4, 10)  # false alarms; defects mostly missed
    passed = np.random.default_rng(5).normal(-6, 1, 40)
    cal = calibrate(references, maps, "leave-one-out", defect_scores=defects, passed_scores=passed)
    union = np.r_[references, passed]
    median, sigma = median_and_spread(union)
    assert cal.rule == "passed-parts" and cal.n_normal == 3 and cal.n_passed == 40
    assert cal.image_threshold == pytest.approx(median + prediction_factor(43, PASSED_LEVEL) * sigma)
    assert cal.image_scale == pytest.approx(sigma) and cal.normal_median == pytest.approx(median)
    assert cal.image_threshold < np.quantile(defects, 0.25) < references.min()  # new good parts lie far below
    assert "and 40 passed parts" in cal.words()
    assert cal.predictive()[1] == 42  # n − 1 degrees of freedom over every normal score
    few = calibrate(references, maps, "leave-one-out", defect_scores=defects, passed_scores=passed[:7])
    assert few == calibrate(references, maps, "leave-one-out", defect_scores=defects)
    stated = calibrate(references, maps, "leave-one-out", max_false_alarms=0.05, passed_scores=passed)
    assert stated.rule == "false-alarms"  # a stated rate reads every normal score too
    assert stated.image_threshold == pytest.approx(stated_bound(union, 0.05, median, sigma))
