"""Streaming throughput and memory: one series of N points (default 1,000,000) through one
`StreamingDetector`, fed in blocks of 100,000 as a live line would, with the process's peak memory after each.

    PYTHONPATH=src python bench/series_throughput.py [N]
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

from anomalens.series import StreamingDetector


def main(n: int = 1_000_000) -> None:
    rng = np.random.default_rng(0)
    values = np.sin(2 * np.pi * np.arange(n) / 288) + 0.1 * rng.standard_normal(n)
    detector = StreamingDetector()
    peaks, t0 = [], time.perf_counter()
    for i in range(0, n, 100_000):
        detector.update(values[i : i + 100_000])
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    seconds = time.perf_counter() - t0
    print(
        f"{n:,} points in {seconds:.1f} s ({10_000 * seconds / n:.2f} s per 10,000); peak RSS per block (MiB): {peaks}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
