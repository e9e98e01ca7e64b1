import shutil
from functools import partial

import pytest

from anomalens.calibration import DecisionRule, calibrate
from anomalens.evaluation import evaluate_category


def test_evaluate_category_on_generated_textures(texture_dataset):
    report = evaluate_category(texture_dataset, "textile", options={"image_size": 128})
    assert report["n_train"] == 8 and report["n_test"] == 8 and report["expert"] == "memory_bank"
    assert report["image_auroc"] == 1.0
    assert report["pixel_auroc"] > 0.97 and report["aupro"] > 0.8
    assert report["verdict_accuracy"] >= 0.875
    assert report["detect_images_per_second"] > 0 and report["peak_memory_mb"] > 0


def test_calibration_never_sees_test_labels(texture_dataset, tmp_path, monkeypatch):
    """Swap which test images are called good and defective: the calibration must not change (synthetic
    anomalies' too: at a low quantile of theirs they place the line on these textures)."""
    monkeypatch.setattr("anomalens.inspector.calibrate", partial(calibrate, rule=DecisionRule(anomaly_quantile=0.1)))
    swapped = tmp_path / "swapped"
    shutil.copytree(texture_dataset, swapped)
    test = swapped / "textile" / "test"
    (test / "good").rename(test / "tmp")
    (test / "blot").rename(test / "good")
    (test / "tmp").rename(test / "blot")
    shutil.rmtree(swapped / "textile" / "ground_truth")
    a = evaluate_category(texture_dataset, "textile", shots=3, options={"image_size": 128})
    b = evaluate_category(swapped, "textile", shots=3, options={"image_size": 128})
    assert a["calibration"] == b["calibration"] and a["calibration"]["rule"] == "synthetic-anomalies"
    assert b["image_auroc"] == pytest.approx(1 - a["image_auroc"])


def test_a_mask_of_the_wrong_size_is_reported_and_the_rest_evaluated(texture_dataset, tmp_path):
    import numpy as np

    from conftest import save_png

    broken = tmp_path / "broken"
    shutil.copytree(texture_dataset, broken)
    save_png(broken / "textile" / "ground_truth" / "blot" / "001_mask.png", np.ones((50, 70), bool))
    report = evaluate_category(broken, "textile", shots=3, options={"image_size": 128})
    assert report["n_test"] == 7
    assert len(report["skipped"]) == 1
    assert "001_mask.png" in report["skipped"][0] and "70x50" in report["skipped"][0]


def test_evaluate_zero_shot_reports_the_batchs_own_calibration(texture_dataset):
    """Route B's decision is calibrated on the batch it scores; the report carries that calibration."""
    report = evaluate_category(texture_dataset, "textile", options={"image_size": 128}, zero_shot="mutual")
    assert report["expert"] == "mutual" and report["n_train"] == 0
    assert report["calibration"]["method"] == "batch-mixture" and report["image_auroc"] > 0.9


@pytest.mark.parametrize("remove", ["good", "blot"])
def test_eval_holds_on_a_test_set_of_one_class(texture_dataset, tmp_path, remove):
    """No good test images (or no defective ones): image AUROC is n/a, the rest still counts."""
    root = tmp_path / "one_class"
    shutil.copytree(texture_dataset, root)
    shutil.rmtree(root / "textile" / "test" / remove)
    if remove == "blot":
        shutil.rmtree(root / "textile" / "ground_truth")
    report = evaluate_category(root, "textile", shots=4, options={"image_size": 128})
    assert report["n_test"] == 4 and report["image_auroc"] is None and report["verdict_balanced_accuracy"] is None
    if remove == "good":  # defects only: pixel metrics, recall and the probabilities' calibration
        assert (
            report["pixel_auroc"] > 0.9
            and report["verdict_recall"] == 1.0
            and report["verdict_false_alarm_rate"] is None
        )
    else:
        assert "pixel_auroc" not in report and report["verdict_recall"] is None
        assert report["verdict_false_alarm_rate"] is not None
    assert 0 <= report["probability_ece"] <= 1 and 0 <= report["probability_brier"] <= 1
