"""Full-shot expert (PatchCore): a greedy-coreset memory bank of all normal training patches,
nearest-neighbour search, and PatchCore's image-score reweighting.

Search is exact (`neighbors.ExactSearch`, torch's matrix product, which runs on the CPU's widest kernels) for
banks of up to EXACT_MAX patches. Larger banks, which come from large
training sets, use an inverted-file index that visits PROBE_FRACTION of its cells: exact distances to
the patches it visits, a nearest neighbour missed only rarely, and detection speed that no longer grows
with the bank (faiss's IndexIVFFlat). Its cell centres are stored in the model file, so a reloaded model scores identically."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import faiss
import numpy as np
import torch
from pydantic import BaseModel, ValidationInfo, field_validator

from ..features import flatten_patches
from ..fields import STRICT_STATE, Count, FieldError, Fraction, Seed, TensorError, validated
from .base import (
    Expert,
    ExpertInput,
    ExpertSettings,
    NormalEvidence,
    NormalImages,
    register,
    stored_image_ids,
    stored_tensor,
)
from .coreset import extend_coreset, greedy_coreset
from .neighbors import ExactSearch
from .patchcore_scorer import PatchCoreScorer

EXACT_MAX = 8_192  # banks up to this size are searched exhaustively
PATCHES_PER_CELL = 64  # inverted-file cells hold about this many bank patches …
PROBE_FRACTION = 1 / 16  # … and a query visits this share of the cells

Searcher = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]  # (query, k) → squared distances, rows


class PatchCoreSettings(ExpertSettings):
    coreset_ratio: float = 0.1  # the share of normal patches the bank keeps
    max_bank: int = 16_384  # caps the bank so detection speed does not grow with the training set
    num_neighbors: int = 9  # the bank patches an image score is reweighted by

    @field_validator("coreset_ratio")
    @classmethod
    def _fraction(cls, ratio: float) -> float:
        if not 0 < ratio <= 1:
            raise ValueError(f"must be above 0 and at most 1, not {ratio:g}")
        return ratio

    @field_validator("max_bank", "num_neighbors")
    @classmethod
    def _bank_count(cls, n: int, info: ValidationInfo) -> int:
        if n < 1:
            raise ValueError(f"must be at least 1, not {n}")
        max_bank = info.data.get("max_bank") if info.field_name == "num_neighbors" else None  # None: refused
        within = (info.context or {}).get("within", "")  # where max_bank sits, as the message names it
        if max_bank is not None and n > max_bank:
            raise ValueError(f"must be at most {within}max_bank ({max_bank}), the most rows a bank holds, not {n}")
        return n


@register
class PatchCoreExpert(Expert):
    name = "patchcore"
    reads_tiles = True
    Settings = PatchCoreSettings

    def __init__(
        self,
        coreset_ratio: float = PatchCoreSettings.model_fields["coreset_ratio"].default,
        max_bank: int = PatchCoreSettings.model_fields["max_bank"].default,
        num_neighbors: int = PatchCoreSettings.model_fields["num_neighbors"].default,
        seed: int = 0,
        bank: torch.Tensor | None = None,
        image_ids: torch.Tensor | None = None,
        centroids: torch.Tensor | None = None,
    ):
        self.coreset_ratio, self.max_bank, self.num_neighbors, self.seed = coreset_ratio, max_bank, num_neighbors, seed
        self.bank, self.image_ids, self.centroids = bank, image_ids, centroids
        self.index: faiss.IndexIVFFlat | ExactSearch | None = None
        if bank is not None:
            self._build_index()

    @classmethod
    def create(cls, config, n_normal: int | None = None) -> PatchCoreExpert:
        settings = cls.own_settings(config)
        assert isinstance(settings, PatchCoreSettings)  # its Settings
        return cls(settings.coreset_ratio, settings.max_bank, settings.num_neighbors, config.seed)

    def fit(self, normal: NormalImages) -> NormalEvidence:
        assert normal.features is not None  # a "features" expert is always given them
        owners = normal.owners()
        self.fit_bank(normal.features, owners)
        maps, scores = self.leave_one_out(normal.features, owners)
        return NormalEvidence(maps, scores, "leave-one-out" if int(owners.max()) > 0 else "self-similarity")

    def fit_bank(self, features: list[torch.Tensor], owners: torch.Tensor | None = None) -> PatchCoreExpert:
        """`owners`: the image each entry (tile) belongs to (None: each entry is an image)."""
        n, _, h, w = features[0].shape
        patches = flatten_patches(torch.cat(features, dim=1))
        size = min(self.max_bank, max(1, math.ceil(self.coreset_ratio * len(patches))))
        keep = greedy_coreset(patches, size, self.seed)
        self.bank = patches[keep].contiguous()
        self.image_ids = (torch.arange(n) if owners is None else owners).repeat_interleave(h * w)[keep]
        self._build_index()
        return self

    def add_normal(self, normal: NormalImages, held_back: torch.Tensor | None = None) -> NormalEvidence:
        """The coreset extended by the images' patches farthest from it (as many as the coreset ratio gives
        them, `coreset.extend_coreset`), held-back patches never among them; each image a memory image of its
        own; their evidence scored leaving each out. Taught rows may take the bank past max_bank: a correction
        is never dropped for room."""
        assert self.bank is not None and self.image_ids is not None and normal.features is not None
        _, _, h, w = normal.features[0].shape
        ids = int(self.image_ids.max()) + 1 + normal.owners()
        patches = flatten_patches(torch.cat(normal.features, dim=1))
        row_ids = ids.repeat_interleave(h * w)
        if held_back is not None:
            patches, row_ids = patches[~held_back.flatten()], row_ids[~held_back.flatten()]
        size = max(1, math.ceil(self.coreset_ratio * len(patches)))
        keep = extend_coreset(self.bank, patches, size, self.seed) if len(patches) else torch.arange(0)
        self.bank = torch.cat([self.bank, patches[keep]]).contiguous()
        self.image_ids = torch.cat([self.image_ids, row_ids[keep]])
        self.max_bank = max(self.max_bank, len(self.bank))
        self._build_index()
        return NormalEvidence(*self.left_out(normal.features, ids), "leave-one-out", ids)

    def _build_index(self) -> None:
        assert self.bank is not None
        n, dim = self.bank.shape
        if n <= EXACT_MAX:
            self.index, self.centroids = ExactSearch(self.bank), None
            return
        if self.centroids is None:
            kmeans = faiss.Kmeans(dim, n // PATCHES_PER_CELL, niter=20, seed=self.seed + 1)
            kmeans.train(self.bank.numpy())
            assert kmeans.centroids is not None  # set by train
            self.centroids = torch.from_numpy(kmeans.centroids.copy())
        quantizer = faiss.IndexFlatL2(dim)
        quantizer.add(self.centroids.numpy())
        self.index = ivf = faiss.IndexIVFFlat(quantizer, dim, len(self.centroids))
        ivf.is_trained = True  # the cells are given, not learned again: reloads are identical
        ivf.nprobe = max(1, round(len(self.centroids) * PROBE_FRACTION))
        self._quantizer = quantizer  # the index does not own it
        ivf.add(self.bank.numpy())

    def _searcher(self, exclude_image: int | None) -> Searcher:
        """A search over the bank less `exclude_image`'s patches (None: the whole bank): `(query, k)` → squared
        distances and bank rows (Q, k). Leaving an image out of an exact bank searches the other rows (one
        ExactSearch of them); an inverted file filters them out of its cells."""
        assert self.index is not None and self.image_ids is not None and self.bank is not None
        if isinstance(self.index, ExactSearch):
            if exclude_image is None:
                return self.index.search
            rows = torch.nonzero(self.image_ids != exclude_image)[:, 0]
            others = ExactSearch(self.bank[rows])

            def search_others(query: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
                distances, nearest = others.search(query, k)
                return distances, rows[nearest]

            return search_others
        ivf, params = self.index, None
        if exclude_image is not None:
            excluded = np.flatnonzero(self.image_ids.numpy() == exclude_image).astype("int64")
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)  # type: ignore[call-arg]

        def search_cells(query: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
            sq_dist, nearest = ivf.search(query.contiguous().numpy(), k, params=params)
            # a cell may hold fewer than k rows that are allowed: faiss pads with −1, read as row 0
            return torch.from_numpy(sq_dist), torch.from_numpy(np.maximum(nearest, 0))

        return search_cells

    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        assert batch.features is not None
        return self.search(batch.features)

    def memory_rows(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.cat(features, dim=1).flatten(2).transpose(1, 2)]  # one stage: the stages side by side

    @torch.inference_mode()
    def row_distances(self, features: list[torch.Tensor], rows: list[torch.Tensor] | None = None) -> torch.Tensor:
        if rows is None:
            return self.search(features)[0]
        b, _, h, w = features[0].shape
        return torch.cdist(self.memory_rows(features)[0], rows[0][None]).amin(2).view(b, h, w)

    @torch.inference_mode()
    def search(
        self, features: list[torch.Tensor], exclude_image: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch anomaly maps (B, h, w) as L2 distance to the nearest bank patch, and reweighted image scores."""
        b, _, h, w = features[0].shape
        query = flatten_patches(torch.cat(features, dim=1)).contiguous()
        searcher = self._searcher(exclude_image)
        sq_dist, nearest = searcher(query, 1)
        dist = sq_dist[:, 0].clamp(min=0).sqrt().view(b, h * w)
        nearest_ids = nearest[:, 0].view(b, h * w)
        return dist.view(b, h, w), self._reweight(query.view(b, h * w, -1), dist, nearest_ids, searcher)

    def _reweight(self, query, dist, nearest, searcher: Searcher) -> torch.Tensor:
        """PatchCore eq. 7: the worst patch's score is damped when its nearest bank patch sits in a dense
        neighbourhood that is nearly as close (the patch is merely unusual, not anomalous)."""
        worst = dist.argmax(1)
        batch = torch.arange(len(dist))
        score = dist[batch, worst]
        assert self.bank is not None
        anchor = self.bank[nearest[batch, worst]]
        _, support = searcher(anchor, self.num_neighbors)  # k is capped at the rows searched
        support_dist = torch.cdist(query[batch, worst][:, None], self.bank[support])[:, 0]
        weight = 1 - torch.softmax(support_dist, dim=1)[:, 0]
        return weight * score

    def leave_one_out(
        self, features: list[torch.Tensor], owners: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of training images with their own patches (all their tiles') excluded from the bank
        (new-image proxies); an image's tiles are searched together."""
        owners = torch.arange(len(features[0])) if owners is None else owners
        maps, scores = torch.empty(len(owners), *features[0].shape[2:]), torch.empty(len(owners))
        for image in owners.unique().tolist():
            entries = (owners == image).nonzero()[:, 0]
            left_out = image if image >= 0 else None  # -1: an image not in the bank
            maps[entries], scores[entries] = self.search([f[entries] for f in features], exclude_image=left_out)
        return maps, scores

    def left_out(self, features: list[torch.Tensor], owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.leave_one_out(features, owners)

    def left_out_scores(self, features: list[torch.Tensor], owners: list[int]) -> torch.Tensor:
        return self.leave_one_out(features, torch.tensor(owners))[1]

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        assert self.bank is not None and self.image_ids is not None  # fitted or loaded
        config = {
            "kind": self.name,
            "coreset_ratio": self.coreset_ratio,
            "max_bank": self.max_bank,
            "num_neighbors": min(self.num_neighbors, len(self.bank)),  # as many as it searches
            "seed": self.seed,
        }
        tensors = {"bank": self.bank, "image_ids": self.image_ids}
        if self.centroids is not None:
            tensors["centroids"] = self.centroids
        return config, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> PatchCoreExpert:
        """Rebuilt from `state()`, once every field is one it can use: a bank of float32 rows (faiss's type),
        no more of them than max_bank, neighbours among them, an image for every row, and cell centres of
        the bank's width."""
        state = validated(PatchCoreState, config)
        bank = stored_tensor(tensors, "bank", 2)
        if bank.dtype != torch.float32 or len(bank) == 0:
            raise TensorError("bank", f"must be float32 rows, not {bank.dtype} {list(bank.shape)}")
        rows = len(bank)
        if rows > state.max_bank:
            raise FieldError("max_bank", f"the bank holds {rows} rows, more than max_bank {state.max_bank}")
        if state.num_neighbors > rows:
            raise FieldError("num_neighbors", f"must be at most the bank's {rows} rows, not {state.num_neighbors}")
        image_ids = stored_image_ids(tensors, rows)
        centroids = stored_tensor(tensors, "centroids", 2) if "centroids" in tensors else None
        if centroids is not None and (
            centroids.dtype != torch.float32 or centroids.shape[1] != bank.shape[1] or len(centroids) == 0
        ):
            problem = f"must be float32 rows of the bank's width {bank.shape[1]}, not {centroids.dtype} {list(centroids.shape)}"
            raise TensorError("centroids", problem)
        options = state.model_dump(exclude={"kind"})
        return cls(**options, bank=bank, image_ids=image_ids, centroids=centroids)

    def module(self) -> PatchCoreScorer:
        if self.centroids is not None:
            raise NotImplementedError(
                "a PatchCore bank above EXACT_MAX patches is searched with an inverted file, "
                "which cannot be exported yet"
            )
        assert self.bank is not None
        return PatchCoreScorer(self.bank, self.num_neighbors)


class PatchCoreState(BaseModel):
    """What `PatchCoreExpert.state` writes beside its tensors."""

    model_config = STRICT_STATE
    kind: Literal["patchcore"]
    coreset_ratio: Fraction
    max_bank: Count
    num_neighbors: Count  # at most the bank's rows (`from_state`)
    seed: Seed
