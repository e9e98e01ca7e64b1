"""The web page in a real headless Chromium, doing what the API does: inspect a bundled defective weld with
normal references and chat about it (a screenshot is saved), list the models once an API key is entered,
show why an upload was refused, fit a model from uploaded normal images, inspect zero-shot, and inspect a
time series and chat about it.

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both). Without them the tests
are skipped, unless ANOMALENS_REQUIRE_BROWSER=1 (as in CI), where their absence fails them."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from anomalens import Inspector
from anomalens.cli import sample_root
from conftest import free_port, plant_defect, save_png, texture

pytestmark = pytest.mark.e2e  # through the CLI, a server or a browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("ANOMALENS_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))
API_KEY = "web-key-1"
WELD = sample_root() / "battery_weld"


def browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None if Path(CHROMIUM).exists() else f"no Chromium at {CHROMIUM}"


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    """The app with an API key, serving one small fitted model ("textile")."""
    import uvicorn

    from anomalens.server import create_app

    models = tmp_path_factory.mktemp("models")
    Inspector(image_size=64).fit([texture(i, size=64) for i in range(4)]).save(models / "textile.safetensors")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(models, api_key=API_KEY), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    missing = browser_missing()
    if missing:
        if os.environ.get("ANOMALENS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, page_server):
    page = browser.new_page(viewport={"width": 1366, "height": 800})
    page.goto(page_server)
    yield page
    page.close()


def enter_key(page) -> None:
    """Types the key and waits for the model list it unlocks."""
    from playwright.sync_api import expect

    page.fill("#api-key", API_KEY)
    expect(page.locator("#model option[value=textile]")).to_have_count(1)


def test_page_inspects_and_chats(page):
    from playwright.sync_api import expect

    defective = sorted((WELD / "test" / "defective").glob("*.png"))[0]
    references = sorted((WELD / "train" / "good").glob("*.png"))[:8]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    expect(page.locator("h1")).to_have_text("AnomaLens")
    enter_key(page)
    page.set_input_files("#query", str(defective))
    page.check("input[name=mode][value=refs]")
    page.set_input_files("#refs", [str(p) for p in references])
    page.fill("#class-name", "battery weld")
    page.click("#inspect")
    expect(page.locator("#verdict")).to_contain_text(re.compile(r"anomal(y|ies)"), timeout=60_000)
    expect(page.locator("#overlay")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert page.locator("#overlay").evaluate("img => img.complete && img.naturalWidth") == 400
    page.fill("#question", "How sure are you?")
    page.click("#ask")
    expect(page.locator(".msg.bot").last).to_contain_text("confidence", timeout=30_000)
    page.screenshot(path=str(OUTPUT / "web_page.png"), full_page=True)
    assert (OUTPUT / "web_page.png").stat().st_size > 10_000


def test_entering_the_key_loads_the_model_list(page):
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_contain_text("Could not list models: missing or wrong API key")
    expect(page.locator("#model option")).to_have_text(["(no models yet)"])
    enter_key(page)
    expect(page.locator("#model option")).to_have_text(["textile (4 normal images)"])
    expect(page.locator("#status")).to_have_text("")


def test_a_refused_upload_shows_why(page, tmp_path):
    from playwright.sync_api import expect

    enter_key(page)
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"this is not a picture")
    page.set_input_files("#query", str(notes))
    page.click("#inspect")
    status = page.locator("#status")
    expect(status).to_contain_text("no readable image to inspect")
    expect(status).to_contain_text("notes.png: not a readable image (format not recognised)")
    expect(status).to_have_class(re.compile("error"))
    good = save_png(tmp_path / "good.png", texture(7, size=64))
    page.set_input_files("#query", [str(good), str(notes)])  # one inspected, one refused: both said
    page.click("#inspect")
    expect(status).to_contain_text("Inspected with memory_bank.")
    expect(status).to_contain_text("notes.png: not a readable image")
    expect(page.locator("#batch li")).to_have_count(2)


def test_a_model_fitted_from_uploads_is_listed_and_inspects(page, tmp_path):
    from playwright.sync_api import expect

    enter_key(page)
    page.click("#fitting summary")
    normal = [str(p) for p in sorted((WELD / "train" / "good").glob("*.png"))[:4]]
    junk = tmp_path / "readme.png"
    junk.write_bytes(b"not an image")
    page.set_input_files("#fit-files", [*normal, str(junk)])
    page.fill("#fit-id", "weld")
    page.click("#fit")
    fit_status = page.locator("#fit-status")
    expect(fit_status).to_contain_text("Model weld is ready (4 images).", timeout=120_000)
    expect(fit_status).to_contain_text("readme.png: not a readable image")
    expect(page.locator("#model")).to_have_value("weld")
    page.set_input_files("#query", str(sorted((WELD / "test" / "defective").glob("*.png"))[0]))
    page.click("#inspect")
    expect(page.locator("#verdict")).to_contain_text(re.compile(r"anomal(y|ies)"), timeout=60_000)


def test_zero_shot_inspection(page, tmp_path):
    from playwright.sync_api import expect

    enter_key(page)
    images = [save_png(tmp_path / f"p{i}.png", texture(340 + i)) for i in range(5)]
    images.append(save_png(tmp_path / "marked.png", plant_defect(texture(330), 2)[0]))
    page.check("input[name=mode][value=zero]")
    page.set_input_files("#query", [str(p) for p in images])
    page.click("#inspect")
    expect(page.locator("#status")).to_have_text("Inspected with mutual.", timeout=60_000)
    lines = page.locator("#batch li")
    expect(lines).to_have_count(6)
    expect(lines.last).to_contain_text("marked.png: anomalous")
    lines.last.click()
    expect(page.locator("#batch li.shown")).to_contain_text("marked.png")
    expect(page.locator("#verdict")).to_contain_text(re.compile(r"anomal(y|ies)"))


def test_page_inspects_a_series_and_chats_about_it(page, tmp_path):
    from playwright.sync_api import expect

    rng = np.random.default_rng(0)
    values = 10 + 3 * np.sin(np.arange(3000) * 2 * np.pi / 50) + 0.2 * rng.standard_normal(3000)
    values[2000:2200] -= 5
    data = tmp_path / "line.csv"
    data.write_text("t,pressure\n" + "\n".join(f"{i},{v:.4f}" for i, v in enumerate(values)) + "\n")
    enter_key(page)
    page.click("#series-box summary")
    page.set_input_files("#series-file", str(data))
    page.click("#series-inspect")
    expect(page.locator("#verdict")).to_contain_text("Yes", timeout=60_000)
    expect(page.locator("#regions li").first).to_contain_text("a drop of")
    assert page.locator("#series-plot").evaluate("img => img.complete && img.naturalWidth") > 500
    page.fill("#question", "Which sensor?")
    page.click("#ask")
    expect(page.locator(".msg.bot").last).to_contain_text("pressure", timeout=30_000)
