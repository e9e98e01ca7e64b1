"""Greedy k-center coreset (PatchCore): a subset whose patches cover the whole memory bank, so rare
normal patterns survive subsampling, unlike with random sampling.

The plain algorithm streams the whole bank through memory once per pick (N·M work). Two things keep
it fast on a CPU, as in PatchCore's reference: distances are taken in a random projection to
PROJECTED_DIM dimensions (Johnson–Lindenstrauss keeps them nearly intact), and a large bank is first
reduced chunk by chunk (each chunk stays in cache), then the union of the chunk coresets is reduced
once more. Each step keeps the k-center property locally.
"""

from __future__ import annotations

import torch

from .neighbors import ExactSearch

CHUNK = 8_192  # patches per first-stage chunk: 8 images at 256 px
PROJECTED_DIM = 64


def greedy_coreset(x: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """Indices of `size` rows of x (N, D) chosen greedily, each farthest from those already chosen."""
    n = x.shape[0]
    if size >= n:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed)
    if x.shape[1] > PROJECTED_DIM:
        x = x @ torch.randn(x.shape[1], PROJECTED_DIM, generator=generator)
    if n > 4 * CHUNK and 2 * size < n:
        per_chunk = 2 * size / n  # oversample, so the final pass still has a choice to make
        picks = [
            start + _greedy(x[start : start + CHUNK], max(1, round(per_chunk * min(CHUNK, n - start))), generator)
            for start in range(0, n, CHUNK)
        ]
        candidates = torch.cat(picks)
        return candidates[_greedy(x[candidates], size, generator)]
    return _greedy(x, size, generator)


def extend_coreset(coreset: torch.Tensor, x: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """Indices of `size` rows of x (N, D) that extend `coreset` (M, D) in place of a refit: picked greedily as
    `greedy_coreset` picks, each farthest from the coreset so far, the rows it already holds included (in the
    same projection, drawn from the same seed)."""
    if size >= x.shape[0]:
        return torch.arange(x.shape[0])
    generator = torch.Generator().manual_seed(seed)
    if x.shape[1] > PROJECTED_DIM:
        projection = torch.randn(x.shape[1], PROJECTED_DIM, generator=generator)
        x, coreset = x @ projection, coreset @ projection
    return _greedy(x, size, generator, ExactSearch(coreset, engine="torch").search(x)[0][:, 0])


def _greedy(x: torch.Tensor, size: int, generator: torch.Generator, start: torch.Tensor | None = None) -> torch.Tensor:
    """`start`: each row's squared distance to rows chosen before (None: none; the first pick is random)."""
    size = min(size, x.shape[0])
    x = x.float().contiguous()
    sq = (x * x).sum(1)
    chosen = torch.empty(size, dtype=torch.long)
    if start is None:
        min_dist = torch.full_like(sq, float("inf"))
        j = int(torch.randint(x.shape[0], (1,), generator=generator))
    else:
        min_dist = start.float().clone()
        j = int(torch.argmax(min_dist))
    for i in range(size):
        chosen[i] = j
        # ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖², one matrix-vector product per pick
        dist = torch.addmv(sq, x, x[j], alpha=-2.0).add_(sq[j])
        torch.minimum(min_dist, dist, out=min_dist)
        j = int(torch.argmax(min_dist))
    return chosen
