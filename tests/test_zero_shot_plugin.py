"""A zero-shot route registered from outside the package runs by its name, with no other edit: through
`Inspector.zero_shot`, `anomalens detect --zero-shot NAME`, `anomalens eval --zero-shot NAME` and evaluation.
It needs no normal images and no backbone: a pixel is as anomalous as its colour is far from its image's
median colour."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from anomalens import Expert, ExpertInput, Inspector, register_expert
from anomalens.cli import app
from anomalens.evaluation import evaluate_category
from anomalens.experts import zero_shot_routes
from conftest import save_png, texture

runner = CliRunner()


@register_expert
class OddColourExpert(Expert):
    name = "test_odd_colour"
    needs = frozenset({"pixels"})  # no "normal": a zero-shot route
    probability_scores = True  # its scores are decided at 0.5, with no calibration

    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = batch.pixels.float()
        median = pixels.flatten(2).median(dim=2).values[:, :, None, None]
        maps = ((pixels - median).norm(dim=1) * 2).clamp(0, 1)
        return maps, maps.flatten(1).amax(1)


def grey(spot: bool) -> np.ndarray:
    """A plain grey part, with a bright square on it where `spot`."""
    image = np.full((96, 96, 3), 120, np.uint8)
    if spot:
        image[30:50, 40:60] = 250
    return image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlabeled")
    save_png(root / "plain.png", grey(False))
    save_png(root / "marked.png", grey(True))
    return root


def test_the_route_is_registered_and_built_by_name():
    assert "test_odd_colour" in zero_shot_routes()
    inspector = Inspector.zero_shot("test_odd_colour", image_size=64)
    assert inspector.backbone is None and inspector.expert_name == "test_odd_colour"
    result = inspector.predict([texture(902)])[0]
    assert result.ok and result.expert == "test_odd_colour"


def test_detect_runs_the_route_by_name(folder, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["detect", str(folder), "--zero-shot", "test_odd_colour", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "zero-shot route test_odd_colour" in result.output
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 2 and all(r["ok"] for r in records)
    assert [r["anomalous"] for r in records] == [True, False]  # marked.png, plain.png (sorted)


def test_detect_refuses_an_unknown_route_and_clip_options_for_a_route_without_text(folder, tmp_path):
    unknown = runner.invoke(app, ["detect", str(folder), "--zero-shot", "telepathy", "--out", str(tmp_path / "a")])
    assert unknown.exit_code == 2 and "unknown zero-shot route" in unknown.output
    assert "test_odd_colour" in unknown.output
    clip = ["--clip-model", "ViT-B-16", "--out", str(tmp_path / "b")]
    mixed = runner.invoke(app, ["detect", str(folder), "--zero-shot", "test_odd_colour", *clip])
    assert mixed.exit_code == 2 and "not test_odd_colour" in mixed.output
    missing = runner.invoke(app, ["detect", str(folder), "--zero-shot", "clip", "--out", str(tmp_path / "c")])
    assert missing.exit_code == 2 and "--clip-weights PATH" in missing.output


def test_evaluation_runs_the_route_by_name(texture_dataset, tmp_path):
    report = evaluate_category(texture_dataset, "textile", options={"image_size": 64}, zero_shot="test_odd_colour")
    assert report["shots"] == "zero" and report["expert"] == "test_odd_colour" and report["n_train"] == 0
    out = tmp_path / "eval"
    args = ["eval", str(texture_dataset), "--zero-shot", "test_odd_colour", "--image-size", "64", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    row = json.loads((out / "metrics.json").read_text())[0]
    assert row["expert"] == "test_odd_colour" and 0 <= row["image_auroc"] <= 1
