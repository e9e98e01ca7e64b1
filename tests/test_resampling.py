"""The torch-free resizing and region finding that both engines share, against what the torch route used
before (torch's interpolate, scipy's labelling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from anomalens.regions import components
from anomalens.resampling import at_image_size, resized


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("shape, size", [((256, 400), 256), ((37, 51), 224), ((700, 300), 128)])
def test_images_resize_as_torchs_antialiased_interpolate(mode, shape, size):
    image = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    expected = F.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None], size=(size, size), mode=mode, antialias=True
    ).clamp(0, 1)[0]
    assert np.abs(resized(image, size, mode) - expected.numpy()).max() < 2e-5


@pytest.mark.parametrize("shape", [(256, 400), (1024, 768), (100, 50), (256, 256)])
def test_maps_reach_the_image_size_as_torchs_bilinear_interpolate(shape):
    small_map = np.random.default_rng(1).random((256, 256), dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(small_map)[None, None], size=shape, mode="bilinear")[0, 0]
    grown = at_image_size(small_map, shape)
    assert grown.dtype == np.float32 and np.abs(grown - expected.numpy()).max() < 2e-5


def test_components_are_scipys_labels_and_boxes():
    rng = np.random.default_rng(2)
    for _ in range(200):
        mask = rng.random(rng.integers(1, 40, 2)) < rng.random()
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
        ours, boxes = components(mask)
        assert np.array_equal(ours, labels) and boxes == ndimage.find_objects(labels)
