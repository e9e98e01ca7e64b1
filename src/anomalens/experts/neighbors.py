"""Exact k-nearest-neighbour search on torch's matrix product, the one every exact search of the experts uses.

A squared L2 distance ‖q − b‖² is ‖q‖² + (‖b‖² − 2 q·b); the bracket comes out of one matrix product of
[−2q, 1] with [b, ‖b‖²] (the bank's squared lengths ride along as one more column, prepared once per bank),
so a block of distances costs one product and one reading pass, as in faiss's flat index. The k smallest of
each block are kept and merged, ‖q‖² is added last (it does not change which rows are nearest) and rounding's
negatives are clamped to 0, as faiss does.

Two engines give these answers; the faster for this CPU is taken (`engine="auto"`). faiss's flat index runs
its products on the OpenBLAS its wheel bundles (0.3.15), which takes some AVX-512 Xeons for a generic SSE3 CPU
(`Prescott`) and is 2.8× slower there (issue 35: 251 ms as installed, 91 ms with AVX-512 kernels, for
1,024 × 40,000 × 152). torch's product runs on MKL, which detects the CPU's vector units itself. Where that
OpenBLAS picked kernels of the CPU's own generation, faiss is kept: on an AMD EPYC (Zen 4, its `Zen` kernels)
it is 10–15 % faster than MKL (`bench/exact_search.md`). Queries and bank are taken in blocks of at most
BLOCK_QUERIES × BLOCK_BANK distances (16 MB of float32), so memory does not grow with the bank or the batch."""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch

BLOCK_QUERIES = 1_024
BLOCK_BANK = 4_096
GROUP = 128  # a nearest row is found as the smallest group minimum, then its place in that group
# OpenBLAS's names of cores older than AVX2: kernels a generation or more behind any CPU this runs on
PRE_AVX2_CORES = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge", "barcelona"}
Engine = Literal["auto", "torch", "faiss"]


@functools.cache
def faiss_kernels_fit_cpu() -> bool:
    """Whether faiss's bundled OpenBLAS runs kernels of this CPU's generation: not a pre-AVX2 core on a CPU
    that has AVX2 (threadpoolctl reads which core it picked)."""
    import faiss  # noqa: F401  (loads its OpenBLAS)
    from threadpoolctl import threadpool_info

    with open("/proc/cpuinfo") as cpuinfo:
        has_avx2 = " avx2" in cpuinfo.read()
    for library in threadpool_info():
        if library["internal_api"] == "openblas" and "faiss" in library["filepath"]:
            return not (has_avx2 and str(library.get("architecture", "")).lower() in PRE_AVX2_CORES)
    return True  # faiss on another BLAS: trusted to detect the CPU as torch's does


def _argmin_rows(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's minimum and the first column holding it, as `block.min(1)`, whose index search is not
    vectorised (10× slower than `amin` on 1,024 × 4,096): vectorised minima of groups of GROUP columns, then
    the winning group's own argmin."""
    rows, columns = block.shape
    if columns % GROUP:
        return block.min(1)
    grouped = block.view(rows, columns // GROUP, GROUP)
    value, group = grouped.amin(2).min(1)
    within = grouped[torch.arange(rows), group].argmin(1)
    return value, group * GROUP + within


class ExactSearch:
    """An exact L2 nearest-neighbour index of `bank` (N, C): the bank prepared once, searched by `search`."""

    def __init__(self, bank: torch.Tensor, engine: Engine = "auto"):
        bank = bank.detach().float()
        if len(bank) == 0:
            raise ValueError("ExactSearch: empty bank")
        self.ntotal = len(bank)
        self.engine = ("faiss" if faiss_kernels_fit_cpu() else "torch") if engine == "auto" else engine
        if self.engine == "faiss":
            import faiss

            self.flat = faiss.IndexFlatL2(bank.shape[1])
            self.flat.add(bank.contiguous().numpy())
        else:
            self.prepared = torch.cat([bank, bank.pow(2).sum(1, keepdim=True)], 1).contiguous()  # [b, ‖b‖²]

    @torch.inference_mode()
    def search(
        self, query: torch.Tensor, k: int = 1, block_queries: int = BLOCK_QUERIES, block_bank: int = BLOCK_BANK
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k bank rows nearest to each query row (Q, C): squared distances (Q, k), ascending, and their bank
        indices (Q, k) int64. `k` is capped at the bank's size."""
        query = query.detach().float()
        n, m = len(query), self.ntotal
        k = min(k, m)
        if self.engine == "faiss":
            found = self.flat.search(np.ascontiguousarray(query.numpy()), k)
            return torch.from_numpy(found[0]), torch.from_numpy(found[1])
        distances, indices = torch.empty(n, k), torch.empty(n, k, dtype=torch.long)
        # one buffer for every block's distances: a fresh 16 MB tensor per product costs its page faults each time
        buffer = torch.empty(min(n, block_queries) * min(m, block_bank))
        for start in range(0, n, block_queries):
            q = query[start : start + block_queries]
            scaled = torch.cat([q * -2, torch.ones(len(q), 1)], 1)  # [−2q, 1]
            best_d, best_i = torch.empty(0), torch.empty(0, dtype=torch.long)
            for offset in range(0, m, block_bank):
                stop = min(offset + block_bank, m)
                block = buffer[: len(q) * (stop - offset)].view(len(q), stop - offset)
                torch.mm(scaled, self.prepared[offset:stop].T, out=block)  # ‖b‖² − 2 q·b
                if k == 1:
                    d, i = _argmin_rows(block)
                    d, i = d[:, None], i[:, None]
                else:
                    d, i = block.topk(min(k, stop - offset), dim=1, largest=False)
                i = i + offset
                if offset == 0:
                    best_d, best_i = d, i
                elif k == 1:
                    closer = d < best_d  # strict: the earlier row wins a tie, as in one pass over the bank
                    best_d, best_i = torch.where(closer, d, best_d), torch.where(closer, i, best_i)
                else:
                    best_d, order = torch.cat([best_d, d], 1).topk(k, dim=1, largest=False)
                    best_i = torch.cat([best_i, i], 1).gather(1, order)
            distances[start : start + len(q)] = (best_d + q.pow(2).sum(1, keepdim=True)).clamp_(min=0)
            indices[start : start + len(q)] = best_i
        return distances, indices
