"""The Python API: fit/predict on paths and arrays, and bad inputs that never stop a batch."""

import json
from functools import partial

import numpy as np
import pytest

from anomalens import Inspector
from anomalens.calibration import DecisionRule, calibrate
from anomalens.model_file import ModelFileError, read_header
from conftest import plant_defect, save_png, texture


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return Inspector(image_size=128).fit([texture(i) for i in range(4)])


def _bad_files(folder):
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    good = save_png(folder / "fine.png", texture(50))
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = folder / "notes.png"
    text.write_text("not an image")
    return {"empty": empty, "truncated": truncated, "text": text, "missing": folder / "missing.png"}


def test_bad_images_are_reported_and_the_batch_goes_on(fitted, tmp_path):
    bad = _bad_files(tmp_path)
    defect = save_png(tmp_path / "defect.png", plant_defect(texture(60), 0)[0])
    good = save_png(tmp_path / "good.png", texture(61))
    inputs = [bad["empty"], defect, bad["truncated"], bad["text"], good, bad["missing"]]
    results = fitted.predict(inputs)
    assert [r.source for r in results] == [str(p) for p in inputs]
    assert [r.ok for r in results] == [False, True, False, False, True, False]
    assert "empty.png" in results[0].error and "empty" in results[0].error
    assert "truncated.png" in results[2].error and "truncat" in results[2].error
    assert "notes.png" in results[3].error and "not a readable image" in results[3].error
    assert "missing.png" in results[5].error and "not found" in results[5].error
    assert results[1].anomalous and results[1].score > results[4].score


def test_fit_skips_unreadable_images_and_names_them(tmp_path):
    bad = _bad_files(tmp_path)
    paths = [save_png(tmp_path / f"n{i}.png", texture(i)) for i in range(3)] + [bad["empty"], bad["text"]]
    inspector = Inspector(image_size=128).fit(paths)
    assert inspector.calibration.n_normal == 3
    assert len(inspector.skipped) == 2 and any("empty.png" in s for s in inspector.skipped)
    with pytest.raises(ValueError, match="no readable normal image"):
        Inspector(image_size=128).fit([bad["empty"]])


def test_arrays_generators_and_result_json(fitted):
    image = (plant_defect(texture(70), 1)[0] * 255).astype(np.uint8)  # uint8 arrays are accepted too
    results = list(fitted.iter_predict(x for x in [image, texture(71), np.zeros((4, 4))]))
    assert results[0].ok and results[0].source == "array[0]" and results[0].anomalous
    assert results[0].anomaly_map.shape == image.shape[:2] and results[0].image_size == (128, 128)
    assert not results[2].ok and "H×W×3" in results[2].error
    record = json.loads(json.dumps(results[0].to_dict()))
    assert record["location"] == results[0].location and record["regions"][0]["location"]
    assert 0.5 <= record["confidence"] <= 1.0


def test_unfitted_inspector_says_what_to_do():
    with pytest.raises(RuntimeError, match="not fitted"):
        Inspector(image_size=128).predict([texture(0)])


def test_save_load_gives_identical_scores(fitted, tmp_path):
    images = [plant_defect(texture(80), 2)[0], texture(81), texture(82)]
    before = fitted.predict(images)
    path = fitted.save(tmp_path / "model.safetensors")
    loaded = Inspector.load(path)
    after = loaded.predict(images)
    assert [r.score for r in before] == [r.score for r in after]
    assert all(np.array_equal(a.anomaly_map, b.anomaly_map) for a, b in zip(before, after))
    assert loaded.calibration == fitted.calibration
    header = read_header(path)
    assert header["config"]["backbone"] == "efficientnet_lite0" and header["format_version"] == 1
    assert header["calibration"]["image_threshold"] == fitted.calibration.image_threshold
    with pytest.raises(FileExistsError):
        fitted.save(path)  # a user's file is never silently replaced


def test_model_file_errors(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="junk.safetensors"):
        Inspector.load(junk)
    with pytest.raises(ModelFileError, match="not found"):
        Inspector.load(tmp_path / "none.safetensors")


def test_predict_takes_a_single_path_or_array(fitted, tmp_path):
    path = save_png(tmp_path / "a.png", texture(90))
    for one in (str(path), path, texture(90)):
        results = fitted.predict(one)  # a string is one path, never its characters
        assert len(results) == 1 and results[0].ok
    assert fitted.predict(str(path))[0].source == str(path)


def test_results_name_the_nearest_normal_reference(tmp_path):
    from safetensors.torch import load_file, save_file

    paths = [save_png(tmp_path / f"ref_{i}.png", texture(i)) for i in range(3)]
    inspector = Inspector(image_size=128).fit(paths)
    names = [p.name for p in paths]
    assert [r.nearest_reference for r in inspector.predict(paths)] == names  # each is its own nearest
    assert inspector.predict(texture(60))[0].nearest_reference in names
    path = inspector.save(tmp_path / "model.safetensors")
    assert [r.nearest_reference for r in Inspector.load(path).predict(paths)] == names
    # a file written before references were kept loads without them; one with half of them is refused
    header = read_header(path)
    tensors = load_file(path)
    tensors.pop("references.descriptors")
    header["tensors"].pop("references.descriptors")
    old = tmp_path / "old.safetensors"
    save_file(tensors, old, metadata={"anomalens": json.dumps(header | {"references": None})})
    assert Inspector.load(old).predict(paths[0])[0].nearest_reference == ""
    save_file(tensors, old, metadata={"anomalens": json.dumps(header)})
    with pytest.raises(ModelFileError, match="references"):
        Inspector.load(old)


def test_the_decision_is_fitted_with_synthetic_anomalies_and_saved(tmp_path, monkeypatch):
    """A fitted inspector's threshold comes from synthetic anomalies (at a low quantile of theirs, so that on
    these textures it lies below the t-bound); the model file keeps the rule; a file written before the rule
    was kept is decided by the old rule (its stored threshold); an unknown rule is refused rather than decided
    wrongly."""
    from safetensors.torch import load_file, save_file

    monkeypatch.setattr("anomalens.inspector.calibrate", partial(calibrate, rule=DecisionRule(anomaly_quantile=0.1)))

    paths = [save_png(tmp_path / f"ref_{i}.png", texture(i)) for i in range(3)]
    inspector = Inspector(image_size=128).fit(paths)
    assert inspector.calibration.rule == "synthetic-anomalies" and inspector.calibration.n_synthetic == 24
    path = inspector.save(tmp_path / "model.safetensors")
    assert Inspector.load(path).calibration == inspector.calibration
    header, tensors = read_header(path), load_file(path)
    old = tmp_path / "old.safetensors"
    for field in ("rule", "n_synthetic"):
        header["calibration"].pop(field)
    save_file(tensors, old, metadata={"anomalens": json.dumps(header)})
    loaded = Inspector.load(old).calibration
    assert loaded.rule == "t-bound" and loaded.image_threshold == inspector.calibration.image_threshold
    header["calibration"] |= {"rule": "synthetic-quartile", "n_synthetic": 24}  # the rule's name before
    save_file(tensors, old, metadata={"anomalens": json.dumps(header)})
    assert Inspector.load(old).calibration.image_threshold == inspector.calibration.image_threshold
    header["calibration"]["rule"] = "from-the-future"
    save_file(tensors, old, metadata={"anomalens": json.dumps(header)})
    with pytest.raises(ModelFileError, match="unknown decision rule"):
        Inspector.load(old)
    stated = Inspector(image_size=128, max_false_alarms=0.01).fit(paths).calibration
    assert stated.rule == "false-alarms"
    assert stated.image_scale == pytest.approx(inspector.calibration.image_scale, rel=1e-5)  # threads: float sums


def test_each_image_is_decided_alone_by_default_and_as_a_batch_on_request(fitted):
    images = [texture(80 + i) for i in range(8)] + [plant_defect(texture(90 + i), i)[0] for i in range(8)]
    alone = fitted.predict(images)
    streamed = list(fitted.iter_predict(images))  # one at a time: the same per-image path
    together = fitted.predict(images + [np.zeros((4, 4))], batch_evidence=True)  # an unreadable image stays put
    assert [r.score for r in alone] == [r.score for r in streamed] == [r.score for r in together[:-1]]
    assert [(r.anomalous, r.probability) for r in alone] == [(r.anomalous, r.probability) for r in streamed]
    assert all(r.calibration is fitted.calibration and r.decision.mode == "per-image" for r in alone)
    assert not together[-1].ok and together[-1].error and together[-1].decision is None
    (refined,) = {id(r.calibration): r.calibration for r in together[:-1]}.values()  # one for the whole batch
    assert refined.image_threshold <= fitted.calibration.image_threshold  # a batch never raises it
    assert refined.rule in (fitted.calibration.rule, "batch-mixture")
    assert all(r.decision.mode == "batch-evidence" and r.decision.rule == refined.rule for r in together[:-1])
    assert [r.anomalous for r in together[:-1]] == [refined.decide(r.score) for r in together[:-1]]
    assert sum(r.anomalous for r in together[8:-1]) >= sum(r.anomalous for r in alone[8:])


def test_the_same_image_gets_the_same_verdict_and_probability_in_any_batch(fitted):
    """A part's verdict depends on the part and the model only: one good and one defective image alone, in
    batches of 8 and of 64 mixed images (a third of them defective)."""
    good, bad = texture(200), plant_defect(texture(201), 3)[0]
    others = [plant_defect(texture(300 + i), i)[0] if i % 3 == 0 else texture(300 + i) for i in range(62)]
    for image in (good, bad):
        decisions = set()
        for batch, at in (
            ([image], 0),
            ([*others[:3], image, *others[3:7]], 3),
            ([*others[:31], image, *others[31:]], 31),
        ):
            result = fitted.predict(batch)[at]
            decisions.add((result.anomalous, result.probability, result.confidence, str(result.decision)))
        assert len(decisions) == 1, decisions


def test_results_say_how_they_were_decided(fitted):
    (result,) = fitted.predict([plant_defect(texture(95), 5)[0]])
    decision, calibration = result.to_dict()["decision"], fitted.calibration
    normal = {"normal_median", "normal_spread", "normal_dof"}  # where the normal scores lie, for the page's plot
    assert set(decision) == {"mode", "rule", "threshold", "score", "margin", "n_normal", "uncertain"} | normal
    assert decision["mode"] == "per-image" and decision["n_normal"] == calibration.n_normal == 4
    assert decision["threshold"] == calibration.image_threshold and decision["score"] == result.score
    assert decision["margin"] == pytest.approx((result.score - calibration.image_threshold) / calibration.image_scale)
    assert decision["uncertain"] == (0.2 <= result.probability <= 0.8)
    assert decision["normal_median"] == calibration.normal_median and decision["normal_dof"] == 3
    assert decision["normal_spread"] == pytest.approx(calibration.image_scale * (1 + 1 / 4) ** 0.5)
    json.dumps(result.to_dict())  # plain JSON


def test_a_batch_too_large_to_hold_is_decided_in_parts(fitted, monkeypatch):
    import anomalens.result

    images = [texture(80 + i) for i in range(6)] + [plant_defect(texture(90 + i), i)[0] for i in range(6)]
    whole = fitted.predict(images, batch_evidence=True)
    monkeypatch.setattr(anomalens.result, "BATCH_BYTES", 1)  # every image a part of its own: none refined
    parts = fitted.predict(images, batch_evidence=True)
    assert [r.source for r in parts] == [r.source for r in whole] and [r.score for r in parts] == [
        r.score for r in whole
    ]
    assert all(r.calibration is fitted.calibration for r in parts)


def test_progress_counts_images_as_they_are_scored_before_a_batchs_results(fitted):
    counted: list[int] = []
    results = fitted.iter_predict(
        [texture(100 + i) for i in range(4)], batch_evidence=True, scored=lambda: counted.append(1)
    )
    first = next(results)  # a batch's first result comes once all are scored: all four counted by then
    assert first.ok and len(counted) == 4 and len([first, *results]) == 4
