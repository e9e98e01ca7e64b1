"""Run anomalens' streaming detector over the NAB corpus and score it with NAB's rules.

Each file is scored point by point from its past only (`anomalens.series.StreamingDetector`, defaults
unchanged for every file; NAB hands each detector the probationary length, which sets the rest period
after an alarm). Results are written in NAB's layout (``<out>/anomalens/<category>/anomalens_<file>.csv``)
and scored by ``bench/nab_score.py`` under the three profiles.

    python bench/nab_run.py --nab ../shared/datasets/timeseries/nab --out /tmp/nab-results
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nab_score  # noqa: E402  (a sibling script, not a package)
from anomalens.series.streaming import StreamingDetector  # noqa: E402

DETECTOR = "anomalens"


def read_values(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["timestamp"] for r in rows], np.array([float(r["value"]) for r in rows])


def run_file(data: Path, out: Path) -> tuple[int, float]:
    """Score one file, write its NAB result CSV; (points, seconds spent scoring)."""
    times, values = read_values(data)
    t0 = time.perf_counter()
    scores = StreamingDetector(learning=nab_score.probation_length(values.size)).update(values)
    seconds = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "anomaly_score"])
        w.writerows(zip(times, values.tolist(), np.round(scores, 6).tolist()))
    return values.size, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", type=Path, required=True, help="NAB root with data/, labels/, config/")
    ap.add_argument("--out", type=Path, required=True, help="results folder (NAB layout)")
    args = ap.parse_args(argv)

    windows = nab_score.load_windows(args.nab / "labels" / "combined_windows.json")
    points = seconds = 0.0
    for rel in sorted(windows):
        category, name = rel.split("/")
        n, s = run_file(args.nab / "data" / rel, args.out / DETECTOR / category / f"{DETECTOR}_{name}")
        points, seconds = points + n, seconds + s
    series = nab_score.load_detector_results(args.out, DETECTOR, windows)
    profiles = nab_score.load_profiles(args.nab / "config" / "profiles.json")
    results = nab_score.evaluate(series, profiles, sum(len(v) for v in windows.values()))
    print(f"{DETECTOR}: {len(series)} files, {int(points)} points, {10_000 * seconds / points:.2f} s per 10,000 points")
    print(f"{'profile':<20} {'threshold':>10} {'score':>8}")
    for r in results:
        print(f"{r.profile:<20} {r.threshold:>10.4g} {r.normalised:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
