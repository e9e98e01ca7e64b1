"""Score a detector's raw NAB outputs with NAB's rules: the CLI of `anomalens.series.nab` (the scorer).

python bench/nab_score.py RESULTS_DIR --detector NAME [--nab ROOT] [--published-thresholds]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from anomalens.series.nab import evaluate, load_detector_results, load_profiles, load_windows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Score a detector's raw NAB outputs with NAB's rules.")
    ap.add_argument("results_dir", type=Path, help="folder holding <detector>/<category>/<detector>_<file>.csv")
    ap.add_argument("--detector", required=True)
    ap.add_argument(
        "--nab", type=Path, default=None, help="NAB root with labels/ and config/ (default: parent of RESULTS_DIR)"
    )
    ap.add_argument(
        "--published-thresholds", action="store_true", help="score at config/thresholds.json instead of optimising"
    )
    args = ap.parse_args(argv)

    root = args.nab or args.results_dir.resolve().parent
    t0 = time.perf_counter()
    windows = load_windows(root / "labels" / "combined_windows.json")
    profiles = load_profiles(root / "config" / "profiles.json")
    series = load_detector_results(args.results_dir, args.detector, windows)
    fixed = None
    if args.published_thresholds:
        table = json.loads((root / "config" / "thresholds.json").read_text())[args.detector]
        fixed = {p: v["threshold"] for p, v in table.items()}
    results = evaluate(series, profiles, sum(len(v) for v in windows.values()), fixed)
    print(f"{args.detector}: {len(series)} files, {sum(len(s.windows) for s in series)} windows")
    print(f"{'profile':<20} {'threshold':>10} {'raw':>10} {'null':>8} {'score':>8}")
    for r in results:
        print(f"{r.profile:<20} {r.threshold:>10.6g} {r.raw:>10.4f} {r.null:>8.1f} {r.normalised:>8.2f}")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
