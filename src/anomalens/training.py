"""Fitting the trained experts: the decoder alone ("decoder") or fused with the memory expert ("fused").

Leave-one-out, which calibrates the memory experts, does not suit a trained decoder (every normal image
shaped its weights), so a held-out split of the NORMAL training images — HELD_OUT_FRACTION of them, drawn
with the inspector's seed — is kept out of training altogether: the decoder is trained on synthetic
anomalies made from the rest, and the held-out images give the normal statistics that normalise its
maps for fusion and the scores the decision is calibrated on. Test labels are never seen."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .experts import EXPERTS, DecoderExpert, FusedExpert
from .experts.decoder import Progress
from .experts.fusion import decoder_logits, map_statistics, score_statistics

TRAINED_EXPERTS = ("decoder", "fused")
HELD_OUT_FRACTION = 0.25


def held_out_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, held-out indices) of n normal images; at least one of each."""
    if n < 2:
        raise ValueError("the decoder needs at least 2 normal images: one to learn from, one to calibrate on")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = min(n - 1, max(1, round(HELD_OUT_FRACTION * n)))
    return order[n_held:].sort().values, order[:n_held].sort().values


def fit_trained(kind: str, memory_kind: str, config, features: list[torch.Tensor], images: torch.Tensor,
                embed: Callable[[torch.Tensor], list[torch.Tensor]], progress: Progress | None = None,
                text_start: torch.Tensor | None = None):
    """(expert, normal maps, normal scores) for calibration, for kind "decoder" or "fused" (with the
    memory expert `memory_kind`, fitted on all normal images). `images` (N, 3, S, S) uint8 are the normal
    images whose patch `features` are given; `embed` maps a float batch to patch features; `text_start`, the
    decoder's starting embeddings from text (CLIP backbones)."""
    train, held = held_out_split(len(images), config.seed)
    decoder = DecoderExpert.create(config).train(images[train], [f[train] for f in features], embed, progress,
                                                     text_start)
    decoder_normal = decoder.score([f[held] for f in features])
    if kind == "decoder":
        return (decoder, *decoder_normal)
    memory = EXPERTS[memory_kind].create(config).fit(features)
    memory_maps, memory_scores = memory.leave_one_out(features)
    statistics = {"memory_map": map_statistics(memory_maps), "memory_score": score_statistics(memory_scores),
                  "decoder_logit": map_statistics(decoder_logits(decoder_normal[0]))}
    fused = FusedExpert(memory, decoder, statistics)
    return (fused, *fused.combine((memory_maps[held], memory_scores[held]), decoder_normal))
