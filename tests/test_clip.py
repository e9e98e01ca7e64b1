"""CLIP without real weights: tokenizer parity, checkpoint layouts, shapes, and the missing-weights message."""

import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from anomalens.clip import CLIP_MEAN, CLIP_MODELS, CLIP_STD, ClipWeightsError, create_clip, detect_layout, preprocess
from anomalens.clip.model import CLIP, Attention, ClipConfig
from anomalens.clip.tokenizer import Tokenizer
from conftest import tiny_clip_config

TINY = tiny_clip_config(32, 2)

# Token ids of OpenAI/OpenCLIP's tokenizer as published: the example, the SimpleTokenizer parity table
# of a MobileCLIP port and Apple's ml-stable-diffusion tokenizer tests.
REFERENCE_IDS = [
    ("a photo of a cat", [320, 1125, 539, 320, 2368]),
    ("person working at a computer", [2533, 1699, 536, 320, 11639, 652]),
    ("", []),
    ("I can't believe it's not butter", [328, 753, 713, 2649, 585, 568, 783, 6952]),
    ("they're working on it", [889, 982, 1699, 525, 585]),
    ("hello, world! how are you?", [3306, 267, 1002, 256, 829, 631, 592, 286]),
    ("email: user@example.com", [4462, 281, 7031, 287, 6228, 269, 2464]),
    ("!!!", [995]),
    ("the year 2024 was interesting", [518, 935, 273, 271, 273, 275, 739, 3628]),
    ("3.14 is pi", [274, 269, 272, 275, 533, 5357]),
    ("  HELLO   World  ", [3306, 1002]),
    ("MacBook Pro 16-inch", [20617, 2630, 272, 277, 268, 6523]),
    ("a photo of an astronaut riding a horse on mars", [320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496]),
    (
        "Apple CoreML developer tools on a Macbook Air are fast",
        [3055, 19622, 5780, 10929, 5771, 525, 320, 20617, 1922, 631, 1953],
    ),
]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return CLIP(TINY).eval()


@pytest.mark.parametrize("text, ids", REFERENCE_IDS)
def test_tokenizer_matches_reference_ids(tokenizer, text, ids):
    row = tokenizer(text)[0]
    assert row.shape == (77,) and row.dtype == torch.long
    assert row[: len(ids) + 2].tolist() == [49406, *ids, 49407]
    assert not row[len(ids) + 2 :].any()


def test_tokenizer_unicode_entities_and_truncation(tokenizer):
    assert tokenizer.vocab_size == 49408
    text = "Café naïve &amp; 日本語 😀"
    assert tokenizer.decode(tokenizer.encode(text)) == "café naïve & 日本語 😀"  # bytes survive BPE exactly
    assert tokenizer.encode("e\u0301") == tokenizer.encode("é")  # NFC: composed and decomposed agree
    long = tokenizer(["word " * 100], context_length=16)[0]
    assert long[0] == 49406 and long[-1] == 49407 and len(long) == 16


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(1)
    ours, reference = Attention(128), torch.nn.MultiheadAttention(128, 2, batch_first=True)
    reference.load_state_dict(ours.state_dict())  # same parameter names, so real checkpoints load unchanged
    x = torch.randn(3, 10, 128)
    mask = torch.triu(torch.full((10, 10), float("-inf")), 1)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x, x, x, need_weights=False)[0], atol=1e-5)
        causal = reference(x, x, x, attn_mask=mask, need_weights=False)[0]
        assert torch.allclose(ours(x, causal=True), causal, atol=1e-5)


@pytest.mark.parametrize("name", list(CLIP_MODELS))
def test_named_architectures_are_read_back_from_their_state_dicts(name):
    config = CLIP_MODELS[name].config
    with torch.device("meta"):  # shapes only: no memory for ViT-L
        state = CLIP(config).state_dict()
    assert ClipConfig.from_state_dict(state) == config
    assert state["visual.conv1.weight"].shape[-1] == config.patch_size


def test_image_and_text_towers_shapes(tiny, tokenizer):
    pixels = preprocess([np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)] * 2, TINY.image_resolution)
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.float32
    white = preprocess([np.ones((8, 8, 3), np.float32)], 32)
    assert torch.allclose(white[0, :, 0, 0], (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD))
    with torch.no_grad():
        pooled, dense = tiny.encode_image_dense(pixels, [1, 2])
        assert torch.equal(pooled, tiny.encode_image(pixels))  # the dense path leaves the pooled one alone
        assert [d.shape for d in dense] == [(2, 4, 4, 32)] * 2 and dense[0].dtype == torch.float32
        assert not torch.allclose(dense[0], dense[1])
        _, plain = tiny.encode_image_dense(pixels, [2], value_value=False)
        last = tiny.visual.ln_post(_plain_tokens(tiny, pixels)[:, 1:]) @ tiny.visual.proj
        assert torch.allclose(plain[0].flatten(1, 2), last, atol=1e-5)
        text = tiny.encode_text(tokenizer(["a photo of a cat", "x"], context_length=TINY.context_length))
        longer = tiny.encode_text(tokenizer(["x", "word " * 20], context_length=TINY.context_length))
    assert text.shape == (2, 32) and torch.isfinite(text).all()
    assert torch.allclose(text[1], longer[0], atol=1e-6)  # padding never changes an embedding (it is cut)


def _plain_tokens(model, pixels):
    """The ordinary ViT forward, written out: all tokens after the last block."""
    visual = model.visual
    x = visual.conv1(pixels).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(len(x), 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    for block in visual.transformer.resblocks:
        x = block(x)
    return x


# ---- checkpoint layouts ----------------------------------------------------------------------------
def _openclip_text_tower(state):
    """OpenCLIP's CustomTextCLIP keeps the text tower under "text."."""
    text_keys = ("token_embedding", "positional_embedding", "transformer.", "ln_final", "text_projection")
    return {("text." + k if k.startswith(text_keys) else k): v for k, v in state.items()}


def _transformers(state):
    """Hugging Face CLIPModel names, written out independently of the loader's conversion table."""
    out = {
        "logit_scale": state["logit_scale"],
        "visual_projection.weight": state["visual.proj"].T,
        "text_projection.weight": state["text_projection"].T,
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.embeddings.position_ids": torch.arange(17)[None],
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
    }
    for ours, theirs in (
        ("visual.ln_pre", "vision_model.pre_layrnorm"),
        ("visual.ln_post", "vision_model.post_layernorm"),
        ("ln_final", "text_model.final_layer_norm"),
    ):
        for p in ("weight", "bias"):
            out[f"{theirs}.{p}"] = state[f"{ours}.{p}"]
    for ours, theirs, n in (
        ("visual.transformer", "vision_model.encoder", TINY.vision_layers),
        ("transformer", "text_model.encoder", TINY.text_layers),
    ):
        for i in range(n):
            a, b = f"{ours}.resblocks.{i}", f"{theirs}.layers.{i}"
            for p in ("weight", "bias"):
                q, k, v = state[f"{a}.attn.in_proj_{p}"].chunk(3)
                out |= {
                    f"{b}.self_attn.q_proj.{p}": q,
                    f"{b}.self_attn.k_proj.{p}": k,
                    f"{b}.self_attn.v_proj.{p}": v,
                    f"{b}.self_attn.out_proj.{p}": state[f"{a}.attn.out_proj.{p}"],
                    f"{b}.layer_norm1.{p}": state[f"{a}.ln_1.{p}"],
                    f"{b}.layer_norm2.{p}": state[f"{a}.ln_2.{p}"],
                    f"{b}.mlp.fc1.{p}": state[f"{a}.mlp.c_fc.{p}"],
                    f"{b}.mlp.fc2.{p}": state[f"{a}.mlp.c_proj.{p}"],
                }
    return out


LAYOUTS = {  # name → (file suffix, state dict → what is saved, layout detected)
    "openai-safetensors": (".safetensors", lambda s: s, "openai"),
    "openai-fp16-pt": (".pt", lambda s: {k: v.half() for k, v in s.items()} | {"input_resolution": 32}, "openai"),
    "openclip-training-checkpoint": (
        ".pt",
        lambda s: {"epoch": 3, "state_dict": {"module." + k: v for k, v in s.items()}},
        "openclip",
    ),
    "openclip-text-tower": (".safetensors", _openclip_text_tower, "openclip"),
    "transformers": (".safetensors", _transformers, "transformers"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_checkpoint_layouts_round_trip(layout, tiny, tokenizer, tmp_path):
    suffix, convert, detected = LAYOUTS[layout]
    saved = convert({k: v.clone().contiguous() for k, v in tiny.state_dict().items()})
    path = tmp_path / f"clip{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in saved.items()}, path)
    else:
        torch.save(saved, path)
    state = saved.get("state_dict", saved)
    assert detect_layout({k: v for k, v in state.items() if isinstance(v, torch.Tensor)}) == detected
    loaded = create_clip(None, weights=path)
    assert loaded.config == TINY
    pixels = preprocess([np.full((32, 32, 3), 0.3, np.float32)], 32)
    tokens = tokenizer(["a photo of a cat"], context_length=16)
    tolerance = 1e-2 if "fp16" in layout else 1e-5
    with torch.no_grad():
        assert torch.allclose(loaded.encode_image(pixels), tiny.encode_image(pixels), atol=tolerance)
        assert torch.allclose(loaded.encode_text(tokens), tiny.encode_text(tokens), atol=tolerance)


def test_weights_of_another_architecture_are_refused(tiny, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_file(tiny.state_dict(), path)
    with pytest.raises(ValueError, match="different CLIP than ViT-B-16"):
        create_clip("ViT-B-16", weights=path)
    with pytest.raises(ValueError, match="unknown CLIP model"):
        create_clip("ViT-H-99", weights=path)
    with pytest.raises(ClipWeightsError, match="not found"):
        create_clip(None, weights=tmp_path / "missing.safetensors")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script, used only to make the file
def test_torchscript_and_pickled_objects_are_not_executed(tmp_path):
    torch.jit.script(torch.nn.Linear(2, 2)).save(tmp_path / "ViT-B-16.pt")  # OpenAI's original format
    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match="TorchScript archive .* open_clip_model.safetensors"),
    ):
        create_clip("ViT-B-16", weights=tmp_path / "ViT-B-16.pt")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="not a plain state dict"):
        create_clip(None, weights=tmp_path / "module.pt")


def test_missing_hub_says_how_to_supply_a_file(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(ClipWeightsError) as error:
        create_clip("ViT-B-16")
    message = str(error.value)
    assert "huggingface_hub is not installed" in message and "--clip-weights PATH" in message
    assert "https://huggingface.co/timm/vit_base_patch16_clip_224.openai" in message


def test_unreachable_hub_says_how_to_supply_a_file(monkeypatch):
    calls = []

    def offline(repo, filename):
        calls.append((repo, filename))
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=offline))
    with pytest.raises(ClipWeightsError) as error:
        create_clip("ViT-L-14-336")
    assert calls == [("timm/vit_large_patch14_clip_336.openai", "open_clip_model.safetensors")]
    message = str(error.value)
    assert "could not download CLIP weights for ViT-L-14-336" in message and "couldn't connect" in message
    assert "--clip-weights PATH" in message and "open_clip_model.safetensors" in message
