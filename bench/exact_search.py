"""Exact nearest-neighbour search micro-benchmark: 1,024 queries against a 40,000 × 152 bank (float32, k = 1, and
k = 9 for 8 queries, PatchCore's reweighting), faiss's flat index as installed (its bundled OpenBLAS) against
`anomalens.experts.neighbors.ExactSearch` (torch's matrix product), the calls taking turns; then PatchCore's own
shape (a batch of 8 images: 8,192 queries against a 4,199-patch bank).

Each figure is the median over the repeats; ratio = the median of each repeat's faiss ms ÷ ExactSearch ms.
Results: bench/exact_search.md (with the kernels each library reported)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from anomalens.experts.neighbors import ExactSearch, faiss_kernels_fit_cpu
from kernels import kernels, markdown
from run_bench import machine

HERE = Path(__file__).parent
SHAPES = [(1024, 40_000, 1), (8, 40_000, 9), (8192, 4199, 1)]  # queries, bank rows, k


def measure(n_query: int, n_bank: int, k: int, repeats: int, dim: int = 152) -> dict:
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((n_bank, dim), dtype=np.float32)
    query = rng.standard_normal((n_query, dim), dtype=np.float32)
    index = faiss.IndexFlatL2(dim)
    index.add(bank)
    exact = ExactSearch(torch.from_numpy(bank), "torch")
    torch_query = torch.from_numpy(query)
    expected_d, expected_i = index.search(query, k)
    d, i = exact.search(torch_query, k)
    agree = float((i.numpy() == expected_i).mean())
    worst = float((np.abs(d.numpy() - expected_d) / np.maximum(expected_d, 1e-12)).max())
    calls = {"faiss": lambda: index.search(query, k), "torch": lambda: exact.search(torch_query, k)}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()  # first-run allocations
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    ratios = [f / t for f, t in zip(times["faiss"], times["torch"])]
    return {
        "shape": f"{n_query:,} × {n_bank:,} × {dim}, k = {k}",
        "faiss_ms": 1000 * statistics.median(times["faiss"]),
        "torch_ms": 1000 * statistics.median(times["torch"]),
        "ratio": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
        "same_rows": agree,
        "max_rel_diff": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="*", default=[torch.get_num_threads(), 1])
    parser.add_argument("--out", type=Path, default=HERE / "exact_search.md")
    args = parser.parse_args()
    rows = []
    for threads in dict.fromkeys(args.threads):
        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(threads):  # faiss's OpenBLAS too
            for shape in SHAPES:
                rows.append(measure(*shape, args.repeats) | {"threads": threads})
                print(rows[-1], flush=True)
    command = "python bench/exact_search.py " + " ".join(sys.argv[1:])
    lines = [
        "# Exact nearest-neighbour search: faiss's flat index vs ExactSearch (torch)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on: {machine()}.",
        f"Command: `{command.strip()}`.",
        "",
        f"Engine `ExactSearch(engine='auto')` takes on this machine: **{'faiss' if faiss_kernels_fit_cpu() else 'torch'}**"
        " (faiss where its OpenBLAS picked kernels of this CPU's generation, torch's MKL where it did not).",
        "",
        (__doc__ or "").strip(),
        "",
        "| shape | threads | faiss ms | ExactSearch ms | faiss ÷ ExactSearch | same rows | max rel. distance diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        low, high = row["ratio_range"]
        lines.append(
            f"| {row['shape']} | {row['threads']} | {row['faiss_ms']:.1f} | {row['torch_ms']:.1f} "
            f"| {row['ratio']:.2f} ({low:.2f}–{high:.2f}) | {row['same_rows']:.4f} | {row['max_rel_diff']:.1e} |"
        )
    lines += ["", "Kernels in this process:", "", *markdown(kernels())]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
