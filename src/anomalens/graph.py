"""The tensor part of inference as one torch module per fitted model, for export: preprocessed pixels
(B, 3, S, S) in [0, 1] → backbone patch features → the expert's scoring step → smoothed maps (B, S, S) and
image scores (B,). It holds no state beyond the model's own tensors, so exporting it is one call."""

from __future__ import annotations

import torch
from torch import nn

from .features import PatchFeatures
from .maps import Smoothing


class InferenceGraph(nn.Module):
    def __init__(self, features: nn.Module | None, scorer: nn.Module, size: int):
        """`features`: pixels → per-stage patch features (None: the scorer reads pixels itself)."""
        super().__init__()
        self.features, self.scorer, self.smoothing = features, scorer, Smoothing(size)

    @classmethod
    def of(cls, inspector) -> InferenceGraph:
        """The graph of a fitted inspector (its public `backbone`, `expert` and `config`)."""
        features = PatchFeatures(inspector.backbone) if inspector.backbone is not None else None
        return cls(features, inspector.expert.module(), inspector.config.image_size).eval()

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps, scores = self.scorer(self.features(pixels) if self.features is not None else pixels)
        return self.smoothing(maps), scores
