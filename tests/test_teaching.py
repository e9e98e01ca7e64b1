"""Teaching a fitted model (issue 32): normal images join its memory in place as a refit would build it, labelled
defects move its decision and train its maps, typed ones teach it their names, one wrong correction cannot
make later defects pass, and every step is a new version with its lineage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalens import Inspector
from anomalens.calibration import LABELLED_QUANTILE
from anomalens.defect_memory import MIN_REFERENCES
from anomalens.experts import ExpertInput, NormalImages, PatchCoreExpert
from anomalens.features import flatten_patches, patch_features
from anomalens.teaching import Correction, save_version, teach
from anomalens.teaching.steps import HEAD_NORMAL
from conftest import plant_defect, texture
from test_defect_types import scratch

SIZE = 128


def turned(seed: int) -> np.ndarray:
    """A texture turned a quarter: normal for a part that may lie either way, new to references that all lie one."""
    return np.ascontiguousarray(np.rot90(texture(seed)))


def stain(image: np.ndarray, seed: int) -> np.ndarray:
    """A bright, warm round stain: a third kind of defect beside dark blobs and scratches."""
    rng = np.random.default_rng(3000 + seed)
    cx, cy = rng.integers(30, SIZE - 30, size=2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = image.copy()
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= 100
    out[inside] = np.clip(out[inside] + [0.3, 0.25, 0.1], 0, 1)
    return out


def features(backbone, images: list[np.ndarray]) -> list[torch.Tensor]:
    return patch_features(backbone, torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))


def recall(model: Inspector, images: list[np.ndarray]) -> float:
    return float(np.mean([r.anomalous for r in model.predict(images)]))


def mean_score(model: Inspector, images: list[np.ndarray]) -> float:
    return float(np.mean([r.score for r in model.predict(images)]))


def assert_head_outlines(model: Inspector, blobs: list) -> None:
    """The model's head, on (image, mask, _) defects it was not taught, is sure inside the masks, not outside."""
    head_maps = model.expert.decoder.score(ExpertInput(features=features(model.backbone, [b[0] for b in blobs])))[0]
    masks = torch.nn.functional.adaptive_max_pool2d(
        torch.from_numpy(np.stack([b[1] for b in blobs])).float()[:, None], head_maps.shape[-2:]
    )[:, 0].bool()
    assert float(head_maps[masks].mean()) > 0.5 > float(head_maps[~masks].mean())


@pytest.fixture(scope="module")
def few_shot() -> Inspector:
    return Inspector(image_size=SIZE, synthetic_images=16).fit([texture(i) for i in range(3)])


def test_normal_images_taught_in_place_score_as_a_refit_on_them(few_shot):
    more = [texture(50), texture(51)]
    banks_before = [b.clone() for b in few_shot.expert.banks]
    taught = teach(few_shot, [Correction(image, "normal") for image in more], refresh=False).inspector
    refit = Inspector(image_size=SIZE).fit([texture(i) for i in range(3)] + more)
    for mine, theirs in zip(taught.expert.banks, refit.expert.banks):  # the bank a refit builds, row for row
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)  # (the backbone rounds by batch size)
    assert torch.equal(taught.expert.image_ids, refit.expert.image_ids)
    images = [texture(400 + i) for i in range(3)] + [plant_defect(texture(300 + i), i)[0] for i in range(3)]
    for mine, theirs in zip(taught.predict(images), refit.predict(images)):
        assert mine.score == pytest.approx(theirs.score, rel=1e-5)
        np.testing.assert_allclose(mine.anomaly_map, theirs.anomaly_map, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(few_shot.expert.banks, banks_before))  # the model given: unchanged
    assert taught.calibration.n_normal == 5 and len(taught.references.names) == 5


def test_a_coreset_extended_in_place_scores_as_a_refit_within_its_coverage():
    backbone = Inspector(image_size=SIZE).backbone
    first, more, queries = (
        features(backbone, [texture(s) for s in seeds]) for seeds in ([0, 1, 2, 3], [50, 51], [400, 401])
    )
    in_place = PatchCoreExpert(coreset_ratio=0.25).fit_bank(first)
    in_place.add_normal(NormalImages(more))
    refit = PatchCoreExpert(coreset_ratio=0.25).fit_bank([torch.cat(pair) for pair in zip(first, more)])
    assert len(in_place.bank) == len(refit.bank)  # each image's share of the coreset ratio
    everything = flatten_patches(torch.cat([torch.cat(pair) for pair in zip(first, more)], dim=1))
    coverage = max(float(torch.cdist(everything, bank).amin(1).max()) for bank in (in_place.bank, refit.bank))
    mine, theirs = in_place.score(ExpertInput(features=queries))[0], refit.score(ExpertInput(features=queries))[0]
    assert float((mine - theirs).abs().max()) <= coverage  # each is within its coverage of the full bank's
    assert float((mine - theirs).abs().mean()) < 0.1 * float(theirs.mean())


def test_a_false_alarm_taught_normal_passes_and_defects_are_still_found(few_shot):
    before = few_shot.predict([turned(100), turned(102)])
    assert all(r.anomalous for r in before)  # a turned part is new to references that all lie one way
    taught = teach(few_shot, [Correction(turned(100), "normal"), Correction(turned(101), "normal")])
    assert all("departs from normal all over, and is taken whole" in flag for flag in taught.flags)
    after = taught.inspector.predict([turned(100), turned(102), plant_defect(turned(300), 0)[0], texture(500)])
    assert not after[0].anomalous and after[1].score < 0.5 * before[1].score
    assert after[2].anomalous  # a defect on a turned part is still one
    assert taught.inspector.calibration.n_normal == 5


def test_one_mislabelled_defect_taught_normal_does_not_lose_the_others(few_shot):
    defects = [plant_defect(texture(300 + i), i)[0] for i in range(7)]
    defects += [scratch(texture(500 + i), i) for i in range(7)] + [stain(texture(600 + i), i) for i in range(7)]
    wrong = teach(few_shot, [Correction(defects[0], "normal")])
    [flag] = wrong.flags
    assert "held back from its memory" in flag
    assert recall(wrong.inspector, defects[1:]) >= recall(few_shot, defects[1:]) - 0.05
    confirmed = teach(few_shot, [Correction(defects[0], "normal", confirmed=True)])  # the person insists
    blobs = defects[1:7]  # like the one taught: a memory that takes it whole finds them normal-looking
    assert not confirmed.flags and mean_score(confirmed.inspector, blobs) < 0.6 * mean_score(wrong.inspector, blobs)


def test_missed_defects_labelled_without_a_mask_bring_the_decision_down_to_them(few_shot):
    defects = [plant_defect(texture(700 + i), i, radius=3)[0] for i in range(30)]  # small: some pass unseen
    scored = few_shot.predict(defects)
    missed = [image for image, r in zip(defects, scored) if not r.anomalous]
    caught = [image for image, r in zip(defects, scored) if r.anomalous]
    labelled, held_out = missed[:6] + caught[:4], missed[6:] + caught[4:]
    assert len(missed) >= 8 and len(held_out) >= 10
    taught = teach(few_shot, [Correction(image, "defective") for image in labelled]).inspector
    assert taught.expert.name == "fused" and taught.config.expert == "fused"  # the memory, and a head beside it
    cal, evidence = taught.calibration, taught.evidence
    assert cal.rule == "labelled-defects"  # the labelled defects, not synthetic ones
    assert cal.image_threshold == pytest.approx(np.quantile(evidence.defect_scores, LABELLED_QUANTILE))
    assert recall(taught, held_out) > recall(few_shot, held_out)
    assert all(image.where == "image" for image in taught.lineage[-1].taught)


def test_defects_labelled_with_masks_teach_the_head_where_they_are(few_shot):
    blobs = [plant_defect(stain(texture(740 + i), i), i) for i in range(10)]
    taught = teach(few_shot, [Correction(image, "defective", mask=mask) for image, mask, _ in blobs[:8]]).inspector
    assert_head_outlines(taught, blobs[8:])
    assert [image.where for image in taught.lineage[-1].taught] == ["mask"] * 8


def test_typed_defects_teach_the_model_their_names(few_shot):
    blobs = [plant_defect(texture(820 + i), 10 + i) for i in range(4)]
    lines = [scratch(texture(920 + i), 10 + i) for i in range(4)]
    corrections = [Correction(image, "defective", type="blob", mask=mask) for image, mask, _ in blobs[:3]]
    corrections += [Correction(image, "defective", type="scratch", box=(10, 10, 120, 120)) for image in lines[:3]]
    taught = teach(few_shot, corrections).inspector
    head = taught.defect_types
    assert head is not None and head.names == ["blob", "scratch"]
    guesses = [head.classify(r.descriptor).name for r in taught.predict([blobs[3][0], lines[3]])]
    assert guesses == ["blob", "scratch"]
    assert [t.where for t in taught.lineage[-1].taught] == ["mask"] * 3 + ["box"] * 3


def test_defects_taught_to_a_one_reference_model_count_before_the_head_can_learn():
    """A model fitted on one reference has no second normal image for the head to learn beside: the defects
    still join the decision's evidence, the types and the defect memory, and the person is told what waits."""
    one = Inspector(image_size=SIZE, synthetic_images=16).fit([texture(0)])
    blobs = [plant_defect(texture(860 + i), 20 + i) for i in range(3)]
    lessons = teach(one, [Correction(image, "defective", type="blob", mask=mask) for image, mask, _ in blobs])
    assert any("two normal images" in flag for flag in lessons.flags)
    taught = lessons.inspector
    assert taught.expert.name == one.expert.name  # no head trained
    assert taught.defect_memory is not None and taught.evidence.defect_scores is not None
    assert any(f"once the model has {MIN_REFERENCES} normal images" in flag for flag in lessons.flags)  # waits too
    assert not any(r.known_defect for r in taught.predict([texture(870), blobs[1][0]]))
    again = teach(taught, [Correction(texture(1), "normal"), Correction(blobs[0][0], "defective", mask=blobs[0][1])])
    assert not any("two normal images" in flag for flag in again.flags)  # a second reference: the head learns
    assert again.inspector.expert.name == "fused"


def test_parts_the_line_passed_let_a_one_reference_model_learn_its_defects_look(tmp_path):
    """Given the parts the line passed, a one-reference model's head learns beside the latest (HEAD_NORMAL normal
    images in all; one that cannot be read is left out) and outlines the next such defect; the memory is only
    the reference still."""
    one = Inspector(image_size=SIZE, synthetic_images=16).fit([texture(0)])
    blobs = [plant_defect(stain(texture(760 + i), i), i) for i in range(10)]
    passed = [texture(800 + i) for i in range(HEAD_NORMAL + 2)] + [tmp_path / "gone.png"]
    lessons = teach(one, [Correction(image, "defective", mask=mask) for image, mask, _ in blobs[:8]], passed=passed)
    assert not any("two normal images" in flag for flag in lessons.flags)
    taught = lessons.inspector
    assert taught.expert.name == "fused" and taught.expert.memory.banks[0].shape == one.expert.banks[0].shape
    assert_head_outlines(taught, blobs[8:])


def test_parts_passed_in_production_are_scored_by_the_taught_model_and_place_its_line(few_shot, tmp_path):
    """False alarms taught as normal are the line's most unusual good parts: the parts it passed and no one
    corrected, scored by the model as taught, are its new normal parts, and place the line (one that cannot be
    read is left out, as one like a taught defect would be); they are kept in the model file and read again at
    the next teaching that is given them, in place of these."""
    false_alarms = [Correction(turned(100 + i), "normal") for i in range(2)]
    passed = [texture(800 + i) for i in range(11)] + [tmp_path / "gone.png"]
    taught = teach(few_shot, false_alarms, passed=passed)
    model, step = taught.inspector, taught.step
    expected = [r.score for r in model.predict(passed[:-1])]
    np.testing.assert_allclose(model.evidence.passed_scores, expected, rtol=1e-6)
    assert step.passed == 11 and "11 passed parts scored" in step.summary()
    assert model.calibration.rule == "passed-parts" and model.calibration.n_passed == 11
    without = teach(few_shot, false_alarms).inspector
    assert without.calibration.rule != "passed-parts" and without.evidence.passed_scores.size == 0
    defects = [plant_defect(texture(300 + i), i)[0] for i in range(6)]
    assert recall(model, defects) >= recall(without, defects)
    saved = save_version(taught, few_shot_file(few_shot, tmp_path))
    loaded = Inspector.load(saved)
    np.testing.assert_array_equal(loaded.evidence.passed_scores, model.evidence.passed_scores)
    assert loaded.calibration == model.calibration
    later = teach(loaded, [Correction(texture(900), "normal")], passed=passed[:9]).inspector
    assert later.evidence.passed_scores.size == 9  # scored again by the model as it now is, in place of the last


def few_shot_file(model: Inspector, folder) -> str:
    path = folder / "line.safetensors"
    model.save(path)
    return str(path)
