"""The decoder expert: trained on synthetic anomalies, it finds real planted defects; fused with the
memory expert; both save to and load from one model file."""

import json

import numpy as np
import pytest
import torch

from anomalens import Inspector
from anomalens.experts import ExpertInput
from anomalens.experts.decoder import held_out_split
from anomalens.experts.fusion import decoder_logits, fuse, map_statistics
from anomalens.experts.head_training import segmentation_loss
from anomalens.features import patch_features
from anomalens.maps import smooth as smooth_maps
from anomalens.metrics import image_auroc, pixel_auroc
from anomalens.model_file import ModelFileError, read_header
from anomalens.pixels import to_batch
from conftest import plant_defect, texture

OPTIONS = dict(image_size=128, synthetic_images=96)


@pytest.fixture(scope="module")
def defects_and_normals():
    defects = [plant_defect(texture(300 + i), i, radius=14) for i in range(4)]
    return defects, [texture(400 + i) for i in range(4)]


@pytest.fixture(scope="module")
def fused():
    return Inspector(expert="both", **OPTIONS).fit([texture(i) for i in range(8)])


def _features(inspector, images) -> ExpertInput:
    return ExpertInput(features=patch_features(inspector.backbone, to_batch(images, inspector.config.image_size)))


def test_training_lowers_the_loss_and_localises_planted_defects(fused, defects_and_normals):
    history = fused.expert.decoder.history
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert min(h["val_loss"] for h in history) < 0.8 * history[0]["val_loss"]  # on held-out synthetic images
    defects, normals = defects_and_normals
    # the decoder alone, on defects it never saw (planted blobs, not synthetic pastes)
    maps, scores = fused.expert.decoder.score(_features(fused, [d[0] for d in defects] + normals))
    assert image_auroc([1] * 4 + [0] * 4, scores.numpy()) >= 0.9
    smooth = smooth_maps(maps[:4], fused.config.image_size).numpy()
    assert pixel_auroc(np.stack([d[1] for d in defects]), smooth) > 0.9
    for (_, mask, _), anomaly_map in zip(defects, smooth):
        y, x = np.unravel_index(anomaly_map.argmax(), anomaly_map.shape)
        assert mask[max(0, y - 8) : y + 9, max(0, x - 8) : x + 9].any()  # the peak is on the defect


def test_fused_expert_finds_defects_with_held_out_calibration(fused, defects_and_normals):
    defects, normals = defects_and_normals
    assert fused.expert.name == "fused" and fused.expert.memory.name == "memory_bank"
    assert fused.calibration.method == "held-out" and fused.calibration.n_normal == 2  # a quarter of 8
    images = [d[0] for d in defects] + normals
    results = fused.predict(images)
    assert image_auroc([1] * 4 + [0] * 4, [r.score for r in results]) == 1.0
    # the image score is the memory expert's, normalised: the decoder can never cost image AUROC
    memory_scores = fused.expert.memory.score(_features(fused, images))[1].numpy()
    np.testing.assert_array_equal(np.argsort([r.score for r in results]), np.argsort(memory_scores))
    assert pixel_auroc(np.stack([d[1] for d in defects]), np.stack([r.anomaly_map for r in results[:4]])) > 0.95
    assert all(r.anomalous for r in results[:4])


@pytest.mark.parametrize("expert", ["decoder", "fused"])
def test_model_file_round_trip(expert, fused, defects_and_normals, tmp_path):
    inspector = fused
    if expert == "decoder":
        inspector = Inspector(expert="decoder", **OPTIONS | {"synthetic_images": 32}).fit(
            [texture(i) for i in range(4)]
        )
    path = inspector.save(tmp_path / f"{expert}.safetensors")
    assert read_header(path)["expert"]["kind"] == expert
    loaded = Inspector.load(path)
    images = [defects_and_normals[0][0][0], defects_and_normals[1][0]]
    for a, b in zip(inspector.predict(images), loaded.predict(images)):
        assert a.score == b.score and a.anomalous == b.anomalous
        np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
    assert loaded.calibration == inspector.calibration


def test_fused_map_is_not_decided_by_the_decoder_tail(fused):
    """Normal decoder probabilities sit near 0 with a tiny spread; normalised as probabilities, one confident
    false alarm (0.999) would outweigh a clear memory finding whatever the weights. As logits it does not."""
    rng = np.random.default_rng(0)
    normal = torch.from_numpy(rng.uniform(1e-4, 1e-3, (20, 8, 8))).float()
    memory_normal = torch.from_numpy(rng.normal(1.0, 0.1, (20, 8, 8))).float()
    statistics = dict(
        fused.expert.statistics,
        memory_map=map_statistics(memory_normal),
        decoder_logit=map_statistics(decoder_logits(normal)),
    )
    memory_map, decoder_map = torch.full((1, 8, 8), 1.0), torch.full((1, 8, 8), 5e-4)
    memory_map[0, 6, 6] = 3.0  # a clear defect for the memory expert (z ≈ 8), which the decoder half sees …
    decoder_map[0, 6, 6] = 0.3
    decoder_map[0, 1, 1] = 0.999  # … and a confident decoder false alarm where the memory sees nothing
    maps, _ = fuse((memory_map, torch.ones(1)), decoder_map, statistics)
    assert divmod(int(maps[0].argmax()), 8) == (6, 6)


def test_fused_model_from_before_logit_statistics_is_refused(fused, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = fused.save(tmp_path / "fused.safetensors")
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
    header = json.loads(metadata["anomalens"])
    header["expert"]["statistics"]["decoder_map"] = header["expert"]["statistics"].pop("decoder_logit")
    save_file(load_file(path), tmp_path / "old.safetensors", metadata={"anomalens": json.dumps(header)})
    with pytest.raises(ModelFileError, match="old.safetensors.*fit it again"):
        Inspector.load(tmp_path / "old.safetensors")


def test_segmentation_loss_prefers_the_true_mask():
    masks = torch.zeros(2, 16, 16)
    masks[:, 4:9, 5:11] = 1
    assert segmentation_loss(masks * 0.98 + 0.01, masks) < 0.1 < segmentation_loss(1 - masks * 0.98 - 0.01, masks)


def test_held_out_split_keeps_images_apart():
    train, held = held_out_split(12, seed=0)
    assert len(held) == 3
    assert sorted(train.tolist() + held.tolist()) == list(range(12))
    with pytest.raises(ValueError, match="at least 2"):
        held_out_split(1, seed=0)


def test_the_fused_expert_exports_and_the_onnx_runtime_gives_its_results(fused, defects_and_normals, tmp_path):
    from anomalens.deploy import OnnxInspector
    from anomalens.export import export_onnx

    defects, normals = defects_and_normals
    images = [d[0] for d in defects] + normals
    exported = OnnxInspector(export_onnx(fused, tmp_path / "fused.onnx"))
    for ours, theirs in zip(exported.predict(images), fused.predict(images)):
        assert (ours.anomalous, ours.location) == (theirs.anomalous, theirs.location)
        assert [r.box for r in ours.regions] == [r.box for r in theirs.regions]
        # looser than memory bank and PatchCore (1e-4): measured up to 1e-4 on scores, 3e-4 of the maps' range
        assert ours.score == pytest.approx(theirs.score, rel=1e-3)
        assert np.abs(ours.anomaly_map - theirs.anomaly_map).max() <= 1e-3 * np.ptp(theirs.anomaly_map)
