#!/usr/bin/env python3
"""The shared sets at several input scales: `--scale auto` against fixed layouts (issue: resolution).

For each category and shot count, `anomalens eval --eval-size 256` (the peer's protocol: maps and masks at
256 × 256) at: squash (every image squashed to 256 × 256, the default), aspect (short side 256, aspect kept),
native pixels in 256-pixel tiles (scale 1) and auto (chosen from the normal images alone; the row says what
it chose; what the current probe picks on every set is in bench/scale_choice.md). Image AUROC, pixel AUROC, AUPRO, verdict accuracy, fit seconds and test img/s (processes in turn
on one machine; other work may share it: compare speeds within a run only).

    python bench/scales.py                       # every category, 4 shots and full-shot → bench/scales.md
    python bench/scales.py --categories battery_weld --shots 4   # these rows again, the others kept
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
CATEGORIES = ("ballscrew_pitting", "battery_weld", "magnetic_tile", "mpdd_metal_plate", "mvtec_transistor")
SCALES = ("squash", "aspect", "1", "auto")
COLUMNS = ("image_auroc", "pixel_auroc", "aupro", "verdict_accuracy", "fit_seconds", "test_images_per_second")


def evaluate(root: Path, category: str, shots: str, scale: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "anomalens.cli", "eval", str(root), "--category", category, "--out", out]
        cmd += ["--eval-size", "256", "--scale", scale] + ([] if shots == "all" else ["--shots", shots])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(out) / "metrics.json").read_text())[0] | {"requested": scale}


def write_markdown(path: Path, rows: list[dict], command: str) -> None:
    lines = [
        "# The shared sets at several input scales",
        "",
        f"Command: `{command}` (each row's date in its last column). {(__doc__ or '').split(chr(10), 2)[2].split(chr(10) + chr(10))[0]}",
        "",
        "| category | shots | scale | fitted at | image AUROC | pixel AUROC | AUPRO | accuracy | fit s | test img/s | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{row[c]:.3f}" if c not in ("fit_seconds", "test_images_per_second") else f"{row[c]:.1f}" for c in COLUMNS
        ]
        lines.append(
            f"| {row['category']} | {row['shots']} | {row['requested']} | {row['scale']} | "
            + " | ".join(cells)
            + f" | {row['measured']} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--shots", nargs="+", default=["4", "all"])
    parser.add_argument("--scales", nargs="+", default=list(SCALES))
    parser.add_argument("--out", type=Path, default=HERE / "scales.md")
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")
    measured = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else []
    asked = {(c, k, s) for c in args.categories for k in args.shots for s in args.scales}
    rows = [row for row in measured if (row["category"], row["shots"], row["requested"]) not in asked]  # kept
    for category in args.categories:
        for shots in args.shots:
            for scale in args.scales:
                rows.append(
                    evaluate(args.root, category, shots, scale) | {"shots": shots, "measured": str(date.today())}
                )
                print(
                    json.dumps({k: rows[-1][k] for k in ("category", "shots", "requested", "scale", "aupro")}),
                    flush=True,
                )
                rows.sort(key=lambda r: (r["category"], r["shots"], SCALES.index(r["requested"])))
                write_markdown(args.out, rows, "python bench/scales.py, a run per category and shot count")
                args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
