"""Feedback from the page teaches (issues 32 and 34), in a real headless Chromium on a service that keeps
records and stores a model: a false alarm marked on the page teaches the model its next version, the part is
shown re-decided and inspects normal from then on; a box drawn on the image by a mouse drag goes with a missed
defect, in the image's own pixels; a box drawn on a missed defect teaches the model to find the next like it. A
screenshot goes to docs/page/taught.png. Needs what test_web_page.py needs."""

from __future__ import annotations

import re

import pytest

from anomalens import Inspector
from conftest import save_png, texture
from test_defect_memory import PARTS, streak
from test_teaching import turned
from test_web_page import API_KEY, SCREENSHOTS, browser, records_app, serving  # noqa: F401 - browser: a fixture

pytestmark = pytest.mark.e2e

TEACHING = 60_000  # ms: feedback on a stored model is answered once the model is taught


@pytest.fixture(scope="module")
def tile_server(tmp_path_factory):
    """The app with records and two stored models, "tile" and "fresh" (taught only here), fitted alike on eight
    parts that all lie one way."""
    models = tmp_path_factory.mktemp("tile-models")
    model = Inspector(image_size=128, synthetic_images=16).fit([texture(i) for i in range(8)])
    model.save(models / "tile.safetensors")
    model.save(models / "fresh.safetensors")
    with serving(records_app(models, tmp_path_factory.mktemp("tile-records") / "records.db")) as url:
        yield url


@pytest.fixture
def page(browser, tile_server):  # noqa: F811 - the fixture imported above
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(tile_server)
    page.fill("#api-key", API_KEY)
    expect(page.locator("#model option[value=tile]")).to_have_count(1)
    page.select_option("#model", "tile")
    yield page
    page.close()


def inspect(page, image) -> None:
    from playwright.sync_api import expect

    page.set_input_files("#query", str(image))
    page.click("#inspect")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Inspected with \w+\.$"), timeout=120_000)


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float, float]:
    """A mouse drag on the shown image from `start` to `end`, in the image's own pixels (the end may lie
    outside it); the picture's scale (CSS pixels per image pixel)."""
    image = page.locator("#original")
    image.evaluate("img => img.scrollIntoView({ block: 'center' })")  # the mouse reaches what the viewport shows
    frame = image.bounding_box()
    width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = min(frame["width"] / width, frame["height"] / height)  # letterboxed: object-fit contain
    left = frame["x"] + (frame["width"] - width * scale) / 2
    top = frame["y"] + (frame["height"] - height * scale) / 2
    page.mouse.move(left + start[0] * scale, top + start[1] * scale)
    page.mouse.down()
    page.mouse.move(left + end[0] * scale, top + end[1] * scale, steps=5)
    page.mouse.up()
    return scale


def test_a_false_alarm_teaches_the_model_and_the_part_is_re_decided(page, tmp_path):
    from playwright.sync_api import expect

    part = save_png(tmp_path / "turned.png", turned(100))  # turned a quarter: new to parts that all lie one way
    inspect(page, part)
    expect(page.locator("#verdict")).to_have_class("defect")
    page.click("#review-false-alarm")
    taught = r"^Reviewed: false alarm\. Kept\. Taught: model tile is now version 2 — this part is now decided normal"
    expect(page.locator("#review-status")).to_have_text(re.compile(taught + r" \(p 0\.\d\d\)\.$"), timeout=TEACHING)
    expect(page.locator("#lesson-flags li").first).to_contain_text("taken whole")  # against strong evidence
    expect(page.locator("#verdict")).to_have_class("ok")
    expect(page.locator("#verdict")).to_contain_text(re.compile(r"Re-decided by the taught model: normal \(p 0\.\d"))
    expect(page.locator("#model option[value=tile]")).to_contain_text("version 2")
    inspect(page, part)  # the model as taught decides the part from now on
    expect(page.locator("#verdict")).to_have_class("ok")
    expect(page.locator("#review-status")).to_have_text("")


def test_a_box_drawn_goes_with_a_missed_defect(page, tmp_path):
    from playwright.sync_api import expect

    inspect(page, save_png(tmp_path / "part.png", texture(301)))  # one the model calls normal
    expect(page.locator("#verdict")).to_have_class("ok")
    drag(page, (100, 100), (170, 160))  # past the corner: kept inside the image
    assert page.evaluate("drawnBox")[2:] == [128, 128]
    expect(page.locator("#drawn-box")).to_be_visible()
    page.click("#clear-box")
    expect(page.locator("#drawn-box")).to_be_hidden()
    assert page.evaluate("drawnBox") is None
    page.focus("#original")  # the keyboard's box: started at the centre, moved and sized by arrow keys
    for key in ("ArrowRight", "ArrowRight", "Shift+ArrowDown"):
        page.keyboard.press(key)
    assert page.evaluate("drawnBox") == [64, 56, 80, 76]
    expect(page.locator("#drawn-box")).to_be_visible()
    page.keyboard.press("Escape")
    assert page.evaluate("drawnBox") is None
    scale = drag(page, (30, 40), (90, 100))
    shown = page.locator("#drawn-box").bounding_box()
    assert abs(shown["width"] - 60 * scale) <= 2 * scale + 4 and abs(shown["height"] - 60 * scale) <= 2 * scale + 4
    page.click("#review-missed")
    status = page.locator("#review-status")
    expect(status).to_contain_text(re.compile(r"Taught: model tile is now version \d"), timeout=TEACHING)
    expect(status).to_contain_text(re.compile(r"^Reviewed: missed\. Kept with the box \(\d+, \d+\)–\(\d+, \d+\)\."))
    inspection = page.evaluate("inspectionId")
    kept = page.request.get(f"{page.url}v1/inspections/{inspection}", headers={"X-API-Key": API_KEY}).json()
    [feedback] = kept["feedback"]
    assert feedback["verdict"] == "defective" and feedback["source"] == "page"
    x0, y0, x1, y1 = feedback["box"]
    assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
    assert all(abs(got - want) <= 2 for got, want in zip(feedback["box"], (30, 40, 90, 100))), feedback["box"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "taught.png"), full_page=True)


def test_a_box_drawn_on_a_missed_defect_finds_the_next_like_it(page, tmp_path):
    from playwright.sync_api import expect

    expect(page.locator("#model option[value=fresh]")).to_have_count(1)
    page.select_option("#model", "fresh")
    missed, (x0, y0, x1, y1) = streak(texture(PARTS[0]), 0)
    inspect(page, save_png(tmp_path / "missed.png", missed))
    expect(page.locator("#verdict")).to_have_class("ok")
    missed_inspection = page.evaluate("inspectionId")  # the service keeps the image taught by this name
    drag(page, (x0, y0), (x1, y1))
    page.click("#review-missed")
    taught = re.compile(r"Taught: model fresh is now version 2")
    expect(page.locator("#review-status")).to_contain_text(taught, timeout=TEACHING)
    like, _ = streak(texture(PARTS[1]), 1)
    inspect(page, save_png(tmp_path / "like.png", like))
    expect(page.locator("#verdict")).to_have_class("defect")
    expect(page.locator("#verdict")).to_contain_text(f"Flagged like the defect marked on {missed_inspection}.png.")
    expect(page.locator("#regions li")).not_to_have_count(0)
