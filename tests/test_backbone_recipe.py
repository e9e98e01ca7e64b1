"""The backbone recipe (docs/architecture.md): a network and one `BackboneConfig` entry in `BACKBONES`, its
weights from a file the user gives; the inspector then fits, predicts, saves and loads on it with no other
edit. Here a two-stage convolution net, its weights a safetensors file written by the test."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from anomalens import Inspector, backbones
from anomalens.backbones import BackboneConfig
from conftest import plant_defect, texture


class TinyNet(nn.Module):
    """Two stride-2 convolution stages, then the requested ones' maps (strides 4 and 8)."""

    strides = [4, 8]
    channels = [8, 16]

    def __init__(self, state: dict[str, torch.Tensor], stages: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.deeper = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        missing = {"stem.weight", "stem.bias", "deeper.weight", "deeper.bias"} - set(state)
        if missing:
            raise ValueError(f"not TinyNet weights: {', '.join(sorted(missing))} missing")
        self.load_state_dict(state)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        first = torch.relu(self.stem(images))
        return [first, torch.relu(self.deeper(first))]


@pytest.fixture
def tiny_backbone(tmp_path, monkeypatch):
    monkeypatch.setitem(backbones.BACKBONES, "test_tiny", BackboneConfig(TinyNet, (1, 2), (0.5,) * 3, (0.25,) * 3))
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_file({name: tensor.detach().contiguous() for name, tensor in _fresh().items()}, weights)
    return weights


def _fresh() -> dict[str, torch.Tensor]:
    stem, deeper = nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.Conv2d(8, 16, 3, stride=2, padding=1)
    return {
        "stem.weight": stem.weight,
        "stem.bias": stem.bias,
        "deeper.weight": deeper.weight,
        "deeper.bias": deeper.bias,
    }


def test_a_backbone_is_a_network_and_one_entry(tmp_path, tiny_backbone):
    normals = [texture(i) for i in range(6)]
    defect, _, _ = plant_defect(texture(60), 0, radius=14)
    inspector = Inspector("test_tiny", weights=tiny_backbone, image_size=64).fit(normals)
    results = inspector.predict([defect, texture(61)])
    assert results[0].score > results[1].score  # the planted defect stands out on this network's features
    inspector.save(tmp_path / "tiny-model.safetensors")
    loaded = Inspector.load(tmp_path / "tiny-model.safetensors", weights=tiny_backbone)
    again = loaded.predict([defect, texture(61)])
    assert [r.score for r in again] == pytest.approx([r.score for r in results], rel=1e-5)


def test_weights_that_do_not_make_the_network_are_named(tmp_path, tiny_backbone):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"other": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="wrong.safetensors: not TinyNet weights"):
        Inspector("test_tiny", weights=wrong, image_size=64)
