import numpy as np
import pytest

from anomalens.regions import describe_location, find_regions, grid_location


@pytest.mark.parametrize(
    "x, y, name",
    [
        (10, 10, "top left"),
        (150, 10, "top"),
        (290, 10, "top right"),
        (10, 150, "left"),
        (150, 150, "center"),
        (290, 150, "right"),
        (10, 290, "bottom left"),
        (150, 290, "bottom"),
        (290, 290, "bottom right"),
    ],
)
def test_grid_names_for_each_cell(x, y, name):
    assert grid_location(x, y, 300, 300) == name


def test_grid_edges_belong_to_the_last_cell():
    assert grid_location(299.9, 299.9, 300, 300) == "bottom right"
    assert grid_location(100, 0, 300, 300) == "top"  # x = W/3 starts the middle column


def test_two_blobs_become_two_regions_strongest_first():
    heat = np.zeros((90, 120), np.float32)
    heat[70:80, 5:15] = 0.6  # bottom left, weaker
    heat[5:25, 90:110] = 0.9  # top right, stronger and larger
    regions = find_regions(heat, 0.5)
    assert [r.location for r in regions] == ["top right", "bottom left"]
    assert regions[0].box == (90, 5, 110, 25)
    assert regions[0].area_fraction == pytest.approx(400 / (90 * 120))
    assert regions[0].peak == pytest.approx(0.9)
    assert describe_location(regions) == "top right and bottom left"


def test_seed_drops_weak_regions_but_keeps_the_strongest():
    heat = np.zeros((60, 60), np.float32)
    heat[5:15, 5:15] = 0.6
    heat[40:50, 40:50] = 0.7
    assert [r.location for r in find_regions(heat, 0.5, seed=0.65)] == ["bottom right"]
    assert [r.location for r in find_regions(heat, 0.5, seed=5.0)] == ["bottom right"]


def test_tiny_specks_are_ignored_and_nothing_above_threshold_gives_nothing():
    heat = np.zeros((200, 200), np.float32)
    heat[100:130, 100:130] = 1.0
    heat[5, 5] = 0.8  # a one-pixel speck
    assert len(find_regions(heat, 0.5)) == 1
    assert find_regions(np.zeros((20, 20)), 0.5) == []
    assert describe_location([]) == ""


def test_regions_of_a_small_rendering_are_scaled_to_the_image():
    heat = np.zeros((64, 64), np.float32)
    heat[48:64, 0:16] = 1.0  # bottom-left quarter-by-quarter block
    (region,) = find_regions(heat, 0.5, image_size=(400, 256))
    assert region.box == (0, 192, 100, 256)
    assert region.location == "bottom left"
    assert region.area_fraction == pytest.approx(1 / 16)
    assert region.centroid == pytest.approx((49.5, 223.5))
