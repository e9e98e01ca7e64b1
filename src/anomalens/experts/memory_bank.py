"""Few-shot expert, no training (AnomalyGPT's few-shot mode): one patch memory bank per feature stage
from k normal references; each query patch is matched against the banks, summed over stages.

Each patch is matched two ways, each used where it does better (1–4 references):
- *Whether* (the image score): 1 − the best cosine similarity, highest over the image's patches. Cosine
  ignores how strongly a patch responds, so an image merely brighter or more contrasted than the references
  is not flagged (battery_weld, 4 references, development harness: image AUROC 0.820 with cosine, 0.768
  with the distance below).
- *Where* (the map): the distance to the nearest bank patch once each image's features are divided by
  the image's mean patch norm. That keeps the local changes of strength that mark most defects and that
  cosine throws away (`bench/results.md`, 4 references, pixel AUROC: battery_weld 0.836 → 0.916,
  magnetic_tile 0.677 → 0.719)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, Field
from torch import nn

from ..features import flatten_patches
from ..fields import STRICT_STATE, Count, FieldError, TensorError, validated
from .base import Expert, ExpertInput, NormalEvidence, NormalImages, register, stored_image_ids, stored_tensor

SELF_EXCLUSION = 3  # with one reference, a patch may not match itself or cells within this radius
MAP_KIND = "image-scaled-l2"  # written into model files: banks saved before maps were distances are refused


def image_scaled(fmap: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → each image's features divided by its mean patch norm (one number per image)."""
    return fmap / fmap.norm(dim=1, keepdim=True).mean((1, 2, 3), keepdim=True).clamp(min=1e-12)


@register
class MemoryBankExpert(Expert):
    name = "memory_bank"
    reads_tiles = True

    def __init__(
        self,
        banks: list[torch.Tensor] | None = None,
        image_ids: torch.Tensor | None = None,
        grid: tuple[int, int] | None = None,
    ):
        self.banks, self.image_ids, self.grid = banks, image_ids, grid

    def fit(self, normal: NormalImages) -> NormalEvidence:
        features = normal.features
        assert features is not None  # a "features" expert is always given them
        _, _, h, w = features[0].shape
        self.grid = (h, w)
        self.banks = [flatten_patches(image_scaled(f)) for f in features]
        owners = normal.owners()
        self.image_ids = owners.repeat_interleave(h * w)
        maps, scores = self.leave_one_out(features, normal)
        return NormalEvidence(maps, scores, "leave-one-out" if int(owners.max()) > 0 else "self-similarity")

    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch anomaly maps (B, h, w) and image scores (B,)."""
        return self.module()(batch.features)

    def module(self) -> MemoryBankScorer:
        assert self.banks is not None
        return MemoryBankScorer(self.banks)

    def memory_rows(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [image_scaled(f).flatten(2).transpose(1, 2) for f in features]

    @torch.inference_mode()
    def row_distances(self, features: list[torch.Tensor], rows: list[torch.Tensor] | None = None) -> torch.Tensor:
        if rows is None:
            return self.score(ExpertInput(features=features))[0]
        banks = [split_bank(r) for r in rows]
        return torch.stack([patch_scores([f[i : i + 1] for f in features], banks)[0] for i in range(len(features[0]))])

    @torch.inference_mode()
    def leave_one_out(self, features: list[torch.Tensor], normal: NormalImages) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the fitted references as if each were new: its own patches (all its tiles') are left out
        of the bank. With a single reference, a patch is matched against the rest of its own image instead."""
        results = self._left_out(features, normal.owners(), lambda i: self._near_cells(normal, i))
        return torch.stack([m for m, _ in results]), torch.stack([s for _, s in results])

    def _left_out(
        self, features: list[torch.Tensor], owners: torch.Tensor, near: Callable[[int], torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(map, score) of each entry `i`, matched against the bank less reference `owners[i]`'s patches (-1: a
        new image, against all of it); with a single reference, against all of it except the cells `near(i)`
        marks. Banks are split once per owner."""
        assert self.banks is not None and self.image_ids is not None
        single = int(self.image_ids.max()) == 0
        results: list = [None] * len(owners)
        for image in owners.unique().tolist():
            banks = [split_bank(b if single else b[self.image_ids != image]) for b in self.banks]
            for i in (owners == image).nonzero()[:, 0].tolist():
                query = [f[i : i + 1] for f in features]
                results[i] = patch_scores(query, banks, forbid=near(i) if single and image >= 0 else None)
        return results

    def _near_cells(self, normal: NormalImages, entry: int) -> torch.Tensor:
        """(cells of `entry` × bank) the bank patches within SELF_EXCLUSION cells of each of its cells, on the
        image's canvas (tiles overlap: a neighbouring tile holds the same place)."""
        assert self.grid is not None
        h, w = self.grid
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        cells = torch.stack([yy.flatten(), xx.flatten()], 1).float()  # (h·w, 2)
        if normal.places is None:
            origins = torch.zeros(len(normal), 2)
        else:
            assert normal.tile_size is not None  # given with the places
            origins = normal.places[:, 1:].float() * (w / normal.tile_size)  # in cells
        bank_cells = (origins[:, None] + cells[None]).reshape(-1, 2)
        offset = (origins[entry] + cells)[:, None] - bank_cells[None]
        return (offset.abs() <= SELF_EXCLUSION + 0.5).all(2)

    def add_normal(self, normal: NormalImages, held_back: torch.Tensor | None = None) -> NormalEvidence:
        """The images' patches appended to the banks, each image a memory image of its own (so the banks are
        those a refit on all of them builds); their evidence scored leaving each out. A held-back patch is
        replaced by its image's nearest patch that is not (the image's grid stays whole, and adds nothing
        there); an image held back everywhere adds nothing."""
        assert self.banks is not None and self.image_ids is not None and normal.features is not None
        _, _, h, w = normal.features[0].shape
        if (h, w) != self.grid:
            raise ValueError(f"features on a {h}×{w} grid cannot join a memory of {self.grid} grids")
        ids = int(self.image_ids.max()) + 1 + normal.owners()
        rows = [flatten_patches(image_scaled(f)) for f in normal.features]
        row_ids = ids.repeat_interleave(h * w)
        if held_back is not None:
            rows, row_ids = without_held_back(rows, row_ids, held_back.flatten())
        self.banks = [torch.cat([b, r]) for b, r in zip(self.banks, rows)]
        self.image_ids = torch.cat([self.image_ids, row_ids])
        return NormalEvidence(*self.left_out(normal.features, ids), "leave-one-out", ids)

    @torch.inference_mode()
    def left_out(self, features: list[torch.Tensor], owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As `leave_one_out`, for untiled images each left out as memory image `owners[j]` (-1: none)."""
        near = cache(lambda: self._near_cells(NormalImages([f[:1] for f in features]), 0))  # the same for all
        results = self._left_out(features, owners, lambda _: near())
        return torch.stack([m for m, _ in results]), torch.stack([s for _, s in results])

    def left_out_scores(self, features: list[torch.Tensor], owners: list[int]) -> torch.Tensor:
        """As `leave_one_out`, for images made from reference `owners[j]` (untiled references only)."""
        return self.left_out(features, torch.tensor(owners))[1]

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        assert self.banks is not None and self.image_ids is not None and self.grid is not None  # fitted or loaded
        tensors = {f"bank{i}": b.contiguous() for i, b in enumerate(self.banks)}
        tensors["image_ids"] = self.image_ids
        return {"kind": self.name, "grid": list(self.grid), "map": MAP_KIND}, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> MemoryBankExpert:
        """Rebuilt from `state()`, once every field is one it can use: one bank per stage, the same patches
        (rows) in each, an image for every row, and whole grids of cells."""
        if isinstance(config, dict) and config.get("map") != MAP_KIND:
            problem = "a few-shot model from an older AnomaLens (unit-length banks, cosine maps): fit it again"
            raise FieldError("map", problem)
        state = validated(MemoryBankState, config)
        banks = [stored_tensor(tensors, f"bank{i}", 2) for i in range(sum(k.startswith("bank") for k in tensors))]
        if not banks:
            raise TensorError("bank0", "missing: a memory bank holds at least one stage")
        rows = len(banks[0])
        for i, bank in enumerate(banks):
            if not bank.is_floating_point() or len(bank) != rows or len(bank) == 0:
                raise TensorError(
                    f"bank{i}", f"must hold {rows or 'some'} rows of numbers, not {bank.dtype} {list(bank.shape)}"
                )
        image_ids = stored_image_ids(tensors, rows)
        h, w = state.grid
        if rows % (h * w):
            raise FieldError("grid", f"{h}×{w} cells an image do not divide the bank's {rows} rows")
        return cls(banks, image_ids, (h, w))


class MemoryBankState(BaseModel):
    """What `MemoryBankExpert.state` writes beside its tensors."""

    model_config = STRICT_STATE
    kind: Literal["memory_bank"]
    grid: Annotated[list[Count], Field(min_length=2, max_length=2)]  # each image's cells (h, w)
    map: str  # MAP_KIND (`from_state` refuses banks of another kind first, as older files)


class MemoryBankScorer(nn.Module):
    """The banks as a torch module: per-stage features (B, C_i, h, w) → (maps (B, h, w), scores (B,)). Each bank
    is kept as unit rows and their lengths (`split_bank`), so one product per stage serves both matches."""

    def __init__(self, banks: list[torch.Tensor]):
        super().__init__()
        self.stages = len(banks)
        for i, bank in enumerate(banks):
            unit, lengths = split_bank(bank)
            self.register_buffer(f"unit{i}", unit)
            self.register_buffer(f"lengths{i}", lengths)

    @torch.inference_mode()
    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        banks = [(getattr(self, f"unit{i}"), getattr(self, f"lengths{i}")) for i in range(self.stages)]
        results = [patch_scores([f[i : i + 1] for f in features], banks) for i in range(len(features[0]))]
        return torch.stack([m for m, _ in results]), torch.stack([s for _, s in results])


def split_bank(bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) bank patches → their unit vectors (N, C) and lengths (N,)."""
    lengths = bank.norm(dim=1)
    return bank / lengths.clamp(min=1e-12)[:, None], lengths


def patch_scores(
    features: list[torch.Tensor], banks: list[tuple[torch.Tensor, torch.Tensor]], forbid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image → its map (h, w) of distances and its score, the highest (1 − cosine) over patches. `banks`:
    per stage, the bank's unit rows and lengths (`split_bank`). `forbid` (patches × bank) marks bank patches a
    query patch may not match (a single reference's own)."""
    _, _, h, w = features[0].shape
    distance, dissimilarity = torch.zeros(h * w), torch.zeros(h * w)
    for fmap, (unit, lengths) in zip(features, banks):
        query = flatten_patches(image_scaled(fmap))
        query_lengths = query.norm(dim=1)
        # one product q·b̂ per stage: cosine = q·b̂ / ‖q‖, and ‖q − b‖² = ‖q‖² + ‖b‖² − 2‖b‖ (q·b̂)
        projected = query @ unit.T
        squared = torch.addcmul(lengths.square()[None], projected, lengths[None], value=-2)
        if forbid is not None:
            projected.masked_fill_(forbid, -float("inf"))
            squared.masked_fill_(forbid, float("inf"))
        distance += (squared.amin(1) + query_lengths.square()).clamp_(min=0).sqrt()
        dissimilarity += 1.0 - projected.amax(1) / query_lengths.clamp(min=1e-12)
    return distance.view(h, w), dissimilarity.max()


def without_held_back(
    rows: list[torch.Tensor], ids: torch.Tensor, held: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-stage rows (and their images) with each `held` row replaced by its image's nearest row that is not
    held (the stages' distances summed); an image whose rows are all held is left out."""
    rows, kept = [r.clone() for r in rows], torch.ones(len(ids), dtype=torch.bool)
    for image in ids.unique():
        own = ids == image
        free, back = (own & ~held).nonzero()[:, 0], (own & held).nonzero()[:, 0]
        if len(free) == 0:
            kept &= ~own
        elif len(back):
            distances = torch.stack([torch.cdist(r[back], r[free]) for r in rows]).sum(0)
            nearest = free[distances.argmin(1)]
            for r in rows:
                r[back] = r[nearest]
    return [r[kept] for r in rows], ids[kept]
