"""CLIP for zero-shot inspection: named architectures, and one factory that hides where weights come from.

    model = create_clip("ViT-B-16", weights="open_clip_model.safetensors")   # a local file (any layout below)
    model = create_clip(None, weights="clip.pt")                            # architecture read off the file
    model = create_clip("ViT-L-14-336")                                     # Hugging Face hub, when online

Weights files hold tensors only: ``.safetensors``, or a plain state dict read with torch's restricted
unpickler (``weights_only=True``). Three key layouts load: OpenAI's (``visual.conv1.weight``, …), OpenCLIP's
(the same, optionally under ``module.`` or with the text tower under ``text.``) and Hugging Face
``transformers``' CLIPModel (``vision_model.encoder.layers.N.self_attn.q_proj``, …). OpenAI's original
``.pt`` downloads are TorchScript archives, which are not read; the hub files below hold the same weights.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..pixels import to_batch
from ..weights import load_state_dict
from .model import CLIP, CLIP_MEAN, CLIP_STD, ClipConfig
from .tokenizer import Tokenizer

HUB_FILE = "open_clip_model.safetensors"  # OpenCLIP's safetensors copy of OpenAI's weights, in timm's hub repos


class ClipWeightsError(FileNotFoundError):
    """CLIP weights could not be had; the message says how to supply a file."""


@dataclass(frozen=True)
class ClipModelInfo:
    config: ClipConfig
    hub_repo: str
    hub_file: str = HUB_FILE


def _vit(width: int, layers: int, patch: int, resolution: int, embed_dim: int, text_width: int) -> ClipConfig:
    return ClipConfig(
        embed_dim=embed_dim,
        image_resolution=resolution,
        vision_layers=layers,
        vision_width=width,
        patch_size=patch,
        context_length=77,
        vocab_size=49408,
        text_width=text_width,
        text_layers=12,
    )


CLIP_MODELS: dict[str, ClipModelInfo] = {
    "ViT-B-32": ClipModelInfo(_vit(768, 12, 32, 224, 512, 512), "timm/vit_base_patch32_clip_224.openai"),
    "ViT-B-16": ClipModelInfo(_vit(768, 12, 16, 224, 512, 512), "timm/vit_base_patch16_clip_224.openai"),
    "ViT-L-14": ClipModelInfo(_vit(1024, 24, 14, 224, 768, 768), "timm/vit_large_patch14_clip_224.openai"),
    "ViT-L-14-336": ClipModelInfo(_vit(1024, 24, 14, 336, 768, 768), "timm/vit_large_patch14_clip_336.openai"),
}
DEFAULT_CLIP = "ViT-B-16"


def create_clip(
    name: str | None = DEFAULT_CLIP, weights: str | Path | None = None, quick_gelu: bool | None = None
) -> CLIP:
    """A frozen CLIP in eval mode. With `weights`, the file is read (its architecture must match `name`
    unless `name` is None); without, the named model's OpenAI weights come from the Hugging Face hub.
    `quick_gelu` defaults to the named model's (True for OpenAI weights, and for files with no name)."""
    if name is not None and name not in CLIP_MODELS:
        raise ValueError(f"unknown CLIP model {name!r}; choose one of {', '.join(CLIP_MODELS)}")
    if weights is None:
        name = name or DEFAULT_CLIP
        weights = download_weights(name)
    expected = CLIP_MODELS[name].config if name else None
    gelu = quick_gelu if quick_gelu is not None else (expected.quick_gelu if expected else True)
    state = to_openai_layout(_read_tensors(Path(weights), name or DEFAULT_CLIP))
    try:
        model = CLIP.from_state_dict(state, gelu)
    except RuntimeError as error:  # missing or unexpected keys: a CLIP variant this tower does not build
        raise ValueError(f"{weights}: not a supported CLIP ViT checkpoint ({str(error).splitlines()[0]})") from None
    if expected is not None and model.config != replace(expected, quick_gelu=gelu):
        raise ValueError(f"{weights} holds a different CLIP than {name}: {model.config}")
    return model.requires_grad_(False)


def download_weights(name: str, pass_it: str | None = None) -> Path:
    """The named model's weights file from the Hugging Face hub (cached by huggingface_hub). `pass_it` says,
    in the failure message, how a file is given instead (default: route A's option)."""
    info = CLIP_MODELS[name]
    url = f"https://huggingface.co/{info.hub_repo}/blob/main/{info.hub_file}"
    pass_it = pass_it or f"--clip-weights PATH (Python: create_clip({name!r}, weights=PATH))"
    how = (
        f"Download {info.hub_file} from {url} (or any OpenAI / OpenCLIP / transformers {name} checkpoint as "
        f".safetensors or a plain state dict) and pass it with {pass_it}."
    )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ClipWeightsError(f"no CLIP weights given and huggingface_hub is not installed. {how}") from None
    try:
        return Path(hf_hub_download(info.hub_repo, info.hub_file))
    except Exception as error:  # offline, blocked, or gone: every hub failure ends the same way for the user
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ClipWeightsError(f"could not download CLIP weights for {name} ({reason}). {how}") from None


def _read_tensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The file's tensors; TorchScript archives and pickled objects are refused (they could run code)."""
    if not path.is_file():
        raise ClipWeightsError(f"{path}: CLIP weights file not found")
    try:
        return load_state_dict(path)
    except (RuntimeError, pickle.UnpicklingError) as error:
        info = CLIP_MODELS[name]
        what = (
            "a TorchScript archive (as OpenAI's original .pt downloads are)"
            if "TorchScript" in str(error)
            else "not a plain state dict of tensors"
        )
        raise ValueError(
            f"{path} is {what}; it is not read because loading it could run code. Use a .safetensors "
            f"file instead, e.g. {info.hub_file} from https://huggingface.co/{info.hub_repo} "
            f"(the same OpenAI weights)"
        ) from None


# ---- key layouts ---------------------------------------------------------------------------------
_TRANSFORMERS_KEYS = [  # Hugging Face CLIPModel key → OpenAI key (q/k/v projections are joined separately)
    (r"vision_model\.embeddings\.class_embedding", "visual.class_embedding"),
    (r"vision_model\.embeddings\.patch_embedding\.weight", "visual.conv1.weight"),
    (r"vision_model\.embeddings\.position_embedding\.weight", "visual.positional_embedding"),
    (r"vision_model\.pre_layrnorm\.", "visual.ln_pre."),
    (r"vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"vision_model\.encoder\.layers\.", "visual.transformer.resblocks."),
    (r"text_model\.embeddings\.token_embedding\.", "token_embedding."),
    (r"text_model\.embeddings\.position_embedding\.weight", "positional_embedding"),
    (r"text_model\.final_layer_norm\.", "ln_final."),
    (r"text_model\.encoder\.layers\.", "transformer.resblocks."),
    (r"\.self_attn\.out_proj\.", ".attn.out_proj."),
    (r"\.layer_norm1\.", ".ln_1."),
    (r"\.layer_norm2\.", ".ln_2."),
    (r"\.mlp\.fc1\.", ".mlp.c_fc."),
    (r"\.mlp\.fc2\.", ".mlp.c_proj."),
]
_NOT_WEIGHTS = {"input_resolution", "context_length", "vocab_size", "logit_bias"}  # metadata in some files


def detect_layout(state: dict[str, torch.Tensor]) -> str:
    """The key layout: "transformers", "openclip" (prefixed, or a separate text tower) or "openai"."""
    if any(k.startswith("vision_model.") for k in state):
        return "transformers"
    if any(k.startswith(("module.", "text.")) for k in state):
        return "openclip"
    return "openai"


def to_openai_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict with OpenAI's key names, whichever supported layout it came in."""
    layout = detect_layout(state)
    if layout == "transformers":
        state = _from_transformers(state)
    elif layout == "openclip":
        state = {k.removeprefix("module."): v for k, v in state.items()}
        state = {k.removeprefix("text."): v for k, v in state.items()}  # CustomTextCLIP's text tower
    return {k: v for k, v in state.items() if k not in _NOT_WEIGHTS and not k.endswith(("position_ids", "attn_mask"))}


def _from_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key in ("visual_projection.weight", "text_projection.weight"):  # Linear (out, in) → Parameter (in, out)
            out["visual.proj" if key.startswith("visual") else "text_projection"] = value.T.contiguous()
            continue
        for pattern, new in _TRANSFORMERS_KEYS:
            key = re.sub(pattern, new, key)
        if match := re.fullmatch(r"(.+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            block, which, kind = match.groups()
            qkv.setdefault(f"{block}.attn.in_proj_{kind}", {})[which] = value
        else:
            out[key] = value
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


# ---- images --------------------------------------------------------------------------------------
def preprocess(images: Sequence[np.ndarray], resolution: int) -> torch.Tensor:
    """H×W×3 float images in [0, 1] → (B, 3, R, R) CLIP inputs. The whole image is resized (bicubic,
    antialiased) instead of OpenAI's centre crop, so the anomaly map covers every pixel; for square images
    the two are the same."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (to_batch(images, resolution, "bicubic") - mean) / std


__all__ = [
    "CLIP",
    "CLIP_MEAN",
    "CLIP_MODELS",
    "CLIP_STD",
    "ClipConfig",
    "ClipWeightsError",
    "Tokenizer",
    "create_clip",
    "preprocess",
]
