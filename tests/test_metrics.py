import math

import numpy as np
import pytest
from scipy import ndimage

from anomalens.metrics import (
    aupro,
    average_precision,
    calibration_errors,
    evaluate,
    f1_max,
    image_auroc,
    pixel_auroc,
)

LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]


# --------------------------------------------------------------------------- image level


def test_image_auroc_hand():
    # (pos, neg) pairs ranked correctly: 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3/4
    assert image_auroc(LABELS, SCORES) == pytest.approx(0.75)


def test_image_auroc_ties_count_half():
    # pos {0.5, 0.9}, neg {0.5, 0.2}: 0.5=0.5 -> 1/2, 0.5>0.2 -> 1, 0.9 beats both -> 2
    # (0.5 + 1 + 2) / 4 = 0.875
    assert image_auroc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)


def test_f1_max_hand():
    # t=0.8 : TP1 FP0 FN1 -> P=1,   R=1/2 -> F1 = 2/3
    # t=0.4 : TP1 FP1 FN1 -> P=1/2, R=1/2 -> F1 = 1/2
    # t=0.35: TP2 FP1 FN0 -> P=2/3, R=1   -> F1 = 2*(2/3)/(5/3) = 4/5   <- best
    # t=0.1 : TP2 FP2 FN0 -> P=1/2, R=1   -> F1 = 2/3
    f1, thr = f1_max(LABELS, SCORES)
    assert f1 == pytest.approx(0.8)
    assert thr == pytest.approx(0.35)


def test_f1_max_zero_precision_recall_is_guarded():
    # Highest score is a negative: at t=0.9 P=R=0, whose F1 must be 0, not nan.
    # t=0.5: TP1 FP1 -> P=1/2, R=1 -> F1 = 2/3 (best); t=0.1: P=1/3, R=1 -> 1/2
    f1, thr = f1_max([0, 1, 0], [0.9, 0.5, 0.1])
    assert f1 == pytest.approx(2 / 3)
    assert thr == pytest.approx(0.5)


def test_average_precision_hand():
    # Descending: 0.8(+) P=1 R=1/2 | 0.4(-) | 0.35(+) P=2/3 R=1 | 0.1(-)
    # AP = sum (R_n - R_{n-1}) P_n = 1/2*1 + 1/2*2/3 = 5/6
    assert average_precision(LABELS, SCORES) == pytest.approx(5 / 6)


# --------------------------------------------------------------------------- AUPRO


# Two regions in one 2x5 image; R1 only connects through a diagonal (8-connectivity),
# so under 4-connectivity it would wrongly split into two regions.
#   mask            map
#   1 0 0 1 1       0.9 0.3 0.4 0.8 0.6
#   0 1 0 0 1       0.5 0.7 0.1 0.6 0.5
# R1 = {0.9, 0.7} (size 2), R2 = {0.8, 0.6, 0.5} (size 3),
# normal pixels = {0.3, 0.4, 0.5, 0.1, 0.6} (5 of them -> FPR steps of 1/5).
HAND_MASK = np.array([[1, 0, 0, 1, 1], [0, 1, 0, 0, 1]], dtype=bool)[None]
HAND_MAP = np.array([[0.9, 0.3, 0.4, 0.8, 0.6], [0.5, 0.7, 0.1, 0.6, 0.5]], dtype=np.float32)[None]
# Curve (FPR, PRO = (frac R1 + frac R2) / 2), starting from (0, 0):
#   t=0.9: R1 1/2, R2 0   -> (0,   1/4)
#   t=0.8: R1 1/2, R2 1/3 -> (0,   5/12)
#   t=0.7: R1 1,   R2 1/3 -> (0,   2/3)
#   t=0.6: R1 1,   R2 2/3 -> (1/5, 5/6)   normal 0.6 ties with an R2 pixel
#   t=0.5: R1 1,   R2 1   -> (2/5, 1)     normal 0.5 ties with an R2 pixel
#   t=0.4, 0.3, 0.1       -> (3/5, 1), (4/5, 1), (1, 1)


def test_aupro_hand_interpolated_at_limit():
    # [0, 0.2]:   (2/3 + 5/6)/2 * 0.2 = 0.15
    # at 0.3 PRO = 5/6 + (1 - 5/6) * (0.1/0.2) = 11/12
    # [0.2, 0.3]: (5/6 + 11/12)/2 * 0.1 = 0.0875
    # (0.15 + 0.0875) / 0.3 = 19/24
    assert aupro(HAND_MASK, HAND_MAP, fpr_limit=0.3) == pytest.approx(19 / 24, abs=1e-9)


def test_aupro_hand_limit_on_a_curve_point_and_full_range():
    # limit 0.4: 0.15 + (5/6 + 1)/2 * 0.2 = 0.15 + 11/60 = 1/3 -> (1/3) / 0.4 = 5/6
    assert aupro(HAND_MASK, HAND_MAP, fpr_limit=0.4) == pytest.approx(5 / 6, abs=1e-9)
    # limit 1: 1/3 + 1 * 0.6 = 14/15
    assert aupro(HAND_MASK, HAND_MAP, fpr_limit=1.0) == pytest.approx(14 / 15, abs=1e-9)


def test_aupro_perfect_map_is_one():
    masks = _random_masks(np.random.default_rng(0), 4, 16, 16)
    assert aupro(masks, masks.astype(np.float32)) == pytest.approx(1.0)


def test_aupro_nan_without_regions_or_normals():
    assert math.isnan(aupro(np.zeros((2, 4, 4), bool), np.random.rand(2, 4, 4)))
    assert math.isnan(aupro(np.ones((2, 4, 4), bool), np.random.rand(2, 4, 4)))


def test_aupro_bad_limit():
    with pytest.raises(ValueError):
        aupro(HAND_MASK, HAND_MAP, fpr_limit=0.0)


def _random_masks(rng, n, h, w):
    """Blobby masks (smoothed noise thresholded), with an all-normal first image."""
    masks = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), sigma=(0, 1.5, 1.5)) > 0.35
    masks[0] = False
    return masks


def _brute_force_aupro(masks, maps, fpr_limit):
    """One threshold at a time, directly from the definition."""
    regions = []  # (image index, region mask)
    for i, mask in enumerate(masks):
        lab, k = ndimage.label(mask, structure=np.ones((3, 3), int))
        regions += [(i, lab == j) for j in range(1, k + 1)]
    normal = np.concatenate([a[~m] for m, a in zip(masks, maps)])  # images may differ in size
    fprs, pros = [0.0], [0.0]
    for t in np.unique(np.concatenate([a.ravel() for a in maps]))[::-1]:
        pros.append(np.mean([np.mean(maps[i][r] >= t) for i, r in regions]))
        fprs.append(np.mean(normal >= t))
    fprs.append(1.0)
    pros.append(1.0)
    area = 0.0
    for (x0, y0), (x1, y1) in zip(zip(fprs, pros), zip(fprs[1:], pros[1:])):
        if x1 <= fpr_limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:  # close the curve at the limit, then stop
            y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            area += (fpr_limit - x0) * (y0 + y_lim) / 2
            break
    return area / fpr_limit


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("fpr_limit", [0.05, 0.3, 1.0])
def test_aupro_matches_brute_force(seed, fpr_limit):
    rng = np.random.default_rng(seed)
    masks = _random_masks(rng, 4, 20, 20)
    # Anomalous pixels score higher on average; rounding creates many ties.
    maps = np.round(rng.random(masks.shape) + 0.6 * masks, 2).astype(np.float32)
    expected = _brute_force_aupro(masks, maps, fpr_limit)
    assert aupro(masks, maps, fpr_limit=fpr_limit) == pytest.approx(expected, abs=1e-6)


def test_aupro_num_thresholds_approximates_exact():
    rng = np.random.default_rng(4)
    masks = _random_masks(rng, 4, 32, 32)
    maps = (rng.random(masks.shape) + 0.6 * masks).astype(np.float32)
    exact = aupro(masks, maps)
    assert aupro(masks, maps, num_thresholds=5000) == pytest.approx(exact, abs=2e-3)


# --------------------------------------------------------------------------- pixel level / evaluate


def _pixel_case(seed=5):
    rng = np.random.default_rng(seed)
    masks = _random_masks(rng, 3, 16, 16)
    # Rounded so that normal and anomalous pixels share scores (ties).
    maps = np.round(rng.random(masks.shape) + 0.5 * masks, 2).astype(np.float32)
    labels = masks.reshape(len(masks), -1).any(axis=1).astype(int)
    scores = maps.reshape(len(maps), -1).max(axis=1)
    return labels, scores, masks, maps


def test_pixel_auroc_equals_image_auroc_on_flattened():
    _, _, masks, maps = _pixel_case()
    assert pixel_auroc(masks, maps) == pytest.approx(image_auroc(masks.ravel().astype(int), maps.ravel()))


def test_evaluate_pixel_metrics_equal_sklearn_on_flattened():
    # Pixel metrics are computed without sklearn (for speed); they must still agree
    # with the sklearn-backed image functions applied to every pixel.
    labels, scores, masks, maps = _pixel_case()
    y, s = masks.ravel().astype(int), maps.ravel()
    out = evaluate(labels, scores, masks, maps)
    assert out["pixel_auroc"] == pytest.approx(image_auroc(y, s), abs=1e-12)
    assert out["pixel_ap"] == pytest.approx(average_precision(y, s), abs=1e-12)
    assert out["pixel_f1max"] == pytest.approx(f1_max(y, s)[0], abs=1e-12)


def test_evaluate_keys():
    labels, scores, masks, maps = _pixel_case()
    image_keys = {"image_auroc", "image_ap", "image_f1max"}
    assert set(evaluate(labels, scores)) == image_keys
    full = evaluate(labels, scores, masks, maps)
    assert set(full) == image_keys | {"pixel_auroc", "pixel_ap", "pixel_f1max", "aupro"}
    assert full["pixel_auroc"] == pytest.approx(pixel_auroc(masks, maps))
    assert full["aupro"] == pytest.approx(aupro(masks, maps))
    # No anomalous pixel at all: pixel metrics are undefined and left out.
    empty = evaluate(labels, scores, np.zeros_like(masks), maps)
    assert set(empty) == image_keys


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape|length"):
        image_auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="shape"):
        aupro(np.zeros((2, 4, 4)), np.zeros((1, 4, 4)))
    labels, scores, masks, maps = _pixel_case()
    with pytest.raises(ValueError, match="labels"):
        evaluate(labels[:2], scores[:2], masks, maps)


@pytest.mark.parametrize("fn", [image_auroc, average_precision, f1_max])
def test_single_class_labels_raise(fn):
    with pytest.raises(ValueError, match="both classes"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="both classes"):
        fn([0, 0], [0.1, 0.2])


def test_non_binary_labels_raise():
    with pytest.raises(ValueError, match="0/1"):
        image_auroc([0, 2, 1], [0.1, 0.2, 0.3])


def test_pixel_auroc_single_class_masks_raise():
    with pytest.raises(ValueError, match="both normal and anomalous"):
        pixel_auroc(np.zeros((2, 4, 4), bool), np.random.rand(2, 4, 4))


def test_images_of_different_sizes_pool_like_one_stack():
    """Test images may differ in size: lists of 2-D arrays give what the padded-free stack would."""
    rng = np.random.default_rng(5)
    masks = [rng.random((6, 9)) > 0.7, rng.random((4, 5)) > 0.6, np.zeros((7, 3), bool)]
    maps = [rng.random(m.shape).astype(np.float32) + m for m in masks]
    labels = [1, 1, 0]
    out = evaluate(labels, [1.0, 0.9, 0.1], masks, maps)
    flat_m = np.concatenate([m.ravel() for m in masks])
    flat_a = np.concatenate([a.ravel() for a in maps])
    assert out["pixel_auroc"] == pytest.approx(pixel_auroc(flat_m[None], flat_a[None]))
    assert out["aupro"] == pytest.approx(_brute_force_aupro(masks, maps, 0.3), abs=1e-6)
    with pytest.raises(ValueError):
        evaluate(labels, [1.0, 0.9, 0.1], masks, maps[:2])


def test_calibration_errors_on_hand_computed_cases():
    # two bins used: p = 0.1 (true rate 0) and p = 0.9 (true rate 1) → |0.1 - 0|/2 + |0.9 - 1|/2 = 0.1
    ece, brier = calibration_errors([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.9])
    assert ece == pytest.approx(0.1) and brier == pytest.approx(0.01)
    ece, _ = calibration_errors([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])  # always 50 %, right half the time
    assert ece == pytest.approx(0.0)
    assert calibration_errors([1, 1], [0.0, 0.0]) == (pytest.approx(1.0), pytest.approx(1.0))


def test_image_metrics_are_none_with_one_class():
    out = evaluate(np.array([1, 1]), np.array([0.3, 0.7]))
    assert out["image_auroc"] is None and out["image_f1max"] is None
