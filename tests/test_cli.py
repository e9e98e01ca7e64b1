"""The command line end to end, on the bundled sample and on generated data."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from anomalens.cli import app, sample_root
from conftest import save_png, texture

pytestmark = pytest.mark.e2e  # through the CLI, a server or a browser

runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result, result.output


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "weld.safetensors"
    result, out = _run("fit", sample_root() / "battery_weld", "-o", path)
    assert result.exit_code == 0, out
    assert "patchcore" in out and path.is_file()
    return path


def test_fit_refuses_to_overwrite(model):
    before = model.read_bytes()
    result, out = _run("fit", sample_root() / "battery_weld", "-o", model)
    assert result.exit_code == 2 and "already exists" in out
    assert model.read_bytes() == before


def test_detect_with_model_writes_json_and_overlays_and_survives_bad_files(model, tmp_path):
    images = tmp_path / "in"
    shutil.copytree(sample_root() / "battery_weld" / "test", images)
    (images / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    result, text = _run("detect", images, "--model", model, "--out", out)
    assert result.exit_code == 0, text
    assert "empty.png" in text and "file is empty" in text
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 9 and sum(not r["ok"] for r in records) == 1
    for record in records:
        if record["ok"]:
            assert (out / (record["source"].rsplit("/", 1)[1].rsplit(".", 1)[0] + "_overlay.png")).is_file()
            assert set(record) >= {"score", "anomalous", "confidence", "regions", "location"}
    defects = [r for r in records if r["ok"] and "/defective/" in r["source"]]
    goods = [r for r in records if r["ok"] and "/good/" in r["source"]]
    assert min(r["score"] for r in defects) > max(r["score"] for r in goods)  # every weld defect ranks above
    assert any(r["anomalous"] for r in defects) and not any(r["anomalous"] for r in goods)
    # an existing output folder is not written into again without --overwrite
    result, text = _run("detect", images, "--model", model, "--out", out)
    assert result.exit_code == 2 and "already holds files" in text


def test_detect_with_references_few_shot(tmp_path):
    refs = tmp_path / "refs"
    for i in range(3):
        save_png(refs / f"{i}.png", texture(i))
    query = save_png(tmp_path / "q.png", texture(9))
    result, text = _run("detect", query, "--refs", refs, "--out", tmp_path / "o")
    assert result.exit_code == 0, text
    assert json.loads((tmp_path / "o" / "q.json").read_text())["ok"]


def test_detect_needs_model_or_refs(tmp_path):
    result, text = _run("detect", tmp_path)
    assert result.exit_code == 2 and "exactly one of" in text


def test_eval_writes_tables(texture_dataset, tmp_path):
    result, text = _run("eval", texture_dataset, "--out", tmp_path / "ev", "--image-size", 128)
    assert result.exit_code == 0, text
    rows = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert rows[0]["category"] == "textile" and rows[0]["image_auroc"] == 1.0
    assert (tmp_path / "ev" / "metrics.csv").read_text().startswith("category,")
    assert "textile" in text


def test_eval_few_shot(texture_dataset, tmp_path):
    result, text = _run(
        "eval", texture_dataset, "--shots", 2, "--out", tmp_path / "ev", "--image-size", 128, "--eval-size", 64
    )
    assert result.exit_code == 0, text
    row = json.loads((tmp_path / "ev" / "metrics.json").read_text())[0]
    assert row["n_train"] == 2 and row["eval_size"] == 64 and row["pixel_auroc"] > 0.9


def test_demo_prints_verdicts_and_writes_overlays(tmp_path):
    result, text = _run("demo", "--out", tmp_path / "demo")
    assert result.exit_code == 0, text
    assert "DEFECT" in text and "verdicts match the ground truth" in text
    assert len(list((tmp_path / "demo").glob("*_overlay.png"))) == 8


def test_info_prints_model_header(model):
    result, text = _run("info", model)
    assert result.exit_code == 0 and "efficientnet_lite0" in text and "image_threshold" in text


def test_fit_both_experts_and_info(texture_dataset, tmp_path):
    path = tmp_path / "fused.safetensors"
    result, text = _run("fit", texture_dataset / "textile", "-o", path, "--expert", "both", "--image-size", 128)
    assert result.exit_code == 0, text
    flat = " ".join(text.split())  # the console wraps long lines
    assert "fitted fused on 8 normal images" in flat and "held-out, 2 images" in flat
    result, text = _run("info", path)
    assert '"kind": "fused"' in text and '"kind": "decoder"' in text and '"kind": "memory_bank"' in text


def test_fit_rejects_an_unknown_expert(texture_dataset, tmp_path):
    result, text = _run("fit", texture_dataset / "textile", "-o", tmp_path / "m.safetensors", "--expert", "magic")
    assert result.exit_code == 2 and "unknown expert 'magic'" in text


def test_synth_writes_previews(texture_dataset, tmp_path):
    result, text = _run("synth", texture_dataset / "textile", "-o", tmp_path / "syn", "-n", 5, "--image-size", 128)
    assert result.exit_code == 0, text
    previews = sorted((tmp_path / "syn").glob("*.png"))
    assert len(previews) == 5 and all(p.stem.split("_", 1)[1] in ("poisson", "cutpaste", "noise") for p in previews)
    assert Image.open(previews[0]).size == (3 * 128, 128)  # normal | synthetic | mask


def test_synth_skips_an_unreadable_image(texture_dataset, tmp_path):
    folder = tmp_path / "normal"
    folder.mkdir()
    for source in sorted((texture_dataset / "textile" / "train" / "good").glob("*.png"))[:3]:
        (folder / source.name).write_bytes(source.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    result, text = _run("synth", folder, "-o", tmp_path / "syn", "-n", 12, "--image-size", 128)
    assert result.exit_code == 0, text
    assert "skipped" in text and "broken.png" in text and len(list((tmp_path / "syn").glob("*.png"))) == 12


def test_detect_refuses_images_over_the_pixel_limit_from_their_header(model, tmp_path):
    """The same limit and message as the service: a large image is refused before it is decoded, the rest
    of the batch is inspected."""
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.new("RGB", (3000, 2000)).save(big)
    save_png(small, texture(7))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["detect", str(big), str(small), "--model", str(model), "--out", str(out), "--max-pixels", "1000000"]
    )
    assert result.exit_code == 0, result.output
    records = {Path(r["source"]).name: r for r in json.loads((out / "results.json").read_text())}
    assert (
        not records["big.png"]["ok"]
        and "too large (3000 × 2000 pixels; the limit is 1000000" in records["big.png"]["error"]
    )
    assert records["small.png"]["ok"]


def test_a_false_alarm_share_is_read_as_a_percentage_or_a_fraction():
    import typer

    from anomalens.cli.options import false_alarm_share

    assert false_alarm_share("1%") == pytest.approx(0.01) and false_alarm_share("0.05") == pytest.approx(0.05)
    assert false_alarm_share(None) is None
    for bad in ("0", "100%", "1.5", "often"):
        with pytest.raises(typer.BadParameter):
            false_alarm_share(bad)


def test_the_results_table_flags_an_uncertain_verdict():
    from rich.console import Console

    from anomalens.cli.common import results_table

    def record(name: str, probability: float) -> dict:
        return {
            "source": name, "ok": True, "error": None, "anomalous": probability >= 0.5, "probability": probability,
            "confidence": max(probability, 1 - probability), "score": 1.0, "location": "",
        }  # fmt: skip

    console = Console(width=200, record=True)
    console.print(results_table([record("unsure.png", 0.64), record("sure.png", 0.97), record("edge.png", 0.2)]))
    lines = {line.split()[1]: line for line in console.export_text().splitlines() if ".png" in line}
    assert "uncertain: 0.64 — a second look is advised" in lines["unsure.png"]
    assert "uncertain: 0.20 — a second look is advised" in lines["edge.png"]  # the band is inclusive
    assert "uncertain" not in lines["sure.png"] and "97%" in lines["sure.png"]
