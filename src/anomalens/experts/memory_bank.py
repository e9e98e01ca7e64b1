"""Few-shot expert, no training (AnomalyGPT's few-shot mode): one patch memory bank per feature stage
from k normal references; a query patch's anomaly is 1 − its best cosine similarity to the bank,
summed over stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..features import flatten_patches

SELF_EXCLUSION = 3  # with one reference, a patch may not match itself or cells within this radius


class MemoryBankExpert:
    kind = "memory_bank"

    def __init__(self, banks: list[torch.Tensor] | None = None, image_ids: torch.Tensor | None = None,
                 grid: tuple[int, int] | None = None):
        self.banks, self.image_ids, self.grid = banks, image_ids, grid

    @classmethod
    def create(cls, config) -> "MemoryBankExpert":
        return cls()

    def fit(self, features: list[torch.Tensor]) -> "MemoryBankExpert":
        n, _, h, w = features[0].shape
        self.grid = (h, w)
        self.banks = [F.normalize(flatten_patches(f), dim=1) for f in features]
        self.image_ids = torch.arange(n).repeat_interleave(h * w)
        return self

    @torch.inference_mode()
    def score(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch anomaly maps (B, h, w) and image scores (B,) = each map's maximum."""
        maps = torch.stack([self._patch_scores([f[i:i + 1] for f in features]) for i in range(len(features[0]))])
        return maps, maps.flatten(1).amax(1)

    @torch.inference_mode()
    def leave_one_out(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the fitted references as if each were new: its own patches are left out of the bank.
        With a single reference, a patch is matched against the rest of its own image instead."""
        n = len(features[0])
        maps = []
        for i in range(n):
            if n > 1:
                keep = self.image_ids != i
                maps.append(self._patch_scores([f[i:i + 1] for f in features], keep=keep))
            else:
                maps.append(self._patch_scores(features, forbid=self._near_cells()))
        maps = torch.stack(maps)
        return maps, maps.flatten(1).amax(1)

    def _patch_scores(self, features: list[torch.Tensor], keep: torch.Tensor | None = None,
                      forbid: torch.Tensor | None = None) -> torch.Tensor:
        _, _, h, w = features[0].shape
        total = torch.zeros(h * w)
        for fmap, bank in zip(features, self.banks):
            query = F.normalize(flatten_patches(fmap), dim=1)
            sim = query @ (bank if keep is None else bank[keep]).T
            if forbid is not None:
                sim.masked_fill_(forbid, -1.0)
            total += 1.0 - sim.amax(1)
        return total.view(h, w)

    def _near_cells(self) -> torch.Tensor:
        h, w = self.grid
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        yy, xx = yy.flatten(), xx.flatten()
        return ((yy[:, None] - yy[None]).abs() <= SELF_EXCLUSION) & ((xx[:, None] - xx[None]).abs() <= SELF_EXCLUSION)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        tensors = {f"bank{i}": b.contiguous() for i, b in enumerate(self.banks)}
        tensors["image_ids"] = self.image_ids
        return {"kind": self.kind, "grid": list(self.grid)}, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> "MemoryBankExpert":
        banks = [tensors[f"bank{i}"] for i in range(sum(k.startswith("bank") for k in tensors))]
        return cls(banks, tensors["image_ids"], tuple(config["grid"]))
