"""Both zero-shot routes through the product's entry points: Inspector and `anomalens detect/chat --zero-shot`.
Route A runs on a tiny randomly initialised CLIP saved as a checkpoint file (the machinery, not the quality:
tests/test_zero_shot_clip.py trains one that means something)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from anomalens import Inspector
from anomalens.cli import app
from anomalens.clip.model import CLIP
from conftest import plant_defect, save_png, texture
from test_clip import TINY

runner = CliRunner()


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in CLIP(TINY).state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlabeled")
    for i in range(3):
        save_png(root / f"good{i}.png", texture(700 + i))
    save_png(root / "marked.png", plant_defect(texture(710), 3)[0])
    return root


def test_route_a_inspector_gives_probabilities_maps_and_verdicts(clip_file):
    inspector = Inspector.zero_shot("clip", clip_weights=clip_file, class_name="textile", defects=("stain",))
    assert inspector.calibration.image_threshold == 0.5 and inspector.calibration.n_normal == 0
    results = inspector.predict([texture(1), plant_defect(texture(2), 0)[0]])
    for result in results:
        assert 0 <= result.score <= 1 and result.anomalous == (result.score >= 0.5)
        assert result.anomaly_map.shape == (128, 128) and result.anomaly_map.dtype == np.float32
    with pytest.raises(ValueError, match="no model to save"):
        inspector.save("x.safetensors")


@pytest.mark.e2e
def test_detect_zero_shot_route_a_from_a_weights_file(clip_file, folder, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "detect",
            str(folder),
            "--zero-shot",
            "clip",
            "--clip-weights",
            str(clip_file),
            "--class",
            "textile",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 4 and all(r["ok"] and 0 <= r["probability"] <= 1 for r in records)
    assert (out / "marked_overlay.png").is_file()


@pytest.mark.e2e
def test_eval_zero_shot_route_a_from_a_weights_file(clip_file, texture_dataset, tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        [
            "eval",
            str(texture_dataset),
            "--zero-shot",
            "clip",
            "--clip-weights",
            str(clip_file),
            "--image-size",
            "128",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    row = json.loads((out / "metrics.json").read_text())[0]
    assert row["shots"] == "zero" and row["expert"] == "clip" and row["n_train"] == 0
    assert row["calibration"]["method"] == "text-probability" and 0 <= row["image_auroc"] <= 1


@pytest.mark.e2e
def test_route_a_without_weights_explains_how_to_get_them(folder, tmp_path, monkeypatch):
    def offline(repo, filename):
        raise OSError("no network")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=offline))
    result = runner.invoke(
        app, ["detect", str(folder), "--zero-shot", "clip", "--clip-model", "ViT-B-16", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "--clip-weights PATH" in result.output and "huggingface.co" in result.output


@pytest.mark.e2e
def test_detect_zero_shot_route_b_needs_no_weights(folder, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["detect", str(folder), "--zero-shot", "mutual", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "results.json").read_text())) == 4


@pytest.mark.e2e
def test_chat_zero_shot(clip_file, folder):
    result = runner.invoke(
        app,
        [
            "chat",
            str(folder / "marked.png"),
            "--zero-shot",
            "clip",
            "--clip-weights",
            str(clip_file),
            "--class",
            "textile",
            "--ask",
            "how sure are you?",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("{") :])
    assert record["findings"]["n_normal"] == 0 and record["findings"]["expert"] == "clip"
    assert record["turns"][0]["answer"].startswith("My confidence")
    alone = runner.invoke(app, ["chat", str(folder / "marked.png"), "--zero-shot", "mutual"])
    assert alone.exit_code == 2 and "compares a batch" in alone.output
