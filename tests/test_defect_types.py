"""The defect-type expert names a defect from a few labelled examples per type, and the chat uses it."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalens import Inspector
from anomalens.cli import app
from anomalens.experts.defect_types import DefectExamples, DefectTypeClassifier
from conftest import plant_defect, save_png, texture


def scratch(image: np.ndarray, seed: int) -> np.ndarray:
    """A thin bright diagonal line: a different kind of defect from plant_defect's dark blob."""
    rng = np.random.default_rng(2000 + seed)
    out = image.copy()
    x0, y0 = rng.integers(20, 60, size=2)
    for t in range(50):
        out[y0 + t, x0 + t : x0 + t + 2] = [0.98, 0.98, 0.9]
    return out


@pytest.fixture(scope="module")
def inspector():
    return Inspector().fit([texture(i) for i in range(6)])


def _descriptors(inspector, images) -> np.ndarray:
    """Results carry their defect descriptor: nothing is embedded again to name a defect."""
    return np.stack([r.descriptor for r in inspector.predict(images)])


def test_types_are_told_apart_from_three_examples_each(inspector):
    blobs = [plant_defect(texture(800 + i), i)[0] for i in range(6)]
    lines = [scratch(texture(900 + i), i) for i in range(6)]
    expert = DefectTypeClassifier.fit(
        {"blob": _descriptors(inspector, blobs[:3]), "scratch": _descriptors(inspector, lines[:3])}
    )
    guesses = [expert.classify(d) for d in _descriptors(inspector, blobs[3:] + lines[3:])]
    assert [g.name for g in guesses] == ["blob"] * 3 + ["scratch"] * 3
    assert all(0 < g.similarity <= 1 and g.runner_up != g.name for g in guesses)
    with pytest.raises(ValueError, match="at least two defect types"):
        DefectTypeClassifier.fit({"blob": _descriptors(inspector, blobs[:1])})


def test_queries_are_described_as_the_taught_examples_were(inspector):
    """A model file written before keeps its examples' descriptors ("excess-weighted"): its queries are described
    that way too, and the examples' form is what a model file keeps."""
    blobs = [plant_defect(texture(800 + i), i)[0] for i in range(2)]
    descriptors = _descriptors(inspector, blobs)
    older = DefectExamples(("blob", "blob"), descriptors, "excess-weighted")
    assert DefectExamples.from_state(*older.state()).form == "excess-weighted"
    assert DefectExamples.from_state({"names": ["blob", "blob"]}, older.state()[1]).form == "excess-weighted"
    taught = copy.copy(inspector)
    taught.defect_examples = older
    assert not np.allclose(_descriptors(taught, blobs), descriptors)  # described the older way …
    taught.defect_examples = DefectExamples(("blob", "blob"), descriptors)
    assert np.allclose(_descriptors(taught, blobs), descriptors)  # … and today's way, as its examples are


def test_chat_names_the_defect_type(tmp_path):
    for i in range(6):
        save_png(tmp_path / "good" / f"{i}.png", texture(i))
    for i in range(3):
        save_png(tmp_path / "types" / "blob" / f"{i}.png", plant_defect(texture(820 + i), 10 + i)[0])
        save_png(tmp_path / "types" / "scratch" / f"{i}.png", scratch(texture(920 + i), 10 + i))
    query = save_png(tmp_path / "query.png", scratch(texture(950), 20))
    result = CliRunner().invoke(
        app,
        [
            "chat",
            str(query),
            "--refs",
            str(tmp_path / "good"),
            "--defect-examples",
            str(tmp_path / "types"),
            "--ask",
            "Which defect is it?",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("{") :])
    assert record["findings"]["defect_type"]["name"] == "scratch"
    assert record["turns"][0]["answer"].startswith("It most likely is a scratch")
