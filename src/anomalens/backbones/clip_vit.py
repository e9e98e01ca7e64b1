"""CLIP's image tower as a feature backbone, as AnomalyGPT builds its few-shot memory and decoder on a
vision-language model: the ordinary patch tokens of four evenly spaced blocks (a quarter, half, three
quarters and all of the depth), each mapped into the joint image-text space (CLIP's own final norm and
projection). Every expert that takes backbone features runs on them; the decoder can also start from text
(`decoder_start`). The tower sees its native resolution, so inputs are resized to it."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import CLIP_MODELS, Tokenizer, download_weights, to_openai_layout
from ..clip.model import CLIP
from ..clip.prompts import generate_prompts
from ..clip.text import state_embeddings


class ClipPatchTokens(nn.Module):
    def __init__(self, model, stages: tuple[int, ...] = ()):
        """`model`: a CLIP (anomalens.clip); `stages`: block numbers (1 = first), default the quarters of the
        depth (`ClipConfig.dense_blocks`)."""
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        depth = model.config.vision_layers
        self.blocks = tuple(stages) or model.config.dense_blocks
        if not all(1 <= b <= depth for b in self.blocks):
            raise ValueError(f"CLIP blocks {self.blocks} out of range: this tower has {depth}")

    @property
    def strides(self) -> list[int]:  # in the tower's own input pixels
        return [self.model.config.patch_size] * len(self.blocks)

    @property
    def channels(self) -> list[int]:
        return [self.model.config.embed_dim] * len(self.blocks)

    def forward(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        size = self.model.config.image_resolution
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)
        _, tokens = self.model.encode_image_dense(pixels, self.blocks, value_value=False)
        return [t.permute(0, 3, 1, 2) for t in tokens]  # (B, grid, grid, E) → (B, E, grid, grid)

    def decoder_start(self) -> torch.Tensor:
        """(2, E) unit "normal" and "anomalous" embeddings from the zero-shot prompt ensembles (class
        "object"), where the decoder's two learned embeddings start."""
        return state_embeddings(self.model, Tokenizer(), generate_prompts(None))


def clip_patch_tokens(model_name: str | None, state_dict: dict[str, torch.Tensor], stages: tuple[int, ...]):
    """The backbone network for a CLIP weights file's tensors (any supported key layout); with a
    `model_name`, the file must hold that architecture."""
    state = to_openai_layout(state_dict)
    try:
        model = CLIP.from_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"not a supported CLIP ViT checkpoint ({str(error).splitlines()[0]})") from None
    if model_name is not None and model.config != CLIP_MODELS[model_name].config:
        raise ValueError(f"the weights hold a different CLIP than {model_name}: {model.config}")
    return ClipPatchTokens(model, stages)


def clip_hub_weights(backbone: str, model_name: str) -> Path:
    """The named CLIP's weights from the Hugging Face hub; offline, a ClipWeightsError says how to give a file."""
    return download_weights(model_name, f"--weights PATH (Python: Inspector({backbone!r}, weights=PATH))")
