"""The exact nearest-neighbour search every exact route uses, against a float64 brute force in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalens.experts.neighbors import GROUP, ExactSearch


def all_distances(query: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """(Q, N) squared distances in float64, one query at a time (no (Q, N, C) array)."""
    bank = bank.astype(np.float64)
    return np.stack([((bank - q.astype(np.float64)) ** 2).sum(1) for q in query])


def brute_force(query: np.ndarray, bank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    squared = all_distances(query, bank)
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(squared, order, 1), order


@pytest.mark.parametrize(
    ("n_query", "n_bank", "dim", "k", "block_queries", "block_bank"),
    [
        (1, 1, 3, 1, 1024, 4096),  # a single row each
        (37, 5, 8, 9, 1024, 4096),  # k above the bank's size: capped
        (300, 1000, 152, 1, 64, 256),  # several query and bank blocks, each bank block a multiple of GROUP
        (300, 1000, 152, 1, 64, 300),  # ragged bank blocks (not multiples of GROUP) and a ragged last block
        (129, 2 * GROUP + 1, 16, 1, 128, 4096),  # one query past a block, one row past the groups
        (200, 777, 40, 9, 50, 128),  # top-k merged across bank blocks
        (64, 513, 152, 4, 1024, 512),  # one row in the last bank block
        (500, 4199, 152, 1, 1024, 4096),  # PatchCore's shapes: 4,199 patches, a 103-row last block
    ],
)
@pytest.mark.parametrize("engine", ["torch", "faiss"])
def test_exact_search_equals_brute_force(n_query, n_bank, dim, k, block_queries, block_bank, engine):
    rng = np.random.default_rng(n_query * 7 + n_bank)
    bank = rng.standard_normal((n_bank, dim)).astype(np.float32) * 3 + 1
    query = rng.standard_normal((n_query, dim)).astype(np.float32) * 3 + 1
    expected_d, expected_i = brute_force(query, bank, min(k, n_bank))
    d, i = ExactSearch(torch.from_numpy(bank), engine).search(torch.from_numpy(query), k, block_queries, block_bank)
    assert d.shape == i.shape == (n_query, min(k, n_bank)) and d.dtype == torch.float32 and i.dtype == torch.int64
    np.testing.assert_allclose(d.numpy(), expected_d, rtol=1e-4, atol=1e-3)
    assert (np.diff(d.numpy(), axis=1) >= 0).all()  # ascending
    # the rows found are at the distances found (ties between rows may come in either order)
    recomputed = ((query[:, None].astype(np.float64) - bank[i.numpy()]) ** 2).sum(2)
    np.testing.assert_allclose(recomputed, expected_d, rtol=1e-4, atol=1e-3)
    gaps = np.diff(np.sort(all_distances(query, bank), axis=1)[:, : k + 1], axis=1)
    clear = (gaps > 1e-2).all(1)  # no near tie among the first k + 1: the very rows must agree
    assert clear.mean() > 0.5
    assert (i.numpy()[clear] == expected_i[clear]).all()


def test_exact_search_finds_itself_and_the_first_of_duplicates():
    rng = np.random.default_rng(0)
    bank = torch.from_numpy(rng.standard_normal((600, 24)).astype(np.float32))
    bank[400] = bank[3]  # a duplicate, in another group and block: the first row wins, as in one pass
    d, i = ExactSearch(bank).search(bank)
    assert (d[:, 0] >= 0).all() and d.max() < 1e-3
    expected = torch.arange(600)
    expected[400] = 3
    assert torch.equal(i[:, 0], expected)
    _, i = ExactSearch(bank, "torch").search(bank, 1, block_queries=100, block_bank=GROUP)
    assert torch.equal(i[:, 0], expected)


def test_the_engine_is_faiss_only_where_its_blas_fits_the_cpu(monkeypatch):
    from anomalens.experts import neighbors

    bank = torch.ones(4, 3)
    monkeypatch.setattr(neighbors, "faiss_kernels_fit_cpu", lambda: False)
    assert ExactSearch(bank).engine == "torch"
    monkeypatch.setattr(neighbors, "faiss_kernels_fit_cpu", lambda: True)
    assert ExactSearch(bank).engine == "faiss"


def test_empty_bank_is_refused():
    with pytest.raises(ValueError):
        ExactSearch(torch.empty(0, 4))
