#!/usr/bin/env python3
"""Benchmark AnomaLens on MVTec-layout datasets and write bench/results.md.

Every setting runs as its own `anomalens eval` process (so peak memory is that run's own), fitting on
the category's normal training images (all, or the first k) and inspecting every test image through
the product's prediction path: image decoding, backbone, expert, maps at full resolution, regions.

    python bench/run_bench.py                                  # ../shared/datasets: full-shot, 1/2/4 shots, zero-shot
    python bench/run_bench.py --categories battery_weld --shots all 4
    python bench/run_bench.py --shots zero --update            # add zero-shot rows, keep the earlier ones
    python bench/run_bench.py --peer-python /tmp/peer/bin/python   # also run anomalib's PatchCore here
    python bench/run_bench.py --peer-results peer.jsonl        # or include peer rows measured earlier
    python bench/run_bench.py --experts auto fused --shots all  # full-shot rows of chosen experts only

Full-shot rows are measured for every expert of --experts (auto = the memory expert; decoder; fused =
both), few-shot rows for the memory expert only.

The peer is ../shared/tools/peer_anomalib.py (anomalib PatchCore with the same EfficientNet-Lite0
weights, 256 px, coreset 0.1), which prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
PEER_TOOL = HERE.parent.parent / "shared" / "tools" / "peer_anomalib.py"
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def run_ours(root: Path, category: str, shots: str, expert: str = "auto") -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "anomalens.cli",
            "eval",
            str(root),
            "--category",
            category,
            "--out",
            out,
            "--eval-size",
            "256",
            "--expert",
            expert,
        ]  # the peer's protocol: maps and masks at 256 × 256
        if shots == "zero":
            cmd += ["--zero-shot", "mutual"]
        elif shots != "all":
            cmd += ["--shots", shots]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        row = json.loads((Path(out) / "metrics.json").read_text())[0]
        row["wall_seconds"] = time.perf_counter() - started
        return row


def run_peer(python: str, root: Path, category: str, shots: str) -> dict:
    cmd = [python, str(PEER_TOOL), str(root), category]
    cmd += ["--coreset", "0.1"] if shots == "all" else ["--shots", shots]
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return json.loads(lines[-1]) | {"cmd": " ".join(cmd)}


def load_peer_rows(path: Path) -> dict[tuple[str, str], dict]:
    rows = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "error" in record or record.get("image_auroc") is None:
            continue
        shots = str(record["shots"])
        if shots == "all" and record.get("coreset") != 0.1 and (record["category"], "all") in rows:
            continue  # prefer the default coreset 0.1 where both were measured
        rows[(record["category"], shots)] = record
    return rows


def machine() -> str:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    import torch

    return (
        f"{platform.system()} {platform.machine()}, {cpu}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__} (CPU, {torch.get_num_threads()} threads)"
    )


def fmt(value, digits=3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_markdown(path: Path, rows: list[dict], peers: dict) -> None:
    commands = "; ".join(f"`{c}`" for c in dict.fromkeys(row.get("command", "?") for row in rows))
    lines = [
        "# AnomaLens benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on: {machine()}.",
        f"Commands (each row's own is in results.json): {commands}",
        "",
        "Each row fits on the category's normal training images (all, or the first k) and inspects every test",
        "image through the product path (`anomalens eval --eval-size 256`); pixel metrics on maps and masks at",
        "256 × 256 as anomalib computes them, AUPRO up to FPR 0.3. Verdict accuracy uses the thresholds the",
        "model calibrated on its normal training images alone. Fit s includes that calibration. Detect img/s",
        "times the prediction path with image decoding (not the reading of masks or the metrics); peak MB is the",
        "eval process's maximum resident memory, metrics included. Shots 200: fit timing on 200 images.",
        "Experts decoder and fused (decoder + memory expert): fit s includes synthesising the anomalies and",
        "training the decoder (train minutes = fit s / 60); they are calibrated on a held-out quarter of the",
        "normal training images.",
        "Shots zero: no training image at all; the test images are scored against each other as one unlabeled",
        "batch (each image's exposure standardised, then mutual scoring, each image against at most 64 others",
        "drawn at random), the verdict threshold from the batch's own low-score mode; detect img/s then covers",
        "the whole batch's scoring.",
        "Peer: anomalib 2.7 PatchCore with the same EfficientNet-Lite0 weights (256 px, coreset 0.1), its own",
        "numbers from `peer_anomalib.py` on the same data.",
        "",
        "| category | shots | expert | image AUROC | pixel AUROC | AUPRO | peer image AUROC | peer pixel AUROC "
        "| peer AUPRO | verdict acc. | fit s | detect img/s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        memory = row["expert"] in ("memory_bank", "patchcore")  # the peer is PatchCore: compared with those rows
        peer = peers.get((row["category"], str(row["shots"])), {}) if memory else {}
        lines.append(
            "| "
            + " | ".join(
                [
                    row["category"],
                    str(row["shots"]),
                    row["expert"],
                    *(fmt(row.get(k)) for k in METRICS),
                    *(fmt(peer.get(k)) for k in METRICS),
                    fmt(row.get("verdict_accuracy")),
                    fmt(row["fit_seconds"], 1),
                    fmt(row["detect_images_per_second"], 1),
                    fmt(row["peak_memory_mb"], 0),
                ]
            )
            + " |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="*")
    parser.add_argument(
        "--shots",
        nargs="*",
        default=["all", "1", "2", "4", "200", "zero"],
        help="'all', k or 'zero' (no training image); a k above a category's training-set size "
        "is skipped (200: fit timing)",
    )
    parser.add_argument(
        "--experts",
        nargs="*",
        default=["auto", "decoder", "fused"],
        help="experts for the full-shot rows: auto (memory), decoder, fused",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--peer-python", help="python of a venv with anomalib: run the peer in this same run")
    parser.add_argument("--peer-results", type=Path, help="JSON lines printed by peer_anomalib.py earlier")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the rows (and peer rows) of the earlier run in OUT's .json that this run does not redo",
    )
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")

    from anomalens.data import list_categories, load_split

    categories = args.categories or list_categories(args.root)
    peers = load_peer_rows(args.peer_results) if args.peer_results else {}
    command = "python bench/run_bench.py " + " ".join(sys.argv[1:])
    rows = []
    for category in categories:
        n_train = len(load_split(args.root, category, "train"))
        for shots in args.shots:
            if shots not in ("all", "zero") and int(shots) >= n_train:
                continue
            for expert in args.experts if shots == "all" else ["auto"]:
                row = run_ours(args.root, category, shots, expert) | {"command": command}
                rows.append(row)
                print(
                    json.dumps(
                        {
                            k: row[k]
                            for k in (
                                "category",
                                "shots",
                                "expert",
                                *METRICS,
                                "fit_seconds",
                                "detect_images_per_second",
                            )
                        }
                    ),
                    flush=True,
                )
            if args.peer_python and shots != "zero":
                peers[(category, shots)] = run_peer(args.peer_python, args.root, category, shots)
    if args.update and args.out.with_suffix(".json").is_file():
        earlier = json.loads(args.out.with_suffix(".json").read_text())
        key = lambda r: (r["category"], str(r["shots"]), r["expert"])  # noqa: E731
        redone = {key(r): r for r in rows}
        kept = [redone.pop(key(r), r) for r in earlier["rows"]]  # a redone row takes its earlier row's place
        rows = sorted(kept + list(redone.values()), key=lambda r: r["category"])  # stable sort
        peers = {(p["category"], str(p["shots"])): p for p in earlier["peer"]} | peers
    (args.out.with_suffix(".json")).write_text(
        json.dumps({"rows": rows, "peer": [{"category": c, "shots": s, **v} for (c, s), v in peers.items()]}, indent=2)
    )
    write_markdown(args.out, rows, peers)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
