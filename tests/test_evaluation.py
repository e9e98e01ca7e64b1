import shutil

import pytest

from anomalens.evaluation import evaluate_category


def test_evaluate_category_on_generated_textures(texture_dataset):
    report = evaluate_category(texture_dataset, "textile", options={"image_size": 128})
    assert report["n_train"] == 8 and report["n_test"] == 8 and report["expert"] == "memory_bank"
    assert report["image_auroc"] == 1.0
    assert report["pixel_auroc"] > 0.97 and report["aupro"] > 0.8
    assert report["verdict_accuracy"] >= 0.875
    assert report["detect_images_per_second"] > 0 and report["peak_memory_mb"] > 0


def test_calibration_never_sees_test_labels(texture_dataset, tmp_path):
    """Swap which test images are called good and defective: the calibration must not change."""
    swapped = tmp_path / "swapped"
    shutil.copytree(texture_dataset, swapped)
    test = swapped / "textile" / "test"
    (test / "good").rename(test / "tmp")
    (test / "blot").rename(test / "good")
    (test / "tmp").rename(test / "blot")
    shutil.rmtree(swapped / "textile" / "ground_truth")
    a = evaluate_category(texture_dataset, "textile", shots=3, options={"image_size": 128})
    b = evaluate_category(swapped, "textile", shots=3, options={"image_size": 128})
    assert a["calibration"] == b["calibration"]
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
