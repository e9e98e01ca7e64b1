"""Images of extreme shapes and modes (1 × N lines, 2 × 4000 and 4000 × 20 strips, 16-bit, float, palette,
CMYK, alpha, bilevel) through the shared inspect path and the overlay, and one bad item in a batch on every
route (few-shot, model file, zero-shot, the HTTP API, chat, series): the others keep their results, every item
is a result or an error naming its file, and nothing ends in a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

import anomalens.inspector as inspector_module
from anomalens import Inspector
from anomalens.calibration import Calibration
from anomalens.cli import app
from anomalens.overlay import render_overlay
from anomalens.preprocessing import Decoded, Layout
from anomalens.regions import find_regions
from anomalens.result import Scored, decide
from anomalens.service import InspectionService
from conftest import texture

SIZE = 32  # the network's smallest input: each case stays cheap
SAMPLE = Path(__file__).parents[1] / "src" / "anomalens" / "sample" / "battery_weld"
GOOD = SAMPLE / "test" / "good" / "4-+16.png"
runner = CliRunner()

MODES = ["RGB", "L", "1", "P", "P+transparency", "LA", "RGBA", "I;16", "I", "F", "F+nan", "CMYK"]


def write_image(path: Path, width: int, height: int, mode: str, seed: int) -> Path:
    """A noisy image of `mode` saved as the format that holds it: TIFF for 32-bit (I, F), JPEG for CMYK, PNG else."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    picture = Image.fromarray(rgb)
    if mode in ("I;16", "I", "F", "F+nan"):
        values = rgb[..., 0].astype(np.float64) / 255
        if mode == "I;16":
            picture = Image.fromarray((values * 65535).astype(np.uint16))
        elif mode == "I":
            picture = Image.fromarray((values * 2**31 - 1).astype(np.int32))
        else:
            floats = values.astype(np.float32)
            if mode == "F+nan":
                floats.flat[:: max(1, floats.size // 7)] = np.nan  # a depth map's missing values
            picture = Image.fromarray(floats)
    elif mode == "P+transparency":
        picture = picture.convert("P")
        picture.info["transparency"] = 0
    elif mode != "RGB":
        picture = picture.convert(mode)
    suffix = {"I": ".tiff", "F": ".tiff", "F+nan": ".tiff", "CMYK": ".jpg"}.get(mode, ".png")
    path = path.with_suffix(suffix)
    picture.save(path, **({"transparency": 0} if mode == "P+transparency" else {}))
    return path


def check_inspected(inspection, width: int, height: int) -> None:
    """A result for the image as given, boxes inside it and never empty, and its overlays drawn."""
    result = inspection.result
    assert inspection.ok, result.error
    assert result.image_size == (width, height)
    assert result.anomaly_map.shape == result.image.shape[:2]
    for region in result.regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (region.box, width, height)
    assert inspection.overlay().size == result.image.shape[1::-1]
    assert max(inspection.overlay(64).size) <= 64


@pytest.fixture(scope="module")
def few_shot():
    service = InspectionService()
    return service, service.fit([texture(i, SIZE) for i in range(3)], image_size=SIZE)


SHAPES = st.one_of(
    st.sampled_from([(1, 1), (1, 2), (2, 1), (2, 4000), (4000, 2), (4000, 20), (20, 4000), (1, 4097), (4097, 1)]),
    st.integers(1, 2500).map(lambda n: (1, n)),
    st.integers(1, 2500).map(lambda n: (n, 1)),
    st.tuples(st.integers(1, 300), st.integers(1, 300)),  # random small ones, any aspect
    st.tuples(st.integers(1, 8), st.integers(2049, 6000)).map(lambda s: s if s[0] % 2 else s[::-1]),  # huge aspect
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=SHAPES, mode=st.sampled_from(MODES), seed=st.integers(0, 2**16), band=st.floats(0, 1))
def test_extreme_shapes_and_modes_are_inspected_and_drawn(few_shot, tmp_path_factory, shape, mode, seed, band):
    service, inspector = few_shot
    width, height = shape
    path = write_image(tmp_path_factory.getbasetemp() / "case", width, height, mode, seed)
    (inspection,) = service.inspect(inspector, [path])
    check_inspected(inspection, width, height)
    # the overlay's boxes for a thin region anywhere, as a positive verdict draws them (the map is small,
    # the image decoded at most MAX_SIDE a side while boxes are in its pixels as given)
    result = inspection.result
    small = np.zeros((SIZE, SIZE), np.float32)
    small[int(band * (SIZE - 1)), :] = 1.0
    small[:, int(band * (SIZE - 1))] = 0.8
    regions = find_regions(small, 0.5, image_size=(width, height))
    for region in regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    picture = render_overlay(result.image, result.anomaly_map, result.calibration, regions, (width, height))
    assert picture.size == result.image.shape[1::-1]


def test_thin_boxes_on_a_strip_decoded_smaller():
    """The issue's crash: a 4000 × 20 image decoded at half size (2000 × 10), a region one pixel high in the
    image as given, drawn half a pixel high (y1 before y0: 'y1 must be greater than or equal to y0')."""
    calibration = Calibration(1.0, 1.0, 0.5, 0.5, 0.0, 3, "test")
    decoded = Decoded("strip.png", np.zeros((10, 2000, 3), np.uint8), (4000, 20))
    small = np.zeros((256, 256), np.float32)
    small[100:113, 40:60] = 2.0  # 13 map rows: one row of the 20-pixel image, or none once rounded
    result = decide(decoded, 2.0, small, calibration)
    assert result.anomalous and result.regions
    (region,) = result.regions
    assert region.box[3] > region.box[1] and region.box[2] > region.box[0]
    assert render_overlay(result.image, result.anomaly_map, calibration, result.regions, (4000, 20)).size == (2000, 10)
    assert Scored(decoded, 2.0, small, calibration).decided().ok


def test_tiles_of_extreme_strips_stay_bounded():
    """Raising a 1-pixel short side to a tile stretches the long side with it: bounded, never 1.6 GB."""
    for scale in ("aspect", 1.0, 0.25):
        for shape in [(1, 2048), (2048, 1), (20, 4000), (2, 2048), (1, 1)]:
            plan = Layout(256, scale).plan(Decoded("x", np.zeros((*shape, 3), np.uint8), shape[::-1]))
            assert plan.canvas[0] * plan.canvas[1] <= 1 << 24 and min(plan.canvas) >= 256


# ---- one bad item on every route ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    """A folder of normal references, the batch (the good sample image first, then extreme ones) and a model."""
    root = tmp_path_factory.mktemp("batch")
    refs = root / "refs"
    refs.mkdir()
    for path in sorted((SAMPLE / "train" / "good").glob("*.png"))[:3]:
        (refs / path.name).write_bytes(path.read_bytes())
    images = [root / "good.png"]
    images[0].write_bytes(GOOD.read_bytes())
    extreme = [(4000, 20, "RGB"), (20, 4000, "L"), (1, 300, "P+transparency"), (300, 1, "1"), (4000, 2, "CMYK")]
    extreme += [(2, 4000, "I;16"), (50, 3, "F+nan"), (1, 1, "LA")]
    for n, (w, h, mode) in enumerate(extreme):
        images.append(write_image(root / f"x{n}-{w}x{h}", w, h, mode, n))
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    images.append(root / "broken.png")
    model = Inspector(image_size=64).fit(sorted(refs.iterdir())).save(root / "model.safetensors")
    return refs, images, model


def check_batch(records: list[dict], images: list[Path], name: str = "source") -> None:
    assert len(records) == len(images)
    assert records[0]["ok"] and records[0]["score"] is not None  # the good sample keeps its result
    for record, image in zip(records, images):
        assert Path(record[name]).name == image.name
        assert record["ok"] or image.name in record["error"] or record.get("file") == image.name, record
    assert not records[-1]["ok"]  # the broken file is named, not fatal


@pytest.mark.e2e
@pytest.mark.parametrize("route", ["refs", "model", "zero-shot"])
def test_one_bad_item_never_stops_a_cli_batch(batch, tmp_path, route):
    refs, images, model = batch
    chosen = {
        "refs": ["--refs", refs, "--image-size", 64],
        "model": ["--model", model],
        "zero-shot": ["--zero-shot", "mutual"],
    }
    out = tmp_path / "out"
    result = runner.invoke(app, [str(a) for a in ["detect", *images, *chosen[route], "--out", out]])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    check_batch(json.loads((out / "results.json").read_text()), images)
    assert all(r["ok"] for r in json.loads((out / "results.json").read_text())[:-1])  # every shape inspected


@pytest.mark.e2e
def test_a_failure_after_decoding_is_that_images_error(batch, tmp_path, monkeypatch):
    """An exception while one image is scored, decided or drawn becomes its error result; the rest go on,
    results.json is written, and the exit code says that some were inspected (README: exit codes)."""
    refs, images, model = batch
    import anomalens.service as service_module

    real = service_module.render_overlay

    def breaks_on_strips(image, *args, **kwargs):
        if image.shape[0] <= 20:
            raise RuntimeError("the overlay broke")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(service_module, "render_overlay", breaks_on_strips)
    out = tmp_path / "out"
    result = runner.invoke(app, [str(a) for a in ["detect", *images[:3], "--model", model, "--out", out]])
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    assert [r["ok"] for r in records] == [True, False, True]
    assert records[1]["error"] == f"{images[1]}: could not be inspected (RuntimeError: the overlay broke)"
    assert not list(out.glob(f"{images[1].stem}*"))  # no half-written files for it
    result = runner.invoke(app, [str(a) for a in ["detect", images[1], "--model", model, "--out", tmp_path / "o2"]])
    assert result.exit_code == 1 and "could not be inspected" in result.output  # none could be inspected


@pytest.mark.parametrize("zero_shot", [False, True])
def test_a_scoring_failure_is_traced_to_its_image(batch, monkeypatch, zero_shot):
    """One image whose scoring fails (in a batch scored together) is that image's error; the others are
    scored, also by an expert that scores the batch against itself."""
    refs, images, model = batch
    inspector = Inspector.zero_shot("mutual") if zero_shot else Inspector.load(model)
    real = inspector_module.expert_input
    poisoned = np.full((4, 4, 3), 7, np.uint8)

    def fails_on_poison(backbone, tiles, kind):
        if (np.abs(tiles - 7 / 255).max(axis=(1, 2, 3)) < 1e-4).any():
            raise FloatingPointError("poisoned")
        return real(backbone, tiles, kind)

    monkeypatch.setattr(inspector_module, "expert_input", fails_on_poison)  # where the inspector embeds tiles
    arrays = [texture(i, 64) for i in range(3)]
    results = inspector.predict([arrays[0], poisoned, arrays[1], arrays[2]])
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].error == "array[1]: could not be inspected (FloatingPointError: poisoned)"


def test_one_bad_item_never_stops_an_api_request(batch, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalens.server.app import create_app

    refs, images, _ = batch
    client = TestClient(create_app(tmp_path / "models"))
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in images]
    references = [("references", (p.name, p.read_bytes(), "image/png")) for p in sorted(refs.iterdir())]
    response = client.post("/v1/inspect", files=files + references, data={"overlay": "true"})
    assert response.status_code == 200, response.text
    records = response.json()["results"]
    check_batch(records, images, name="file")
    assert all(r["ok"] and r["overlay_png"] for r in records[:-1])
    huge = "timestamp,value\n" + "\n".join(f"{i},{1e308 if i % 2 else -1e308}" for i in range(200))
    response = client.post("/v1/series/inspect", files={"file": ("huge.csv", huge.encode(), "text/csv")})
    assert response.status_code in (200, 400) and ("huge.csv" in response.json().get("error", "huge.csv"))


@pytest.mark.e2e
def test_chat_answers_or_names_the_image(batch):
    refs, images, model = batch
    for image in images:
        result = runner.invoke(app, [str(a) for a in ["chat", image, "--model", model, "--ask", "Where is it?"]])
        assert result.exit_code in (0, 1), (image, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.output
        if result.exit_code == 1:
            assert image.name in result.output, result.output
    assert runner.invoke(app, ["chat", str(images[1]), "--model", str(model), "--ask", "ok?"]).exit_code == 0


@pytest.mark.e2e
def test_one_bad_series_file_never_stops_the_others(tmp_path):
    t = np.arange(400)
    good = np.sin(t / 10) + np.random.default_rng(0).normal(0, 0.05, len(t))
    good[300:310] += 3
    files = {
        "good.csv": "\n".join(f"{i},{v}" for i, v in zip(t, good)),
        "huge.csv": "\n".join(f"{i},{1e308 if i % 2 else -1e308}" for i in t),
        "two.csv": "0,1\n1,2",
        "nan.csv": "\n".join(f"{i},nan" for i in t),
        "const.csv": "\n".join(f"{i},5" for i in t),
        "wide.csv": "\n".join(f"{i}," + ",".join("1" * 50) for i in range(12)),
    }
    paths = []
    for name, rows in files.items():
        header = "timestamp," + (",".join(f"c{j}" for j in range(50)) if name == "wide.csv" else "value")
        (tmp_path / name).write_text(header + "\n" + rows)
        paths.append(tmp_path / name)
    out = tmp_path / "out"
    result = runner.invoke(app, [str(a) for a in ["series", "detect", *paths, "--out", out]])
    assert result.exit_code == 0 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    records = json.loads((out / "results.json").read_text())
    assert records[0]["ok"] and records[0]["anomalous"]
    for record, path in zip(records, paths):
        assert record["ok"] or record["error"].startswith(str(path)), record
    assert "is too large to score" in records[1]["error"]


def test_overlay_pictures_of_every_mode_encode(batch):
    """The PNGs served and kept for chat encode for every shape (a 1-pixel thumbnail included)."""
    _, images, model = batch
    service = InspectionService()
    for inspection in service.inspect(Inspector.load(model), images[:-1]):
        session = service.chat(inspection)
        assert session.images is not None
        buffer = io.BytesIO()
        session.images.overlay.save(buffer, format="PNG")


def test_a_positive_verdict_says_where_even_with_its_map_below_the_normal_floor():
    """A taught model can decide an image anomalous by its score while its whole map lies below the normal
    pixels' median (its calibration moved): the answer still needs a place (the composer's crash)."""
    calibration = Calibration(1.0, 1.0, 0.5, 0.5, 0.9, 3, "test")  # pixel floor 0.9 above the map's peak
    small = np.full((256, 256), 0.1, np.float32)
    small[20:30, 200:220] = 0.6
    result = decide(Decoded("low.png", np.zeros((64, 64, 3), np.uint8), (64, 64)), 2.0, small, calibration)
    assert result.anomalous and result.regions and result.location == "top right"
