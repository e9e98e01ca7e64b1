"""The stored models on the page (issue 34), in a real headless Chromium on a service that keeps records: the
Models view lists a model with its version and what each taught version learned, a model fitted from the page
is listed at once and a model chosen in the view inspects the next images; the gallery's defect-type filter
narrows a batch whose parts were named two types by a model taught them; a part is shown beside the normal
reference it is most like, which `GET /v1/models/{id}/references/{name}` serves as the PNG the model keeps.
A screenshot goes to docs/page/models.png. Needs what test_web_page.py needs (the API test needs no browser)."""

from __future__ import annotations

import io
import re
import shutil
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from anomalens import Inspector
from conftest import plant_defect, save_png, texture
from test_web_page import API_KEY, SCREENSHOTS, browser, models, records_app, serving  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e

KEY = {"X-API-Key": API_KEY}
TEACHING = 120.0  # s: feedback on a stored model is answered once the model is taught


def scratch(seed: int) -> tuple[np.ndarray, list[int]]:
    """A 64-px part with a thin bright diagonal line (a different kind of defect from plant_defect's dark blob),
    and the line's box."""
    x0, y0 = (int(v) for v in np.random.default_rng(3000 + seed).integers(8, 20, size=2))
    image = texture(660 + seed, size=64)
    for t in range(36):
        image[y0 + t, x0 + t : x0 + t + 2] = [0.98, 0.98, 0.9]
    return image, [x0, y0, x0 + 38, y0 + 36]


def blob(seed: int) -> tuple[np.ndarray, list[int]]:
    """A 64-px part with plant_defect's dark blob, and the blob's box."""
    image, _, (cx, cy) = plant_defect(texture(610 + seed, size=64), seed, radius=8)
    return image, [max(cx - 10, 0), max(cy - 7, 0), min(cx + 10, 64), min(cy + 7, 64)]


@pytest.fixture(scope="module")
def typed_server(models, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """A service with records on a copy of the models, "textile" taught a blob (version 2) and a scratch
    (version 3) through the feedback API: it names the defects it finds one or the other."""
    folder = tmp_path_factory.mktemp("typed")
    own = shutil.copytree(models, folder / "models")
    with serving(records_app(own, folder / "records.db")) as url:
        with httpx.Client(base_url=url, headers=KEY, timeout=TEACHING) as client:
            for name, (image, box) in (("blob", blob(0)), ("scratch", scratch(0))):
                png = save_png(folder / f"{name}.png", image).read_bytes()
                inspected = client.post(
                    "/v1/inspect", files=[("files", (f"{name}.png", png))], data={"model_id": "textile"}
                )
                inspection = inspected.json()["results"][0]["inspection_id"]
                given = {"verdict": "defective", "defect_type": name, "box": box}
                answer = client.post(f"/v1/inspections/{inspection}/feedback", json=given).json()
                assert answer["lesson"]["taught"], answer
        yield url


@pytest.fixture
def page(browser, typed_server):  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(typed_server)
    page.fill("#api-key", API_KEY)
    expect(page.locator("#model option[value=textile]")).to_have_count(1)
    yield page
    page.close()


def test_the_models_view_lists_a_taught_model_with_its_lineage(page):
    from playwright.sync_api import expect

    page.click("#tab-models")
    expect(page.locator("#models-view")).to_be_visible()
    expect(page.locator("#inspect-view")).to_be_hidden()
    row = page.locator("#models-table tbody tr", has_text="textile")
    expect(row.locator("td").nth(4)).to_have_text("3")  # its version
    engine, expert, normal, _, size, created, use = row.locator("td").all_inner_texts()[1:]
    assert (engine, normal, use) == ("torch", "4", "Use") and expert and re.fullmatch(r"\d+ kB", size), size
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", created), created
    page.get_by_role("button", name="open model textile: its versions").click()
    expect(page.locator("#model-detail-title")).to_have_text("Model textile (textile.v3.safetensors, version 3 served)")
    steps = page.locator("#model-lineage li")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_have_text("v1: as fitted")
    expect(steps.nth(1)).to_contain_text(re.compile(r"^v2 from v1, .*1 defective \(blob 1\)"))
    expect(steps.nth(2)).to_contain_text(re.compile(r"^v3 from v2, .*1 defective \(scratch 1\)"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "models.png"), full_page=True)


def test_a_model_fitted_is_listed_and_chosen_in_the_view_inspects_next(page, tmp_path):
    from playwright.sync_api import expect

    page.click("#fitting summary")
    page.set_input_files(
        "#fit-files", [str(save_png(tmp_path / f"weave-{i}.png", texture(40 + i, size=64))) for i in range(3)]
    )
    page.fill("#fit-id", "weave")
    page.click("#fit")
    expect(page.locator("#fit-status")).to_contain_text("Model weave is ready", timeout=120_000)
    expect(page.locator("#models-table tbody tr", has_text="weave")).to_have_count(1)  # listed with the fit, unasked
    page.select_option("#model", "textile")
    page.click("#tab-models")
    page.get_by_role("button", name="use model weave for the next inspection").click()
    expect(page.locator("#inspect-view")).to_be_visible()
    expect(page.locator("#model")).to_have_value("weave")
    expect(page.locator("#status")).to_have_text("Model weave inspects the next images.")
    page.set_input_files("#query", str(save_png(tmp_path / "part.png", texture(700, size=64))))
    page.click("#inspect")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Inspected with "), timeout=120_000)
    kept = page.request.get(f"{page.url}v1/inspections/{page.evaluate('inspectionId')}", headers=KEY).json()
    assert kept["model_id"] == "weave"


def test_the_defect_type_filter_narrows_the_gallery_and_a_part_shows_its_nearest_reference(page, tmp_path):
    from playwright.sync_api import expect

    parts = [("part", texture(500 + i, size=64)) for i in range(2)]
    parts += [("blob", blob(i)[0]) for i in (1, 2)] + [("scratch", scratch(i)[0]) for i in (1, 2)]
    page.select_option("#model", "textile")
    page.set_input_files(
        "#query", [str(save_png(tmp_path / f"{k}-{i}.png", image)) for i, (k, image) in enumerate(parts)]
    )
    page.click("#inspect")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Inspected with "), timeout=120_000)
    types = page.evaluate("batch.results.map((r) => r.defect_type)")
    assert {"blob", "scratch"} <= set(types), types  # two types named in one batch
    choices = page.locator("#filter-defect-type option").all_inner_texts()
    assert choices == ["all", "blob", "scratch"] + (["none"] if None in types else []), choices
    counts = page.locator("#counts").inner_text()
    for choice, value in (("blob", "blob"), ("scratch", "scratch"), ("none", None)):
        if value is None and None not in types:
            continue
        page.select_option("#filter-defect-type", label=choice)
        expect(page.locator("#batch li")).to_have_count(types.count(value))
        if value:
            expect(page.locator("#batch li span").first).to_contain_text(f" · {value}")
        expect(page.locator("#counts")).to_have_text(counts)  # the batch's counts, as with the other filters
    page.select_option("#filter-defect-type", "")
    expect(page.locator("#batch li")).to_have_count(len(parts))
    nearest = page.evaluate("batch.results.find((r) => r.inspection_id === inspectionId).nearest_reference")
    assert re.fullmatch(r"array\[\d\]", nearest), nearest  # the fixture's model was fitted on arrays
    expect(page.locator("#reference-caption")).to_have_text(f"Nearest normal reference: {nearest}")
    expect(page.locator("#nearest-reference")).to_be_visible()
    assert page.locator("#nearest-reference").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 64]
    page.check("input[name=mode][value=refs]")  # a part inspected with references has no stored model to ask
    page.set_input_files("#refs", [str(save_png(tmp_path / f"ref-{i}.png", texture(i, size=64))) for i in range(3)])
    page.set_input_files("#query", str(tmp_path / "part-0.png"))
    page.click("#inspect")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Inspected with "), timeout=120_000)
    expect(page.locator("#reference-figure")).to_be_hidden()


def test_a_kept_reference_is_served_as_png(models):  # noqa: F811
    from fastapi.testclient import TestClient

    from anomalens.server import create_app
    from anomalens.server.errors import ApiError
    from anomalens.server.references import kept_reference

    client = TestClient(create_app(models, api_key=API_KEY), headers=KEY)
    kept = Inspector.load(models / "textile.safetensors")
    assert kept.references is not None and kept.evidence is not None and kept.evidence.pixels is not None
    for i, name in enumerate(kept.references.names):
        answer = client.get(f"/v1/models/textile/references/{name.replace('[', '%5B').replace(']', '%5D')}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        served = np.asarray(Image.open(io.BytesIO(answer.content)))
        assert served.shape == (64, 64, 3)  # at the model's input size
        assert np.array_equal(served, kept.evidence.pixels[i].permute(1, 2, 0).numpy())
    for name, said in (
        ("ref_9.png", "model 'textile' keeps no reference named 'ref_9.png' (it keeps array[0], "),
        ("..%2F..%2Ftextile.safetensors", "keeps no reference named '../../textile.safetensors'"),
        ("..%2Farray%5B0%5D", "keeps no reference named '../array[0]'"),
    ):
        answer = client.get(f"/v1/models/textile/references/{name}")
        assert answer.status_code == 404 and said in answer.json()["error"], answer.text
    assert client.get("/v1/models/nothing/references/array%5B0%5D").status_code == 404
    with pytest.raises(ApiError, match="model 'old' keeps no reference images"):
        kept_reference(SimpleNamespace(), "old", "array[0]")  # an exported or older model keeps none
