import numpy as np
import pytest

from anomalens.calibration import MIN_SCALE, calibrate, prediction_factor, upper_threshold


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
