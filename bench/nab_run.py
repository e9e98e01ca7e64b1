"""Run an anomalens series detector over the NAB corpus and score it with NAB's rules, and point-wise.

`--detector streaming` (the default): each file is scored point by point from its past only
(`anomalens.series.StreamingDetector`, defaults unchanged for every file; NAB hands each detector the
probationary length, which sets the rest period after an alarm), and NAB sweeps a threshold over its raw
scores. Any other registered detector (`reference`, what `series detect` uses) is run as `series eval` runs
it, the probation as the normal reference; it decides by itself, so NAB gets one alarm (score 1) at the start
of each anomalous window. Results are written in NAB's layout (``<out>/anomalens/<category>/anomalens_<file>.csv``)
and scored by `anomalens.series.nab` (the scorer behind ``bench/nab_score.py``) under the three profiles.
Beside NAB's score: point-wise F1, false-alarm rate and missed-alarm rate of the detector's own decision
(`SeriesDetector`, as `anomalens series eval`), on NAB's labelled rows after the probation.

    python bench/nab_run.py --nab ../shared/datasets/timeseries/nab --out /tmp/nab-results [--detector reference]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from anomalens.series import SeriesDetector, nab
from anomalens.series.evaluation import file_counts, pointwise
from anomalens.series.load import Series as ValueSeries
from anomalens.series.streaming import StreamingDetector

DETECTOR = "anomalens"


def read_values(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["timestamp"] for r in rows], np.array([float(r["value"]) for r in rows])


def run_file(data: Path, out: Path, detector: str, rows: list[tuple[int, int]]) -> tuple[int, float, dict]:
    """Score one file, write its NAB result CSV; (points, seconds spent scoring, point-wise counts)."""
    times, values = read_values(data)
    skip = nab.probation_length(values.size)
    series = ValueSeries(np.arange(values.size, dtype=float), values[:, None], ["value"], str(data), False)
    t0 = time.perf_counter()
    result = SeriesDetector(series.rows(0, skip), detector).inspect(series, starts_with_reference=True)
    seconds = time.perf_counter() - t0
    if detector == "streaming":  # NAB sweeps its own threshold over the raw online scores (timed alone)
        t0 = time.perf_counter()
        scores = StreamingDetector(learning=skip).update(values)
        seconds = time.perf_counter() - t0
    else:  # a detector that decides by itself: one alarm at each anomalous window's start
        scores = np.zeros(values.size)
        scores[[w.start for w in result.windows if w.start >= skip]] = 1.0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "anomaly_score"])
        w.writerows(zip(times, values.tolist(), np.round(scores, 6).tolist()))
    return values.size, seconds, file_counts(result, rows, skip)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", type=Path, required=True, help="NAB root with data/, labels/, config/")
    ap.add_argument("--out", type=Path, required=True, help="results folder (NAB layout)")
    ap.add_argument("--detector", default="streaming", help="a registered series detector (default: streaming)")
    args = ap.parse_args(argv)

    windows = nab.load_windows(args.nab / "labels" / "combined_windows.json")
    points = seconds = 0.0
    counts = []
    for rel in sorted(windows):
        category, name = rel.split("/")
        data = args.nab / "data" / rel
        rows = nab.window_rows(nab.read_scores_csv(data, "value")[0], windows[rel])
        n, s, c = run_file(data, args.out / DETECTOR / category / f"{DETECTOR}_{name}", args.detector, rows)
        points, seconds = points + n, seconds + s
        counts.append(c)
    series = nab.load_detector_results(args.out, DETECTOR, windows)
    profiles = nab.load_profiles(args.nab / "config" / "profiles.json")
    results = nab.evaluate(series, profiles, sum(len(v) for v in windows.values()))
    print(
        f"{DETECTOR} ({args.detector}): {len(series)} files, {int(points)} points, "
        f"{10_000 * seconds / points:.2f} s per 10,000 points (streaming: its raw scores; else the whole inspection)"
    )
    found, labelled = sum(c["found"] for c in counts), sum(c["windows"] for c in counts)
    metrics = pointwise(counts)
    print(
        f"own decision: {found} of {labelled} windows found, {sum(c['false_alarms'] for c in counts)} false alarms; "
        f"point-wise F1 {metrics['f1']:.3f}, FAR {metrics['false_alarm_rate']:.2%}, MAR {metrics['missed_alarm_rate']:.2%}"
    )
    print(f"{'profile':<20} {'threshold':>10} {'score':>8}")
    for r in results:
        print(f"{r.profile:<20} {r.threshold:>10.4g} {r.normalised:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
