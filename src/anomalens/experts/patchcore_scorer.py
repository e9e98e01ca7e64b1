"""PatchCore's scoring step for export: a matrix product and top-k in place of faiss."""

from __future__ import annotations

import torch
from torch import nn

from ..features import flatten_patches


class PatchCoreScorer(nn.Module):
    """Exact PatchCore scoring as a torch module (matrix product + top-k, no faiss): per-stage features →
    (maps (B, h, w), reweighted image scores (B,)); equal to the flat-index search."""

    bank: torch.Tensor

    def __init__(self, bank: torch.Tensor, num_neighbors: int):
        super().__init__()
        self.register_buffer("bank", bank)
        self.num_neighbors = num_neighbors

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = features[0].shape
        query = flatten_patches(torch.cat(features, dim=1))
        squared = (
            torch.addmm(self.bank.pow(2).sum(1)[None], query, self.bank.T, alpha=-2) + query.pow(2).sum(1)[:, None]
        )
        sq_dist, nearest = squared.min(1)
        dist = sq_dist.clamp(min=0).sqrt().view(b, h * w)
        nearest = nearest.view(b, h * w)
        worst = dist.argmax(1)
        rows = torch.arange(b)
        anchor = self.bank[nearest[rows, worst]]
        k = min(self.num_neighbors, len(self.bank))
        support = torch.cdist(anchor, self.bank).topk(k, dim=1, largest=False).indices
        worst_patch = query.view(b, h * w, -1)[rows, worst]
        support_dist = torch.cdist(worst_patch[:, None], self.bank[support])[:, 0]
        weight = 1 - torch.softmax(support_dist, dim=1)[:, 0]
        return dist.view(b, h, w), weight * dist[rows, worst]
