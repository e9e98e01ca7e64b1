"""The page a quality engineer works in all shift (issue 34), in a real headless Chromium: a folder of images
chosen or dropped (other files skipped, counted), sent in chunks under a progress bar; a folder on the server
inspected in place; the gallery and the history paged over 1,000 recorded inspections; a history row opened
with its chat; a defect painted with the brush and kept as the feedback's mask; and a re-decision that re-sorts
the gallery, recounts it and redraws the distribution. Screenshots go to docs/page/. Needs what
test_web_page.py needs."""
# ruff: noqa: F811 - the pages are test_web_workplace's fixtures, named as arguments

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from conftest import save_png, texture
from test_web_page import (  # noqa: F401 - the fixtures
    API_KEY,
    SCREENSHOTS,
    browser,
    enter_key,
    models,
    records_app,
    records_server,
    serving,
)
from test_web_workplace import batch, inspect, page, teaching_page  # noqa: F401 - the same pages

pytestmark = pytest.mark.e2e


def watch_progress(page) -> None:
    """Keeps every value the progress bar takes in `window.progressSeen`."""
    page.evaluate(
        """() => { window.progressSeen = [];
        new MutationObserver(() => window.progressSeen.push(
            document.getElementById('batch-progress').getAttribute('aria-valuetext'))
        ).observe(document.getElementById('batch-progress'), { attributes: true }); }"""
    )


def test_a_folder_in_chunks_with_progress(page, tmp_path):
    from playwright.sync_api import expect

    folder = tmp_path / "shift"
    batch(folder, normal=18, defective=2)
    (folder / "notes.txt").write_text("not an image")
    (folder / "readme.md").write_text("nor this")
    sent = []
    page.on("request", lambda request: sent.append(request.url) if request.url.endswith("/v1/inspect") else None)
    enter_key(page)
    page.set_input_files("#query-folder", str(folder))
    expect(page.locator("#status")).to_have_text(re.compile(r"^20 images chosen; 2 skipped: not images"))
    watch_progress(page)
    page.click("#inspect")
    expect(page.locator("#status")).to_have_text("Inspected with memory_bank.", timeout=120_000)
    assert len(sent) == 3  # 8 + 8 + 4: the text files were never sent
    expect(page.locator("#batch li")).to_have_count(20)
    bar = page.get_by_role("progressbar", name="images scored")
    expect(bar).to_have_attribute("aria-valuenow", "20")
    expect(bar).to_have_attribute("aria-valuemax", "20")
    expect(page.locator("#batch-progress-text")).to_have_text("20 of 20 scored, 20 sent")
    seen = page.evaluate("window.progressSeen")
    assert "0 of 20 scored, 8 sent" in seen and "8 of 20 scored, 16 sent" in seen, seen


def test_dropped_files_and_folders(page, tmp_path):
    from playwright.sync_api import expect

    images = batch(tmp_path, normal=2, defective=1)
    enter_key(page)
    dropped = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in images]
    dropped.append({"name": "notes.txt", "data": base64.b64encode(b"a note").decode()})
    page.evaluate(
        """(dropped) => { const transfer = new DataTransfer();
        for (const { name, data } of dropped) {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, { type: name.endsWith('.png') ? 'image/png' : 'text/plain' }));
        }
        document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true })); }""",
        dropped,
    )
    expect(page.locator("#status")).to_have_text(re.compile(r"^3 images chosen; 1 skipped"))
    walked = page.evaluate(  # a dropped folder, as Chromium's entries give it: read in rounds until empty
        """async () => {
        const file = (name) => ({ isFile: true, file: (ok) => ok(new File(['x'], name)) });
        const folder = (entries) => ({ isDirectory: true, createReader: () => {
            const rounds = [entries.slice(0, 2), entries.slice(2), []];
            return { readEntries: (ok) => ok(rounds.shift()) }; } });
        const files = [];
        await walkEntry(folder([file('a.png'), folder([file('b.png')]), file('c.txt')]), files);
        return files.map((f) => f.name); }"""
    )
    assert walked == ["a.png", "b.png", "c.txt"]
    page.click("#inspect")
    expect(page.locator("#status")).to_have_text("Inspected with memory_bank.", timeout=60_000)
    expect(page.locator("#batch li")).to_have_count(3)


def test_a_server_folder_in_the_gallery(browser, models, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    from anomalens.records import RecordStore
    from anomalens.server import create_app

    shelf = tmp_path / "shelf"
    images = batch(shelf / "lot-7", normal=9, defective=1)
    (shelf / "lot-7" / "notes.txt").write_text("not an image")
    app = create_app(models, api_key=API_KEY, records=RecordStore(tmp_path / "r.db"), folder_roots={"line-3": shelf})
    with serving(app) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(url)
        enter_key(page)
        page.click("#server-folders summary")
        expect(page.locator("#folder-root")).to_have_value("line-3")
        page.get_by_role("button", name="open the folder lot-7").click()
        expect(page.locator("#folder-status")).to_have_text("10 images here; 1 other files skipped.")
        page.click("#folder-inspect")
        expect(page.locator("#status")).to_have_text("Inspected with memory_bank.", timeout=60_000)
        expect(page.locator("#batch li")).to_have_count(10)
        shown = sorted(caption.split(":")[0] for caption in page.locator("#batch li span").all_inner_texts())
        assert shown == sorted(p.name for p in images)
        expect(page.locator("#original")).to_have_attribute("src", re.compile("^blob:"))  # fetched with the key
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "folders.png"), full_page=True)
        page.get_by_role("button", name="up to the parent folder").click()
        expect(page.locator("#folder-path")).to_have_text("line-3/")
        page.close()


def recorded(store_path: Path, n: int) -> None:
    """`n` inspections on record, as the service writes them."""
    from anomalens.records import RecordStore, inspection_record

    store = RecordStore(store_path)
    for i in range(n):
        result = {"file": f"part-{i:04d}.png", "ok": True, "anomalous": i % 10 == 0, "score": i / n}
        store.add_inspection(
            inspection_record(result | {"probability": i / n}, id=f"seeded-{i:04d}", model_id="textile")
        )


def test_the_history_paged_over_a_thousand(browser, models, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    recorded(tmp_path / "records.db", 1000)
    with serving(records_app(models, tmp_path / "records.db")) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(url)
        enter_key(page)
        page.click("#tab-history")
        rows = page.locator("#history-table tbody tr")
        expect(page.locator("#history-page")).to_have_text("Page 1 of 10 (1–100 of 1000)")
        expect(rows).to_have_count(100)
        page.get_by_role("button", name="next page", exact=True).click()
        expect(page.locator("#history-page")).to_have_text("Page 2 of 10 (101–200 of 1000)")
        expect(rows.first).to_contain_text("part-0100.png")
        page.get_by_role("button", name="previous page", exact=True).click()
        expect(page.locator("#history-page")).to_have_text("Page 1 of 10 (1–100 of 1000)")
        page.close()


def test_a_history_row_shows_its_chat(page, tmp_path):
    from playwright.sync_api import expect

    inspect(page, [save_png(tmp_path / "chatted.png", texture(901, size=64))])
    page.fill("#question", "How sure are you?")
    page.click("#ask")
    expect(page.locator(".msg.bot")).to_have_count(2, timeout=30_000)
    answer = page.locator(".msg.bot").last.inner_text()
    page.click("#tab-history")
    page.select_option("#history-verdict", "")
    page.fill("#history-model", "")
    page.click("#history-show")
    page.get_by_role("button", name="show the inspection of chatted.png with its chat").last.click()
    chat = page.locator("#history-chat")
    expect(chat.locator(".msg.user")).to_have_text(["How sure are you?"])
    expect(chat.locator(".msg.bot")).to_have_text([answer])
    expect(page.locator("#history-detail-title")).to_contain_text("chatted.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "history-chat.png"), full_page=True)


def test_a_missed_defect_painted_with_the_brush(teaching_page, tmp_path):
    from playwright.sync_api import expect

    page = teaching_page
    inspect(page, batch(tmp_path, normal=3, defective=1))
    page.select_option("#filter-verdict", "normal")
    page.locator("#batch li").first.click()
    missed = page.evaluate("inspectionId")
    page.check("input[name=draw-tool][value=brush]")
    page.locator("#original").scroll_into_view_if_needed()
    box = page.locator("#original").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.45, steps=6)
    page.mouse.up()
    expect(page.locator("#drawn-mask")).to_be_visible()
    page.fill("#defect-type", "scratch")
    page.click("#review-missed")
    expect(page.locator("#review-status")).to_contain_text(
        "Reviewed: missed. Kept with the mask painted", timeout=60_000
    )
    kept = page.request.get(f"{page.url}v1/inspections/{missed}", headers={"X-API-Key": API_KEY}).json()
    (given,) = kept["feedback"]
    assert given["verdict"] == "defective" and given["mask_path"].endswith(".png") and given["box"], given
    x0, y0, x1, y1 = given["box"]
    assert x1 - x0 > y1 - y0  # a stroke from left to right, wider than high
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "brush.png"), full_page=True)


def test_a_re_decision_re_sorts_recounts_and_redraws(teaching_page, tmp_path):
    from playwright.sync_api import expect

    page = teaching_page
    inspect(page, batch(tmp_path, normal=4, defective=2))
    page.select_option("#sort", "score-desc")
    page.locator("#batch li").first.click()
    before = page.locator("#distribution-plot line.threshold").get_attribute("x1")
    page.click("#review-false-alarm")
    expect(page.locator("#review-status")).to_contain_text("Taught: model textile is now version 2", timeout=60_000)
    state = page.evaluate(
        """() => ({
        order: visibleOrder(),
        scores: visibleOrder().map((i) => (batch.results[i].redecided || batch.results[i]).score),
        defective: batch.results.filter((r) => verdictOf(r) === 'anomalous').length,
        shown: decidedOf(batch.results[reviewing]).decision, })"""
    )
    assert state["scores"] == sorted(state["scores"], reverse=True)  # the re-decided score takes its place
    shown = [int(i) for i in page.locator("#batch li").evaluate_all("items => items.map((li) => li.dataset.index)")]
    assert shown == state["order"]
    expect(page.locator("#counts")).to_have_text(f"{state['defective']} defective of 6; 1 reviewed")
    caption = page.locator("#distribution-caption")
    expect(caption).to_contain_text(f"This part's score {state['shown']['score']:.3f}")
    assert page.locator("#distribution-plot line.threshold").get_attribute("x1") != before  # the taught threshold
