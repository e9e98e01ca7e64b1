import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from anomalens.backbones import BACKBONES, create_backbone, resolve_weights
from anomalens.backbones.efficientnet_lite import EfficientNetLite, _conv_bn, block_layout
from anomalens.weights import load_state_dict

DATA = Path(__file__).parent / "data"
EGYPTIAN_CAT, TABBY, TIGER_CAT, ESPRESSO = 285, 281, 282, 967


class EfficientNetLiteClassifier(EfficientNetLite):
    """The full ImageNet classifier, used to check that weights load correctly."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        super().__init__(state_dict, stages=(6,))
        head_in, head_out = state_dict["_conv_head.weight"].shape[1], state_dict["_conv_head.weight"].shape[0]
        self._conv_head, self._bn1 = _conv_bn(head_in, head_out, 1)
        self._fc = nn.Linear(head_out, state_dict["_fc.weight"].shape[0])
        head = {k: v for k, v in state_dict.items() if k.startswith(("_conv_head.", "_bn1.", "_fc."))}
        self.load_state_dict(head, strict=False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)[-1]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def _imagenet_input(name: str) -> torch.Tensor:
    image = np.asarray(Image.open(DATA / name).convert("RGB").resize((224, 224), Image.BICUBIC), np.float32) / 255
    return torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1  # TF-converted weights want [-1, 1]


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_imagenet_weights_classify_photos(name):
    """The offline weights load into our network correctly: a cat is a cat, an espresso an espresso."""
    model = EfficientNetLiteClassifier(load_state_dict(resolve_weights(name)))
    with torch.inference_mode():
        cat = model(_imagenet_input("chelsea.jpg")).softmax(-1)[0]
        cup = model(_imagenet_input("coffee.jpg")).softmax(-1)[0]
    assert int(cat.argmax()) == EGYPTIAN_CAT and cat[EGYPTIAN_CAT] > 0.6
    assert cat[[EGYPTIAN_CAT, TABBY, TIGER_CAT]].sum() > 0.9
    assert int(cup.argmax()) == ESPRESSO and cup[ESPRESSO] > 0.6


def test_lite0_layout_read_from_weights():
    layout = block_layout(load_state_dict(resolve_weights("efficientnet_lite0")))
    assert len(layout) == 16
    assert [spec[4] for spec in layout if spec[4] == 2] == [2, 2, 2, 2]  # four stride-2 stages
    assert layout[4][1] == 40 and layout[10][1] == 112  # ends of stages 2 and 4


def test_default_backbone_features_at_strides_8_and_16():
    backbone = create_backbone()
    features = backbone(torch.rand(2, 3, 256, 256))
    assert [tuple(f.shape) for f in features] == [(2, 40, 32, 32), (2, 112, 16, 16)]
    assert backbone.strides == [8, 16] and backbone.channels == [40, 112]
    assert not any(p.requires_grad for p in backbone.parameters())


def test_onnxruntime_network_gives_torch_features_and_caches_its_graph(backbone_cache, monkeypatch):
    backbone = create_backbone()
    assert backbone.runtime is not None  # onnxruntime is installed with the package
    pixels = torch.rand(3, 3, 96, 160)  # batch size and an odd shape: one graph per input shape, batch free
    scaled = (pixels - backbone.mean) / backbone.std
    backbone(pixels[:1])  # a shape's first batch runs in torch: only a shape that comes again is exported
    assert not list((backbone_cache / "backbones").glob("*-3x96x160.onnx"))
    fast, eager = backbone(pixels), backbone.network(scaled)
    assert [f.shape for f in fast] == [e.shape for e in eager]
    assert all(torch.allclose(f, e, atol=1e-4, rtol=1e-4) for f, e in zip(fast, eager))
    graphs = sorted((backbone_cache / "backbones").glob(f"{backbone.runtime.fingerprint}-3x96x160.onnx"))
    assert len(graphs) == 1
    # a new backbone (another process, say) loads that graph instead of exporting it again
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported twice"))
    again = create_backbone()
    assert again.runtime is not None and again.runtime.fingerprint == backbone.runtime.fingerprint
    assert all(torch.equal(a, f) for a, f in zip(again(pixels[:1]), backbone(pixels[:1])))  # at first sight
    assert list(again.runtime.sessions) == [(3, 96, 160)]


def test_backbone_runs_in_torch_when_asked_or_without_onnxruntime(monkeypatch):
    monkeypatch.setenv("ANOMALENS_BACKBONE_RUNTIME", "torch")
    assert create_backbone().runtime is None
    monkeypatch.delenv("ANOMALENS_BACKBONE_RUNTIME")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    backbone = create_backbone()
    assert backbone.runtime is None
    assert [f.shape[1] for f in backbone(torch.rand(1, 3, 64, 64))] == [40, 112]


def _wrn_state() -> dict[str, torch.Tensor]:
    # Names and shapes as torchvision writes them (checked entries below), values random.
    shapes = {"conv1.weight": (64, 3, 7, 7)}
    for bn, c in (("bn1", 64),):
        shapes.update({f"{bn}.weight": (c,), f"{bn}.bias": (c,), f"{bn}.running_mean": (c,), f"{bn}.running_var": (c,)})
    c_in = 64
    for n, blocks in enumerate((3, 4, 6, 3), start=1):
        planes = 64 * 2 ** (n - 1)
        width, c_out = planes * 2, planes * 4
        for b in range(blocks):
            p = f"layer{n}.{b}"
            shapes[f"{p}.conv1.weight"] = (width, c_in if b == 0 else c_out, 1, 1)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            shapes[f"{p}.conv3.weight"] = (c_out, width, 1, 1)
            for bn, c in (("bn1", width), ("bn2", width), ("bn3", c_out)):
                for s in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{p}.{bn}.{s}"] = (c,)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (c_out, c_in, 1, 1)
                for s in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{p}.downsample.1.{s}"] = (c_out,)
        c_in = c_out
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 2048), (1000,)
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v, generator=g) * 0.05 for k, v in shapes.items()}
    for k in list(state):
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 1
            state[k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    return state


def test_wide_resnet_loads_torchvision_layout_from_safetensors(tmp_path):
    state = _wrn_state()
    assert len(state) == 320  # as many tensors as torchvision's wide_resnet50_2 state dict
    path = tmp_path / "wrn50.safetensors"
    save_file(state, path)
    backbone = create_backbone("wide_resnet50_2", weights=path)
    features = backbone(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 512, 8, 8), (1, 1024, 4, 4)]
    assert backbone.strides == [8, 16]
    assert torch.equal(backbone.network.layer3[5].conv3.weight, state["layer3.5.conv3.weight"])


def test_wide_resnet_without_weights_says_how_to_get_them():
    with pytest.raises(FileNotFoundError, match="wide_resnet50_2"):
        create_backbone("wide_resnet50_2")


def test_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("resnet9000")
    with pytest.raises(FileNotFoundError, match="not found"):
        create_backbone("efficientnet_lite0", weights=tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="EfficientNet-Lite"):
        create_backbone("efficientnet_lite0", weights=wrong)
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "wide_resnet50_2"} <= set(BACKBONES)
