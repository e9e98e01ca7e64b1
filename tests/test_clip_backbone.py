"""CLIP's image tower as the feature backbone of the memory and decoder experts (AnomalyGPT's setting), on a
tiny random CLIP: the features are the tower's own joint-space tokens, the decoder starts from the prompt
ensembles, model files round-trip, and wrong or missing weights say what to do."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from anomalens import Inspector
from anomalens.backbones import create_backbone
from anomalens.clip import ClipWeightsError
from anomalens.clip.model import CLIP
from anomalens.experts.decoder import DecoderHead
from anomalens.features import patch_features
from anomalens.pixels import to_batch
from conftest import plant_defect, texture, tiny_clip_config

TINY = tiny_clip_config(64, 4)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in CLIP(TINY).state_dict().items()}, path)
    return path


def test_features_are_the_towers_joint_space_tokens(tiny_file):
    backbone = create_backbone("clip", weights=tiny_file)
    network = backbone.network
    assert network.blocks == (1, 2, 3, 4) and backbone.channels == [32] * 4  # quarters of the depth
    images = [texture(i, size=96) for i in range(2)]
    features = patch_features(backbone, to_batch(images, 96))
    assert [tuple(f.shape) for f in features] == [(2, 32, 8, 8)] * 4
    # the tower sees its own resolution; its ordinary tokens of those blocks, before neighbourhood averaging
    pixels = F.interpolate(
        (to_batch(images, 96) - backbone.mean) / backbone.std, size=(64, 64), mode="bicubic", align_corners=False
    )
    _, tokens = network.model.encode_image_dense(pixels, (1, 2, 3, 4), value_value=False)
    np.testing.assert_allclose(
        backbone(to_batch(images, 96))[2].permute(0, 2, 3, 1).numpy(), tokens[2].numpy(), atol=1e-5
    )


def test_decoder_head_starts_as_clips_own_text_comparison(tiny_file):
    network = create_backbone("clip", weights=tiny_file).network
    start = network.decoder_start()
    assert start.shape == (2, 32) and torch.allclose(start.norm(dim=1), torch.ones(2))
    tokens = [torch.randn(3, 32, 5, 5) for _ in range(2)]
    means, stds = [t.mean((0, 2, 3)) for t in tokens], [t.std((0, 2, 3)) for t in tokens]
    head = DecoderHead([32, 32], dim=32)
    head.start_from_text(start, means, stds)
    standardised = [(t - m[:, None, None]) / s[:, None, None] for t, m, s in zip(tokens, means, stds)]
    normal, anomalous = start
    expected = (
        sum(
            torch.sigmoid(F.normalize(t.permute(0, 2, 3, 1), dim=-1) @ (anomalous - normal) / head.temperature)
            for t in tokens
        )
        / 2
    )
    torch.testing.assert_close(head(standardised).detach(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("expert", ["memory", "both"])
def test_experts_fit_predict_and_round_trip_on_clip_features(expert, tiny_file, tmp_path):
    options = dict(weights=tiny_file, expert=expert, image_size=96, synthetic_images=32)
    inspector = Inspector("clip", **options).fit([texture(i, size=96) for i in range(8)])
    images = [plant_defect(texture(50, size=96), 0, radius=12)[0], texture(51, size=96)]
    results = inspector.predict(images)
    assert all(r.ok and r.anomaly_map.shape == (96, 96) and np.isfinite(r.score) for r in results)
    if expert == "both":
        decoder = inspector.expert.decoder
        assert decoder.head.embeddings.shape == (2, 32)  # the joint space's width, from the text start
        assert decoder.history[-1]["train_loss"] < decoder.history[0]["train_loss"]
    loaded = Inspector.load(inspector.save(tmp_path / "clip.safetensors"), weights=tiny_file)
    for a, b in zip(results, loaded.predict(images)):
        assert a.score == pytest.approx(b.score) and a.anomalous == b.anomalous


def test_wrong_or_missing_clip_weights_say_what_to_do(tiny_file, monkeypatch):
    with pytest.raises(ValueError, match=r"tiny_clip\.safetensors.*different CLIP than ViT-B-16"):
        create_backbone("clip_vit_b16", weights=tiny_file)
    with pytest.raises(FileNotFoundError, match="pass weights=PATH to a CLIP ViT checkpoint"):
        create_backbone("clip")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed: never the network
    with pytest.raises(ClipWeightsError, match=r"--weights PATH \(Python: Inspector\('clip_vit_l14'"):
        create_backbone("clip_vit_l14")
