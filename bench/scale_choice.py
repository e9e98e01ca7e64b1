#!/usr/bin/env python3
"""`--scale auto`'s probe chosen leave-one-set-out: which layout it picks, against the best fixed one.

For each shared category and shot count (4 and all, the training images `eval` fits on: the first k), the
probes of `anomalens.scale.probe_scales` run at every candidate layout for every planted size of PLANTED (planted
defect area × smallest side in pixels; seeded, so each layout's share of planted defects separated is
measured once per probe) and `choose_scale`'s rule is applied for each required share and each fallback
(none passing: the layout that separated most, or the finest probed). What a pick is worth
is the AUPRO of that layout fitted for real, from bench/scales.json (`python bench/scales.py --scales squash
aspect 1`: every layout at the peer's protocol). For each category left out, the probe is chosen on the others
(fewest (category, shots) where the pick's AUPRO is more than 0.02 below the best fixed layout's; then the
finest picks: small defects are what `auto` is for, and its fallback is the finest too) and reported on the one
left out; the default is the one chosen on all.

    python bench/scale_choice.py            # probes of every category → bench/scale_choice.json, .md
    python bench/scale_choice.py --table-only
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from anomalens import Inspector
from anomalens.data.datasets import load_split
from anomalens.scale import ScaleProbe, picked, probe_scales

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
CATEGORIES = ("ballscrew_pitting", "battery_weld", "magnetic_tile", "mpdd_metal_plate", "mvtec_transistor")
SHOTS = ("4", "all")
# (defect area, smallest side in px): today's, then smaller. On images up to ~600 px (every shared set) the side
# decides the size; the area (≈ 20 px at 2048 px) only on larger ones, which no shared set has to choose it on
PLANTED = [(0.0005, 16), (0.0001, 12), (0.0001, 8), (0.0001, 4)]
SHARES = (0.5, 0.75, 0.9, 1.0)  # the share of planted defects a layout must separate
TOLERANCE = 0.02  # AUPRO a pick may lose to the best fixed layout


def layout(scale: str | float) -> str:
    """A candidate's name as bench/scales.json's `requested` has it."""
    return str(scale) if isinstance(scale, str) else "1" if scale == 1.0 else f"{scale:g}"


def measure(root: Path, category: str, shots: str) -> dict[str, list]:
    """{"area,px": [(layout, share separated, seconds), …]} for every planted size of PLANTED."""
    paths = [s.path for s in load_split(root, category, "train")]
    paths = paths if shots == "all" else paths[: int(shots)]
    probes = {}
    for area, px in PLANTED:
        tried = probe_scales(Inspector(scale="auto"), paths, ScaleProbe(area, px))
        probes[f"{area},{px}"] = [(layout(scale), share, seconds) for scale, share, seconds in tried]
        print(category, shots, area, px, probes[f"{area},{px}"], flush=True)
    return probes


def outcomes(probes: dict, aupro: dict, probe: ScaleProbe) -> dict[tuple[str, str], tuple[str, float, float]]:
    """{(category, shots): (layout picked, its AUPRO, the best fixed layout's)}."""
    found = {}
    for (category, shots), planted in probes.items():
        chosen = picked(planted[f"{probe.defect_area},{probe.min_defect_px}"], probe)[0]
        fixed = aupro[(category, shots)]
        found[(category, shots)] = (chosen, fixed[chosen], max(fixed.values()))
    return found


def choose(probes: dict, aupro: dict, categories: list[str]) -> ScaleProbe:
    grid = [
        ScaleProbe(area, px, share, fallback)
        for (area, px), share, fallback in itertools.product(PLANTED, SHARES, ("most", "finest"))
    ]

    def key(probe: ScaleProbe) -> tuple:
        rows = [v for k, v in outcomes(probes, aupro, probe).items() if k[0] in categories]
        misses = sum(best - value > TOLERANCE for _, value, best in rows)
        return misses, -sum(["squash", "aspect", "0.5", "1"].index(chosen) for chosen, _, _ in rows)

    return min(grid, key=key)


def write_markdown(path: Path, probes: dict, aupro: dict) -> ScaleProbe:
    categories = [c for c in CATEGORIES if any(k[0] == c for k in probes)]
    lines = [
        "# `--scale auto`: the probe chosen leave-one-set-out",
        "",
        f"Command: `python bench/scale_choice.py` ({time.strftime('%Y-%m-%d')}).",
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        "| left out | shots | probe chosen on the others (area, min px, share, none passing) | picked | its AUPRO | best fixed |"
        " within 0.02 |",
        "|---|---|---|---|---|---|---|",
    ]
    for left in categories:
        probe = choose(probes, aupro, [c for c in categories if c != left])
        for (category, shots), (chosen, value, best) in outcomes(probes, aupro, probe).items():
            if category == left:
                described = f"{probe.defect_area:g}, {probe.min_defect_px}, {probe.separated}, {probe.fallback}"
                ok = "yes" if best - value <= TOLERANCE else "**no**"
                lines.append(f"| {left} | {shots} | {described} | {chosen} | {value:.3f} | {best:.3f} | {ok} |")
    default = choose(probes, aupro, categories)
    lines += ["", f"Chosen on all categories (the default `ScaleProbe()`): {default}.", ""]
    lines += ["Each probe's share separated per layout (area, min px: [(layout, share, seconds), …]):", ""]
    for (category, shots), planted in probes.items():
        lines.append(f"- {category} {shots}: " + "; ".join(f"{k}: {v}" for k, v in planted.items()))
    path.write_text("\n".join(lines) + "\n")
    return default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    stored = HERE / "scale_choice.json"
    kept = json.loads(stored.read_text()) if stored.exists() else {}
    for category in [] if args.table_only else args.categories:
        for shots in SHOTS:
            kept[f"{category}/{shots}"] = measure(args.root, category, shots)
            stored.write_text(json.dumps(kept, indent=1))
    probes = {tuple(key.split("/")): value for key, value in kept.items()}
    fixed = json.loads((HERE / "scales.json").read_text())
    aupro: dict[tuple[str, str], dict[str, float]] = {}
    for row in fixed:
        if row["requested"] != "auto":
            aupro.setdefault((row["category"], row["shots"]), {})[row["requested"]] = row["aupro"]
    print(write_markdown(HERE / "scale_choice.md", {k: v for k, v in probes.items() if k in aupro}, aupro))


if __name__ == "__main__":
    main()
