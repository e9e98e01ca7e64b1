"""The web chat page in a real headless Chromium: upload a bundled defective weld with normal references,
wait for the overlay and the verdict, ask a question, read the answer; a screenshot is saved.

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both). Without them the test
is skipped, unless ANOMALENS_REQUIRE_BROWSER=1 (as in CI), where their absence fails it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from anomalens.cli import sample_root
from conftest import free_port

pytestmark = pytest.mark.e2e  # through the CLI, a server or a browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("ANOMALENS_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))


def browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None if Path(CHROMIUM).exists() else f"no Chromium at {CHROMIUM}"


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    import threading
    import time

    import uvicorn

    from anomalens.server import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(tmp_path_factory.mktemp("models")), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_page_inspects_and_chats(page_server):
    missing = browser_missing()
    if missing:
        if os.environ.get("ANOMALENS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import expect, sync_playwright

    sample = sample_root() / "battery_weld"
    defective = sorted((sample / "test" / "defective").glob("*.png"))[0]
    references = sorted((sample / "train" / "good").glob("*.png"))[:8]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 800})
        page.goto(page_server)
        expect(page.locator("h1")).to_have_text("AnomaLens")
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
        browser.close()
    assert (OUTPUT / "web_page.png").stat().st_size > 10_000
