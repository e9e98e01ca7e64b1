"""A compact CLIP (ViT image tower + causal text transformer) in OpenAI's state-dict key layout
(``visual.conv1.weight``, ``visual.transformer.resblocks.N.attn.in_proj_weight``, ``token_embedding.weight``,
``ln_final``, ``text_projection``, …), so real checkpoints load with ``load_state_dict`` unchanged.

The image tower can also return dense patch tokens for zero-shot anomaly maps. Frozen CLIP's patch tokens
from the ordinary query-key attention barely align with text (each attends to a few global tokens), so from
a chosen block on a second, *value-value* path is run beside the ordinary one (CLIP Surgery, Li et al.
2023; AnomalyCLIP's DPAM): each block's attention is recomputed with the values as queries and keys, so a
patch mixes in patches that look like it, and the result is added to that path with no MLP. The ordinary
path, and with it the pooled image embedding, is left exactly as trained.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI's input normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

HEAD_WIDTH = 64  # every CLIP ViT uses 64-wide attention heads, so heads = width // 64
DENSE_DEPTHS = (0.25, 0.5, 0.75, 1.0)  # where patch tokens are read (AnomalyCLIP: blocks 6, 12, 18, 24 of 24)


@dataclass(frozen=True)
class ClipConfig:
    embed_dim: int
    image_resolution: int
    vision_layers: int
    vision_width: int
    patch_size: int
    context_length: int
    vocab_size: int
    text_width: int
    text_layers: int
    quick_gelu: bool = True  # OpenAI's checkpoints were trained with x·σ(1.702x); most OpenCLIP ones with GELU

    @property
    def grid(self) -> int:
        return self.image_resolution // self.patch_size

    @property
    def dense_blocks(self) -> tuple[int, ...]:
        """Block numbers (1 = first) at DENSE_DEPTHS of the image tower: the zero-shot maps' blocks and the
        CLIP backbone's default feature stages."""
        return tuple(sorted({max(1, math.ceil(f * self.vision_layers)) for f in DENSE_DEPTHS}))

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], quick_gelu: bool = True) -> ClipConfig:
        """Architecture read off the tensors' shapes (as OpenAI's ``build_model`` does), so any ViT size loads."""
        if "visual.conv1.weight" not in state:
            raise ValueError("not a CLIP ViT state dict: no visual.conv1.weight (ResNet CLIPs are not supported)")
        conv = state["visual.conv1.weight"]
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        return cls(
            embed_dim=state["text_projection"].shape[1],
            image_resolution=conv.shape[-1] * grid,
            vision_layers=_count_blocks(state, "visual.transformer.resblocks."),
            vision_width=conv.shape[0],
            patch_size=conv.shape[-1],
            context_length=state["positional_embedding"].shape[0],
            vocab_size=state["token_embedding.weight"].shape[0],
            text_width=state["ln_final.weight"].shape[0],
            text_layers=_count_blocks(state, "transformer.resblocks."),
            quick_gelu=quick_gelu,
        )


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for key in state if (m := pattern.match(key))})


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (in_proj_weight, out_proj)."""

    def __init__(self, width: int):
        super().__init__()
        self.heads = width // HEAD_WIDTH
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, n, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, n, 3, self.heads, -1)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)  # q, k, v: (B, heads, N, head_width)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n, _ = x.shape
        return self.out_proj(x.transpose(1, 2).reshape(b, n, -1))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        q, k, v = self._split(x)
        return self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=causal))

    def value_value(self, x: torch.Tensor) -> torch.Tensor:
        """Attention with the values as queries and keys: each token gathers the tokens whose values resemble
        its own, which keeps patch tokens local and aligned with text (the training-free dense path)."""
        _, _, v = self._split(x)
        return self._merge(F.scaled_dot_product_attention(v, v, v))


class ResidualBlock(nn.Module):
    def __init__(self, width: int, quick_gelu: bool):
        super().__init__()
        self.attn = Attention(width)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()  # a Sequential of named children keeps OpenAI's keys mlp.c_fc / mlp.c_proj
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, quick_gelu: bool):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(width, quick_gelu) for _ in range(layers))


class VisionTower(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        width, scale = config.vision_width, config.vision_width**-0.5
        self.conv1 = nn.Conv2d(3, width, config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(config.grid**2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, config.vision_layers, config.quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, config.embed_dim))

    def forward(
        self, pixels: torch.Tensor, dense_layers: Sequence[int] = (), value_value: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled embeddings (B, E) and, for each block number in `dense_layers` (1 = first block), that block's
        patch tokens in the joint space (B, grid, grid, E): from the value-value path (which starts at the
        first block listed, from the ordinary path's tokens), or with `value_value=False` the ordinary ones."""
        x = self.conv1(pixels)
        b, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(b, 1, -1), x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        wanted, start = set(dense_layers), min(dense_layers, default=len(self.transformer.resblocks) + 1)
        dense, vv = [], None
        blocks = cast(Iterable[ResidualBlock], self.transformer.resblocks)  # typed as Modules
        for number, block in enumerate(blocks, start=1):
            if value_value and number >= start:
                vv = (x if vv is None else vv) + block.attn.value_value(block.ln_1(x))
            x = block(x)
            if number in wanted:
                tokens = vv if value_value else x
                assert tokens is not None  # the value-value path starts at the first block listed
                dense.append((self.ln_post(tokens[:, 1:]) @ self.proj).view(b, h, w, -1))
        return self.ln_post(x[:, 0]) @ self.proj, dense


class CLIP(nn.Module):
    """Image and text towers that map into one joint space; keys as in OpenAI's checkpoints."""

    def __init__(self, config: ClipConfig):
        super().__init__()
        self.config = config
        self.visual = VisionTower(config)
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(config.context_length, config.text_width))
        self.transformer = Transformer(config.text_width, config.text_layers, config.quick_gelu)
        self.ln_final = nn.LayerNorm(config.text_width)
        self.text_projection = nn.Parameter(config.text_width**-0.5 * torch.randn(config.text_width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], quick_gelu: bool = True) -> CLIP:
        """A CLIP whose architecture fits `state` (OpenAI key layout), with its weights loaded as float32."""
        model = cls(ClipConfig.from_state_dict(state, quick_gelu))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        return model.eval()

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) normalised pixels → (B, E) image embeddings (not unit length)."""
        return self.visual(pixels)[0]

    def encode_image_dense(
        self, pixels: torch.Tensor, layers: Sequence[int], value_value: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled embeddings (B, E) and patch tokens (B, grid, grid, E) of the listed blocks in the joint space:
        value-value ones (dense zero-shot maps) or, with `value_value=False`, the ordinary ones."""
        return self.visual(pixels, layers, value_value)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, context_length) token ids → (N, E) text embeddings, read at each text's end marker."""
        end = tokens.argmax(dim=-1)  # the end marker has the highest id in the vocabulary
        # Causal attention: the padding after the last end marker cannot change any embedding, so it is cut
        # (prompts are ~15 of 77 tokens: several times less work).
        length = int(end.max()) + 1
        x = self.token_embedding(tokens[:, :length]) + self.positional_embedding[:length]
        for block in self.transformer.resblocks:
            x = block(x, causal=True)
        x = self.ln_final(x)
        return x[torch.arange(len(x)), end] @ self.text_projection
