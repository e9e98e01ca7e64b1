#!/usr/bin/env python3
"""How long teaching one normal image to a fitted model takes (issue 32: under 1 s on this machine).

A default inspector (256 px) is fitted on k normal images of a category (the bundled battery-weld sample when
the shared sets are not there), then one more normal image is taught, REPEATS times from the same fitted
model (`anomalens.teaching.teach`): in place, the decision recalibrated on the evidence the model keeps
(`refresh=False`, what a stream of corrections pays), and with the synthetic anomalies scored again against
the grown memory (`refresh=True`, what `anomalens teach` pays once per version). Times are wall-clock medians,
the image's decoding and embedding included; the load average they started under is printed.

    python bench/teach_speed.py                          # k = 4 (memory bank) and all training images (PatchCore)
    python bench/teach_speed.py --category magnetic_tile --shots 1 4 16
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from anomalens import Inspector
from anomalens.cli import sample_root
from anomalens.data.datasets import load_split
from anomalens.teaching import Correction, teach

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
REPEATS = 5


def timed(model: Inspector, image: Path, refresh: bool) -> float:
    """The median wall-clock seconds of teaching `image` as normal to `model` (never changed), REPEATS times."""
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        teach(model, [Correction(image, "normal")], refresh=refresh)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--category", default="battery_weld")
    parser.add_argument("--shots", nargs="*", type=int, default=[4, 0], help="normal images fitted on (0: all)")
    args = parser.parse_args()
    root = args.root if (args.root / args.category).is_dir() else sample_root()
    category = args.category if root == args.root else "battery_weld"
    train = [s.path for s in load_split(root, category, "train")]
    print(f"{category} ({root}), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    print("| normal images | expert | bank rows | teach one, in place | with synthetic anomalies re-scored |")
    print("|---|---|---|---|---|")
    for shots in args.shots:
        fitted = train[: shots or len(train) - 1]
        model = Inspector().fit(fitted)
        teach(model, [Correction(train[-1], "normal")], refresh=False)  # warm: the backbone's first run
        rows = len(model.expert.image_ids)  # the memory's patches (memory bank and PatchCore alike)
        fast, full = timed(model, train[-1], refresh=False), timed(model, train[-1], refresh=True)
        print(f"| {len(fitted)} | {model.expert_name} | {rows} | {fast:.3f} s | {full:.2f} s |")


if __name__ == "__main__":
    main()
