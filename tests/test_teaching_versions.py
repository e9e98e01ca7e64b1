"""Every teaching step is a new model version beside its parent, never over it, with its lineage in its file;
an earlier version comes back as the next one; corrections are appended to a log that is never rewritten; and
what teaching keeps in a model file is checked as the rest of it is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from anomalens import Inspector
from anomalens.model_file import ModelFileError
from anomalens.result import file_version
from anomalens.teaching import Correction, TeachingError, log_path, read_corrections, restore, save_version, teach
from anomalens.teaching import versions as versions_of
from conftest import plant_defect, save_png, texture, written_before


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("versions")
    model = Inspector(image_size=64, synthetic_images=16).fit([texture(i, 64) for i in range(3)])
    return model.save(folder / "line.safetensors")


def test_each_step_is_a_new_version_with_its_lineage_and_an_earlier_one_comes_back(fitted):
    original = file_version(fitted)
    first = teach(Inspector.load(fitted), [Correction(texture(50, 64), "normal", inspection="insp-7", id="c-1")])
    v2 = save_version(first, fitted)
    assert v2 == fitted.with_name("line.v2.safetensors") and file_version(fitted) == original
    second = teach(Inspector.load(v2), [Correction(plant_defect(texture(60, 64), 0, 6)[0], "defective", type="blob")])
    v3 = save_version(second, v2)
    lineage = Inspector.load(v3).lineage
    assert [(s.version, s.parent) for s in lineage] == [(2, 1), (3, 2)]
    assert lineage[0].parent_sha256 == original and lineage[1].parent_sha256 == file_version(v2)
    assert (lineage[0].taught[0].inspection, lineage[0].taught[0].correction) == ("insp-7", "c-1")
    assert lineage[1].taught[0].type == "blob" and lineage[1].taught[0].correction  # given an id
    log = log_path(v3).read_text()
    assert [json.loads(line)["version"] for line in log.splitlines()] == [2, 3]

    back = restore(v3, 1)
    assert back == fitted.with_name("line.v4.safetensors") and sorted(versions_of(fitted)) == [1, 2, 3, 4]
    restored = Inspector.load(back)
    assert restored.lineage[-1].restored == 1 and [s.version for s in restored.lineage] == [2, 3, 4]
    image = texture(70, 64)
    assert restored.predict(image)[0].score == pytest.approx(Inspector.load(fitted).predict(image)[0].score)
    assert log_path(back).read_text() == log  # restoring teaches nothing: the log is as it was


def test_a_version_is_never_written_over_a_file(fitted, tmp_path):
    taught = teach(Inspector.load(fitted), [Correction(texture(80, 64), "normal")], refresh=False)
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"the user's")
    with pytest.raises(FileExistsError):
        save_version(taught, fitted, taken, log=False)
    assert taken.read_bytes() == b"the user's"
    with pytest.raises(TeachingError, match="no version 9 beside it"):
        restore(fitted, 9)


def test_the_log_is_only_appended_to(tmp_path):
    from anomalens.teaching import CorrectionLog

    log = CorrectionLog(tmp_path / "m.corrections.jsonl")
    log.append([Correction("a.png", "normal", id="1")], 2, "t")
    before = log.path.read_bytes()
    log.append([Correction("b.png", "defective", type="crack", box=(1, 2, 3, 4), id="2")], 3, "t")
    assert log.path.read_bytes().startswith(before)
    assert [c.image for c in read_corrections(log.path)] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert read_corrections(log.path)[1].box == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("correction", "message"),
    [
        (dict(image="a.png", verdict="maybe"), "a.png: verdict must be normal or defective"),
        (dict(image="a.png", verdict="normal", type="crack"), "a.png: a normal image has no defect type"),
        (dict(image="a.png", verdict="defective", box=(5, 5, 2, 9)), "a.png: a box is x0, y0, x1, y1"),
        (dict(image="a.png", verdict="defective", box=(0, 0, 2, 2), mask="m.png"), "a.png: give a box or a mask"),
    ],
)
def test_a_correction_that_cannot_be_taught_is_refused_by_its_image(correction, message):
    with pytest.raises(TeachingError, match=message):
        Correction(**correction)


def test_a_corrections_file_names_its_bad_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"image": "a.png", "verdict": "normal"}\n{"image": "b.png", "box": [1, 2]}\n')
    with pytest.raises(TeachingError, match=r"c.jsonl line 2: box must be four whole numbers"):
        read_corrections(path)


def test_a_mask_of_another_size_is_refused_by_name(fitted, tmp_path):
    image = save_png(tmp_path / "d.png", plant_defect(texture(90, 64), 0, 6)[0])
    mask = save_png(tmp_path / "d_mask.png", np.ones((32, 32), bool))
    with pytest.raises(TeachingError, match=r"d_mask.png: mask is 32x32 but its image is 64x64.*the mask of d.png"):
        teach(Inspector.load(fitted), [Correction(image, "defective", mask=mask)])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h["lineage"][0].update(version=1), "field lineage.0.version: v1 from v1 cannot follow v1"),
        (lambda h: h["lineage"][0].update(taught=[{"image": "a"}]), "field lineage.0.taught.0.verdict: missing"),
        (lambda h: h["evidence"].update(method="guessed"), "field evidence.method: input should be"),
        (lambda h: h.update(defect_types={"names": []}), "field defect_types.names: list should have at least 1"),
        (lambda h: h.update(defect_memory={"names": []}), "field defect_memory.names: list should have at least 1"),
        (
            lambda h: h.update(defect_memory={"names": ["a.png"]}),
            "field tensors.defect_memory.stage0: must hold a row of numbers per name",
        ),
    ],
)
def test_what_teaching_keeps_in_a_model_file_is_checked_by_name(fitted, tmp_path, edit, message):
    taught = save_version(
        teach(Inspector.load(fitted), [Correction(texture(81, 64), "normal")], refresh=False),
        fitted,
        tmp_path / "t.safetensors",
        log=False,
    )
    with safe_open(taught, framework="pt") as handle:
        header = json.loads(handle.metadata()["anomalens"])
    edit(header)
    broken = tmp_path / "broken.safetensors"
    save_file(load_file(taught), broken, metadata={"anomalens": json.dumps(header)})
    with pytest.raises(ModelFileError, match=message):
        Inspector.load(broken)


def test_a_model_saved_before_teaching_kept_its_evidence_says_to_fit_it_again(fitted, tmp_path):
    older = written_before(fitted, "evidence", tmp_path / "older.safetensors")
    with pytest.raises(TeachingError, match="keeps no evidence of its decision.*fit it again"):
        teach(Inspector.load(older), [Correction(texture(82, 64), "normal")])
