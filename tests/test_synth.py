"""Synthetic anomalies: exact masks, seamless Poisson pastes, objects on uniform backgrounds."""

import numpy as np
import pytest

from anomalens.synth import MASK_TOLERANCE, MODES, foreground, synthesize
from conftest import texture


@pytest.mark.parametrize("mode", MODES)
def test_mask_is_exactly_the_changed_pixels(mode):
    rng = np.random.default_rng(0)
    for seed in range(5):
        target = texture(seed)
        result = synthesize(target, texture(50 + seed), rng, mode)
        changed = np.abs(result.image - target).max(-1) > MASK_TOLERANCE
        assert result.mode == mode and result.image.shape == target.shape
        np.testing.assert_array_equal(result.mask, changed)
        assert result.mask.sum() > 0
        assert np.abs(result.image - target)[~result.mask].max() <= MASK_TOLERANCE


def _steps(image: np.ndarray, mask: np.ndarray, across: bool) -> float:
    """Mean absolute step between 4-neighbours across the mask's boundary (one inside, one outside), or
    between neighbours both inside the mask."""
    steps = []
    for axis in (0, 1):
        first = mask[:-1] if axis == 0 else mask[:, :-1]
        second = mask[1:] if axis == 0 else mask[:, 1:]
        step = np.abs(np.diff(image, axis=axis)).max(-1)
        steps.append(step[first != second] if across else step[first & second])
    return float(np.concatenate(steps).mean())


def test_poisson_blending_leaves_no_seam_unlike_plain_paste():
    """A bright textured patch pasted into a dark image: a plain paste leaves a step at the region's border,
    seamless cloning matches the border and keeps the gradients continuous across it."""
    dark, bright = texture(1) * 0.4, np.clip(texture(2) * 1.6, 0, 1)
    for seed in range(4):
        plain = synthesize(dark, bright, np.random.default_rng(seed), "cutpaste")
        poisson = synthesize(dark, bright, np.random.default_rng(seed), "poisson")
        region = np.abs(plain.image - dark).max(-1) > 0  # same draws: the same region in both
        assert _steps(poisson.image, region, across=True) < 0.5 * _steps(plain.image, region, across=True)
        # the step across the border is of the size of the pasted texture's own steps inside it (a plain
        # paste's is about ten times larger here)
        assert _steps(poisson.image, region, across=True) < 1.5 * _steps(poisson.image, region, across=False)


def test_anomalies_stay_on_the_object_when_the_background_is_uniform():
    image = np.full((128, 128, 3), 0.1, np.float32)
    image[32:96, 40:100] = texture(3)[32:96, 40:100]  # an object on a plain background
    on_object = foreground(image)
    assert on_object[40:88, 48:92].all() and not on_object[:20].any() and not on_object[:, :30].any()
    rng = np.random.default_rng(1)
    for _ in range(10):
        result = synthesize(image, image, rng)
        assert not result.mask[~on_object].any()
    assert foreground(texture(4)).all()  # a texture fills the frame: everything is the object
