"""Zero-shot route B: a batch of unlabeled images scores itself (mutual scoring), with no references."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from anomalens import Inspector
from anomalens.batch_evidence import normal_mode
from anomalens.cli import app
from anomalens.experts.mutual import rescore
from anomalens.pixels import standardise_exposure
from conftest import SIZE, plant_defect, save_png, texture

N_CLEAN, N_DEFECTIVE = 12, 4


@pytest.fixture(scope="module")
def batch():
    """12 clean textures and 4 with a planted defect, mixed; the defect masks and centres."""
    images, masks, centres = [], [], []
    for i in range(N_CLEAN + N_DEFECTIVE):
        image = texture(300 + i)
        mask, centre = np.zeros((SIZE, SIZE), bool), None
        if i % 4 == 3:  # every fourth image is defective
            image, mask, centre = plant_defect(image, i)
        images.append(image)
        masks.append(mask)
        centres.append(centre)
    return images, masks, centres


@pytest.fixture(scope="module")
def results(batch):
    return Inspector.zero_shot("mutual", image_size=128).predict(batch[0])


def test_mutual_scores_separate_defective_from_clean_images(batch, results):
    _, masks, _ = batch
    defective = np.array([m.any() for m in masks])
    scores = np.array([r.score for r in results])
    assert scores[defective].min() > scores[~defective].max()


def test_maps_peak_on_the_defect(batch, results):
    _, masks, centres = batch
    for result, mask, centre in zip(results, masks, centres):
        if centre is None:
            continue
        peak_y, peak_x = np.unravel_index(np.argmax(result.anomaly_map), result.anomaly_map.shape)
        assert np.hypot(peak_x - centre[0], peak_y - centre[1]) < 16, (peak_x, peak_y, centre)
        assert result.anomaly_map[mask].mean() > 2 * np.median(result.anomaly_map)


def test_batch_decision_flags_the_defects_and_passes_clean_images(batch, results):
    _, masks, _ = batch
    verdicts = np.array([r.anomalous for r in results])
    defective = np.array([m.any() for m in masks])
    assert (verdicts == defective).mean() >= 0.9
    assert verdicts[defective].all()
    for result in results:
        if result.anomalous:
            assert result.regions and result.location


def test_an_exposure_change_is_not_a_defect(batch, results):
    """Nothing in an unlabeled batch says which exposure is normal: one clean image shot brighter and flatter
    (another exposure, or a height offset in a depth map) must score as it did, not as the odd one out."""
    images = list(batch[0])
    images[1] = 0.3 + 0.5 * images[1]  # a gain and an offset; no pixel clips
    again = Inspector.zero_shot("mutual", image_size=128).predict(images)
    assert again[1].score == pytest.approx(results[1].score, rel=0.1)
    assert not again[1].anomalous


def test_standardised_exposure_has_one_mean_and_spread():
    gain, offset = torch.tensor([0.2, 0.6]).view(2, 1, 1, 1), torch.tensor([0.7, 0.1]).view(2, 1, 1, 1)
    batch = torch.rand(2, 3, 16, 16) * gain + offset
    out = standardise_exposure(batch)
    assert torch.allclose(out.mean((1, 2, 3)), torch.full((2,), 0.5), atol=1e-3)
    assert torch.allclose(out.std((1, 2, 3)), torch.full((2,), 1 / 6), atol=1e-3)
    assert torch.allclose(standardise_exposure(torch.full((1, 3, 8, 8), 0.9)), torch.tensor(0.5))  # flat stays flat


def test_normal_mode_survives_a_defective_majority():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1.0, 0.05, 10), rng.normal(2.0, 0.2, 30)])  # 75 % defective
    normal = normal_mode(scores)
    assert normal[:10].all() and not normal[10:].any()
    assert normal_mode(rng.normal(1.0, 0.05, 40)).all()  # one mode: every image calibrates


def test_rescore_averages_scores_over_look_alike_images():
    # two groups of six look-alike images; within a group, scores are pulled together
    angles = torch.cat([torch.linspace(0.0, 0.1, 6), torch.linspace(1.5, 1.6, 6)])
    descriptors = torch.stack([angles.cos(), angles.sin()], 1)
    scores = torch.tensor([1.0, 3.0, 2.0, 1.5, 2.5, 2.0, 10.0, 20.0, 15.0, 12.0, 18.0, 15.0])
    rescored = rescore(scores, descriptors)
    assert rescored[:6].max() < rescored[6:].min()
    assert np.ptp(rescored[:6].numpy()) < 2.0 and np.ptp(rescored[6:].numpy()) < 10.0
    assert torch.equal(rescore(scores[:7], descriptors[:7]), scores[:7])  # too few images: left as they are


def test_a_single_image_is_a_clear_error():
    inspector = Inspector.zero_shot("mutual", image_size=128)
    with pytest.raises(ValueError, match="at least 2 readable images"):
        inspector.predict([texture(0)])
    with pytest.raises(ValueError, match="not fitted"):
        inspector.fit([texture(0), texture(1)])
    with pytest.raises(ValueError, match="unknown zero-shot route"):
        Inspector.zero_shot("telepathy")


@pytest.mark.e2e
def test_detect_zero_shot_end_to_end(batch, tmp_path):
    images, _, centres = batch
    folder = tmp_path / "unlabeled"
    for i, image in enumerate(images):
        save_png(folder / f"{i:02d}.png", image)
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["detect", "--zero-shot", "mutual", "--class", "textile", str(folder), "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    assert len(records) == len(images) + 1 and sum(not r["ok"] for r in records) == 1
    flagged = {int(r["source"].rsplit("/", 1)[1][:2]) for r in records if r["ok"] and r["anomalous"]}
    assert flagged >= {i for i, c in enumerate(centres) if c is not None}
    assert (out / "03_overlay.png").is_file()

    single = runner.invoke(
        app, ["detect", "--zero-shot", "mutual", str(folder / "00.png"), "--out", str(tmp_path / "one")]
    )
    assert single.exit_code == 2 and "at least 2 readable images" in single.output
