"""One boxed defect finds the next like it (issue 32, "draw a box on a missed defect, the next similar defect is
found"): teaching a defect with a box keeps its patches as known-defect patches (`defect_memory`); an image with
patches like them is flagged, outlined there and told why; an image with none scores exactly as it would without
the defect memory; the model file keeps it, and one saved before it was kept still loads."""

from __future__ import annotations

import numpy as np
import pytest

from anomalens import Inspector
from anomalens.defect_memory import PER_DEFECT, DefectMemory
from anomalens.teaching import Correction, teach
from conftest import save_png, texture, written_before

SIZE = 128
PARTS = (301, 303, 304, 305)  # parts the fitted model calls normal


def streak(image: np.ndarray, seed: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A short, faint bright streak (one the model misses) and the box around it."""
    x0, y0 = np.random.default_rng(2000 + seed).integers(20, 60, size=2)
    out = image.copy()
    for t in range(10):
        out[y0 + t, x0 + t : x0 + t + 2] = 0.75 * out[y0 + t, x0 + t : x0 + t + 2] + 0.25 * np.array([0.98, 0.98, 0.9])
    return out, (int(x0), int(y0), int(x0) + 12, int(y0) + 10)


@pytest.fixture(scope="module")
def fitted() -> Inspector:
    return Inspector(image_size=SIZE, synthetic_images=16).fit([texture(i) for i in range(8)])


@pytest.fixture(scope="module")
def taught(fitted, tmp_path_factory) -> Inspector:
    missed, box = streak(texture(PARTS[0]), 0)
    image = save_png(tmp_path_factory.mktemp("missed") / "missed.png", missed)
    return teach(fitted, [Correction(str(image), "defective", box=box)]).inspector


def without_memory(model: Inspector) -> Inspector:
    bare = Inspector(image_size=SIZE)
    bare.__dict__ |= model.__dict__ | {"defect_memory": None}
    return bare


def test_a_boxed_defect_finds_the_next_like_it_and_outlines_it(fitted, taught):
    like, (x0, y0, x1, y1) = streak(texture(PARTS[1]), 1)
    assert not fitted.predict(like)[0].anomalous  # missed before
    assert not without_memory(taught).predict(like)[0].anomalous  # one labelled defect alone moves no decision
    assert len(taught.defect_memory.names) <= PER_DEFECT
    [result] = taught.predict(like)
    assert result.anomalous and result.known_defect == "like the defect marked on missed.png"
    assert any(r.box[0] <= x1 and x0 <= r.box[2] and r.box[1] <= y1 and y0 <= r.box[3] for r in result.regions)


def test_an_image_with_no_match_scores_exactly_as_without_the_defect_memory(taught):
    normal = [texture(400 + i) for i in (0, 1, 4, 5)]
    results, bare = taught.predict(normal), without_memory(taught).predict(normal)
    assert [r.known_defect for r in results] == [""] * len(normal)
    assert [r.score for r in results] == [r.score for r in bare]
    assert [r.anomalous for r in results] == [r.anomalous for r in bare]
    assert all(np.array_equal(r.anomaly_map, b.anomaly_map) for r, b in zip(results, bare))


def test_the_model_file_keeps_the_defect_memory(taught, tmp_path):
    loaded = Inspector.load(taught.save(tmp_path / "taught.safetensors"))
    assert loaded.defect_memory.names == taught.defect_memory.names
    assert all(np.array_equal(a, b) for a, b in zip(loaded.defect_memory.rows, taught.defect_memory.rows))
    like, _ = streak(texture(PARTS[3]), 3)
    [before], [after] = taught.predict(like), loaded.predict(like)
    assert (after.score, after.anomalous, after.known_defect) == (before.score, before.anomalous, before.known_defect)


def test_a_model_file_saved_before_the_defect_memory_still_loads(taught, tmp_path):
    saved = taught.save(tmp_path / "taught.safetensors")
    loaded = Inspector.load(written_before(saved, "defect_memory", tmp_path / "older.safetensors"))
    assert loaded.defect_memory is None
    like, _ = streak(texture(PARTS[1]), 1)
    assert loaded.predict(like)[0].score == without_memory(taught).predict(like)[0].score


@pytest.mark.parametrize("expert", ["memory_bank", "patchcore"])
def test_every_memory_expert_finds_the_taught_defect_again(expert, tmp_path):
    model = Inspector(image_size=SIZE, synthetic_images=16, expert=expert).fit([texture(i) for i in range(8)])
    missed, box = streak(texture(PARTS[0]), 0)
    taught = teach(model, [Correction(str(save_png(tmp_path / "m.png", missed)), "defective", box=box)]).inspector
    [again] = taught.predict(missed)
    assert again.anomalous and again.known_defect == "like the defect marked on m.png"


def test_a_memory_expert_holding_a_defect_memory_flags_as_a_fused_one(fitted, taught):
    """Teaching makes a memory model fused; a memory expert given a defect memory (the protocol allows it)
    scores, and flags, all the same."""
    plain = without_memory(fitted)
    plain.defect_memory = DefectMemory(taught.defect_memory.names, taught.defect_memory.rows)
    missed, _ = streak(texture(PARTS[0]), 0)
    [again] = plain.predict(missed)
    assert again.anomalous and again.known_defect == "like the defect marked on missed.png"


def test_a_model_with_a_defect_memory_is_not_exported_without_it(taught, tmp_path):
    """An exported graph cannot carry the defect memory: export refuses in words rather than drop it."""
    pytest.importorskip("onnx")
    from anomalens.export import export_onnx

    with pytest.raises(NotImplementedError, match="missed.png"):
        export_onnx(taught, tmp_path / "taught.onnx")
    assert not (tmp_path / "taught.onnx").exists()
