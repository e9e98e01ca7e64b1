"""Resolution: images laid out at their aspect ratio or in native-resolution tiles (`preprocessing.Layout`),
tiles stitched back into one map that lines up with the image, through the inspector and the command line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalens import Inspector
from anomalens.cli import app
from anomalens.preprocessing import Decoded, Layout, checked_scale, tile_starts
from anomalens.scale import ScaleProbe, picked, scale_reason
from anomalens.stitching import ImageMaps, Stitching
from conftest import save_png, texture


@pytest.mark.parametrize("length", [128, 129, 300, 437, 1000])
def test_tiles_cover_the_side_and_overlap(length):
    starts = tile_starts(length, 128)
    assert starts[0] == 0 and starts[-1] + 128 == max(length, 128)
    assert all(b - a <= 0.75 * 128 for a, b in zip(starts, starts[1:]))  # neighbours share at least a quarter


def test_stitching_puts_every_tile_back_in_its_place():
    canvas = np.random.default_rng(0).random((300, 437)).astype(np.float32)
    plan = Layout(128, 1.0).plan(Decoded("x", np.zeros((300, 437, 3), np.uint8), (437, 300)))
    stitching = Stitching(plan)
    for index, (y, x) in reversed(list(enumerate(plan.origins))):  # any order
        stitching.add(index, canvas[y : y + 128, x : x + 128])
    np.testing.assert_allclose(stitching.result(), canvas, rtol=1e-5)


def test_image_maps_gather_tiles_into_their_images():
    """Two images' tiles in any order: each stitched map is its canvas, each score its highest tile's, and
    add() says when a tile became its image's highest (so its descriptor is the one kept)."""
    rng = np.random.default_rng(2)
    plans = [
        Layout(128, 1.0).plan(Decoded(s, np.zeros((*shape, 3), np.uint8), shape[::-1]))
        for s, shape in (("a", (128, 300)), ("b", (128, 128)))
    ]
    canvases = [rng.random(plan.canvas).astype(np.float32) for plan in plans]
    gathered = ImageMaps(plans)
    scores = {(0, 0): 1.0, (0, 1): 3.0, (0, 2): 2.0, (1, 0): 0.5}
    highest = [
        gathered.add(i, t, canvases[i][:, plans[i].origins[t][1] : plans[i].origins[t][1] + 128], s)
        for (i, t), s in scores.items()
    ]
    assert highest == [True, True, False, True]
    assert gathered.scores.tolist() == [3.0, 0.5]
    for stitched, canvas in zip(gathered.maps(), canvases):
        np.testing.assert_allclose(stitched, canvas, rtol=1e-5)


def test_tiles_are_the_image_pixels_at_native_scale():
    image = (np.random.default_rng(1).random((200, 333, 3)) * 255).astype(np.uint8)
    plan = Layout(128, 1.0).plan(Decoded("x", image, (333, 200)))
    for (y, x), tile in zip(plan.origins, plan.tiles(image)):
        np.testing.assert_allclose(tile, image[y : y + 128, x : x + 128].transpose(2, 0, 1) / 255, atol=1e-6)


def test_layouts_keep_the_aspect_ratio():
    image = np.zeros((250, 1000, 3), np.uint8)
    assert Layout(128, "squash").plan(Decoded("x", image, (1000, 250))).canvas == (128, 128)
    aspect = Layout(128, "aspect").plan(Decoded("x", image, (1000, 250)))
    assert aspect.canvas == (128, 512) and len(aspect.origins) == 5  # 4 tiles' width, overlapping
    # a stated scale is of the image as given (this one was decoded at half its size); a short side below
    # one tile is scaled up to one
    assert Layout(128, 0.5).plan(Decoded("x", image, (2000, 500))).canvas == (250, 1000)
    assert Layout(128, 0.1).plan(Decoded("x", image, (1000, 250))).canvas == (128, 512)


@pytest.mark.parametrize("scale", ["sideways", 0, -1.0, 100.0])
def test_a_bad_scale_is_refused_with_its_reason(scale):
    with pytest.raises(ValueError, match="scale must be"):
        checked_scale(scale)
    with pytest.raises(ValueError, match="scale must be"):
        Inspector(scale=scale)


def _strip(seed: int) -> np.ndarray:
    return texture(seed, 150, 437)  # odd-sized: neither side is a multiple of the tile


def _planted(seed: int) -> tuple[np.ndarray, np.ndarray]:
    image, mask = _strip(seed), np.zeros((150, 437), bool)
    mask[95:107, 380:392] = True  # 12 × 12 px near the right end, in the last tile only
    image[mask] = 0.1
    return image, mask


@pytest.mark.parametrize("scale", ["aspect", 1.0])
def test_stitched_maps_line_up_with_a_planted_defect(scale):
    inspector = Inspector(image_size=64, scale=scale).fit([_strip(s) for s in range(4)])
    defective, mask = _planted(50)
    bad, good = inspector.predict([defective, _strip(51)])
    assert bad.anomaly_map is not None and bad.anomaly_map.shape == (150, 437)
    y, x = np.unravel_index(bad.anomaly_map.argmax(), bad.anomaly_map.shape)
    assert abs(y - 101) <= 8 and abs(x - 386) <= 8  # the peak is on the defect, in the image's own pixels
    assert bad.anomalous and not good.anomalous and bad.score > good.score  # type: ignore[operator]
    box = bad.regions[0].box
    assert box[0] <= 392 and box[2] >= 380 and box[1] <= 107 and box[3] >= 95  # (x0, y0, x1, y1) covers it


def test_a_tiled_model_file_keeps_its_scale(tmp_path):
    inspector = Inspector(image_size=64, scale=1.0).fit([_strip(s) for s in range(3)])
    path = inspector.save(tmp_path / "tiled.safetensors")
    loaded = Inspector.load(path)
    assert loaded.config.scale == 1.0 and loaded.config.image_size == 64
    image, _ = _planted(60)
    np.testing.assert_allclose(loaded.predict(image)[0].anomaly_map, inspector.predict(image)[0].anomaly_map)


@pytest.mark.e2e
def test_detect_tiles_from_the_command_line(tmp_path):
    refs = tmp_path / "refs"
    for i in range(3):
        save_png(refs / f"{i}.png", _strip(i))
    query = save_png(tmp_path / "q.png", _planted(70)[0])
    result = CliRunner().invoke(
        app, ["detect", str(query), "--refs", str(refs), "--tile", "64", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "o" / "q.json").read_text())
    assert record["anomalous"] and record["image_size"] == [437, 150]
    bad = CliRunner().invoke(app, ["detect", str(query), "--refs", str(refs), "--scale", "huge"])
    assert bad.exit_code == 2 and "--scale" in bad.output


def test_one_tiled_reference_is_not_matched_against_its_own_overlapping_tiles():
    # with one reference, leave-one-out matches its patches against the rest of the same image: the
    # neighbouring tiles that hold the same place must be excluded too, else normal scores come out near 0
    # and every new image is a false alarm
    inspector = Inspector(image_size=64, scale=1.0).fit(_strip(0))
    assert inspector.calibration is not None and inspector.calibration.method == "self-similarity"
    defective, _ = _planted(80)
    bad, good = inspector.predict([defective, _strip(81)])
    assert bad.anomalous and not good.anomalous


def test_the_service_inspects_and_draws_a_tiled_image():
    from anomalens.service import InspectionService

    service = InspectionService()
    inspector = service.fit([_strip(s) for s in range(3)], image_size=64, scale=1.0)
    inspection = next(service.inspect(inspector, [_planted(90)[0]]))
    anomaly_map = inspection.result.anomaly_map
    assert anomaly_map is not None and anomaly_map.shape == (150, 437)
    y, x = np.unravel_index(anomaly_map.argmax(), anomaly_map.shape)
    assert abs(y - 101) <= 10 and abs(x - 386) <= 10
    assert inspection.overlay().size == (437, 150)


@pytest.mark.e2e
def test_fit_keeps_the_scale_in_the_model_file(tmp_path):
    refs = tmp_path / "refs"
    for i in range(3):
        save_png(refs / f"{i}.png", _strip(i))
    model = tmp_path / "m.safetensors"
    runner = CliRunner()
    result = runner.invoke(app, ["fit", str(refs), "-o", str(model), "--scale", "aspect", "--image-size", "64"])
    assert result.exit_code == 0 and "scale aspect at 64 px" in result.output, result.output
    info = runner.invoke(app, ["info", str(model)])
    assert '"scale": "aspect"' in info.output
    query = save_png(tmp_path / "q.png", _planted(70)[0])
    detected = runner.invoke(app, ["detect", str(query), "--model", str(model), "--out", str(tmp_path / "o")])
    assert detected.exit_code == 0 and json.loads((tmp_path / "o" / "q.json").read_text())["anomalous"]


def test_auto_scale_chooses_the_cheapest_layout_that_finds_small_synthetic_defects(tmp_path):
    inspector = Inspector(image_size=32, scale="auto").fit([texture(i, 96, 120) for i in range(7)])
    tried = [scale for scale, _, _ in inspector.scale_probes]
    assert tried[:2] == ["squash", "aspect"] and all(isinstance(s, float) for s in tried[2:])
    assert tried[2:] == sorted(tried[2:])
    passing = [scale for scale, separated, _ in inspector.scale_probes if separated >= ScaleProbe().separated]
    assert inspector.config.scale == (passing[0] if passing else tried[-1])  # none passing: the finest probed
    if passing:  # the cheapest that passes: no probe past it
        assert tried[-1] == passing[0]
    reason = scale_reason(inspector.scale_probes)  # what `fit` prints: why this layout
    assert ("cheapest layout" in reason) == bool(passing) and f"{ScaleProbe().min_defect_px} px a side" in reason
    path = inspector.save(tmp_path / "auto.safetensors")  # the model holds the scale chosen, never "auto"
    assert Inspector.load(path).config.scale == inspector.config.scale


def test_the_layout_picked_is_the_cheapest_passing_else_the_fallbacks():
    probes = [("squash", 0.5, 1.0), ("aspect", 0.8, 2.0), (0.5, 0.6, 4.0)]  # cheapest first
    assert picked(probes, ScaleProbe(separated=0.75))[0] == "aspect"
    assert picked(probes, ScaleProbe(separated=0.9, fallback="finest"))[0] == 0.5
    assert picked(probes, ScaleProbe(separated=0.9, fallback="most"))[0] == "aspect"
    assert "finest probed" in scale_reason(probes, ScaleProbe(separated=0.9, fallback="finest"))
