"""Speed side by side with the peer (anomalib PatchCore, same EfficientNet-Lite0 weights, 256 px), in one run.

For each category and shot count, in turn:
- AnomaLens: `anomalens eval --eval-size 256` in its own process (fit, then the test pass: every test image
  decoded and inspected, masks read, metrics computed, as the peer's test pass does); its detect img/s counts
  the results alone (decoding included).
- AnomaLens ONNX engine: the same model fitted, exported (`anomalens export`) and run by `anomalens.deploy`
  in a process of its own, over the test images (decoding included).
- The peer: `../shared/tools/peer_anomalib.py` with its own venv's python (`--peer-python`), its default
  coreset 0.1; its fit s includes anomalib's validation pass, its test img/s decoding and metrics.
- Bound: the same fitted model's backbone (as it runs, onnxruntime) and exact expert scoring alone, over the
  test images already decoded and resized in memory, batches of 8: what any engine giving these answers
  with this network and search costs before decoding, smoothing and regions; also each half alone
  (backbone img/s, scoring img/s). Bound ratio = bound img/s ÷ the peer's test img/s: no engine giving
  these answers passes the test faster, even with decoding, maps, regions and metrics free.
- Fit floor: the images a fit must embed (references + `SYNTHETIC_ANOMALIES` for the calibration) ÷ backbone
  img/s, plus the synthetic anomalies scored against the bank less their reference's patches ((k − 1)/k of a
  test image's scoring each), nothing else counted; floor ratio = the peer's fit s ÷ that.
Peak MB is each process's maximum resident memory (the operating system's own accounting, `wait4`).
Kernels: what the bound's process reported (threadpoolctl: each loaded BLAS / OpenMP library's internal_api,
version, architecture and threads; torch's CPU capability; onnxruntime's version), under the table.
Results: bench/speed.md and bench/speed.json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kernels import kernels, markdown
from run_bench import DEFAULT_ROOT, HERE, PEER_TOOL, fmt, machine, run_ours


def measured(cmd: list[str]) -> tuple[str, float, float]:
    """Runs `cmd`; its standard output, wall seconds and peak resident memory (MB), from the kernel's rusage."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if process.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {process.returncode}")
    return text, time.perf_counter() - started, usage.ru_maxrss / 1024


def run_peer(python: str, root: Path, category: str, shots: str) -> dict:
    cmd = [python, str(PEER_TOOL), str(root), category, "--coreset", "0.1"]
    cmd += [] if shots == "all" else ["--shots", shots]
    text, _, peak = measured(cmd)
    return json.loads(text.strip().splitlines()[-1]) | {"peak_memory_mb": peak, "command": " ".join(cmd)}


def run_onnx(root: Path, category: str, shots: str) -> dict:
    """Fit, export, then time the ONNX engine over the test images in a process of its own."""
    with tempfile.TemporaryDirectory() as folder:
        model, graph = Path(folder) / "model.safetensors", Path(folder) / "model.onnx"
        fit = [sys.executable, "-m", "anomalens.cli", "fit", str(root), "--category", category, "-o", str(model)]
        subprocess.run(fit + ([] if shots == "all" else ["--shots", shots]), check=True, capture_output=True)
        export = [sys.executable, "-m", "anomalens.cli", "export", str(model), "-o", str(graph)]
        exported = subprocess.run(export, capture_output=True, text=True)
        if exported.returncode:  # a model that cannot be exported yet says why (e.g. an inverted-file bank)
            return {"refused": exported.stderr.strip() or exported.stdout.strip()}
        child = [sys.executable, __file__, "--time-onnx", str(graph), "--root", str(root), "--categories", category]
        text, _, peak = measured(child)
        return json.loads(text) | {"peak_memory_mb": peak}


def time_onnx(graph: Path, root: Path, category: str) -> None:
    """The child's part: the ONNX engine's images/s over the category's test images, decoding included."""
    from anomalens.data import load_split
    from anomalens.deploy import OnnxInspector

    paths = [sample.path for sample in load_split(root, category, "test")]
    engine = OnnxInspector(graph)
    engine.predict(paths[:2])  # first-run allocations are not the steady state
    started = time.perf_counter()
    results = engine.predict(paths)
    seconds = time.perf_counter() - started
    failed = sum(not result.ok for result in results)
    print(json.dumps({"images_per_second": len(paths) / seconds, "failed": failed}))


def time_bound(root: Path, category: str, shots: str) -> None:
    """The child's part: backbone + expert scoring alone, on pixels prepared beforehand (img/s)."""
    from anomalens import Inspector
    from anomalens.data import load_split
    from anomalens.experts import ExpertInput
    from anomalens.features import patch_features
    from anomalens.pixels import to_batch
    from anomalens.preprocessing import decode
    from anomalens.synthetic_evidence import SYNTHETIC_ANOMALIES

    train = [sample.path for sample in load_split(root, category, "train")]
    inspector = Inspector().fit(train if shots == "all" else train[: int(shots)])
    assert inspector.expert is not None
    size, mode = inspector.config.image_size, inspector.expert.resize_mode
    paths = [sample.path for sample in load_split(root, category, "test")]
    batches = [
        to_batch([decode(p, str(p)).image for p in paths[i : i + 8]], size, mode) for i in range(0, len(paths), 8)
    ]
    expert = inspector.expert

    def timed(part: Callable[[], object]) -> float:
        part()  # graphs exported or loaded, first-run allocations made
        started = time.perf_counter()
        part()
        return len(paths) / (time.perf_counter() - started)

    features = [patch_features(inspector.backbone, pixels) for pixels in batches]
    both = timed(lambda: [expert.score(ExpertInput(None, patch_features(inspector.backbone, p))) for p in batches])
    backbone = timed(lambda: [patch_features(inspector.backbone, pixels) for pixels in batches])
    scoring = timed(lambda: [expert.score(ExpertInput(None, f)) for f in features])
    k = len(train if shots == "all" else train[: int(shots)])
    # each synthetic anomaly is scored against the bank less its reference's patches: (k − 1)/k of a test image
    floor = (k + SYNTHETIC_ANOMALIES) / backbone + SYNTHETIC_ANOMALIES * (k - 1) / k / scoring
    print(json.dumps({"images_per_second": both, "backbone_images_per_second": backbone,
                      "scoring_images_per_second": scoring, "fit_floor_s": floor, "kernels": kernels()}))  # fmt: skip


def middle(runs: list[dict], part: str, key: str) -> float | None:
    """The median of one figure over a row's repeats (None where that part was not run)."""
    values = [run[part][key] for run in runs if key in (run.get(part) or {})]
    return statistics.median(values) if values else None


def spread(values: list[float]) -> str:
    """Median, and min–max where there were repeats."""
    if not values:
        return "–"
    low, high = min(values), max(values)
    return f"{statistics.median(values):.2f}" + (f" ({low:.2f}–{high:.2f})" if len(values) > 1 else "")


def write_markdown(path: Path, rows: list[dict], command: str) -> None:
    repeats = max(len(row["runs"]) for row in rows)
    lines = [
        "# Speed side by side with the peer",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on: {machine()}, all processes of one run in turn on this machine.",
        f"Command: `{command}`. {(__doc__ or '').split(chr(10), 1)[1].strip()}",
        "",
        f"Each figure is the median of {repeats} repeat(s), the processes taking turns (ours, ONNX, bound, peer); "
        "ratios are the median of each repeat's own ratio (min–max in brackets): test img/s ours ÷ peer's, "
        "fit: peer's seconds ÷ ours.",
        "",
        "| category | shots | test img/s | peer test img/s | ratio | detect img/s | ONNX img/s | bound img/s "
        "| backbone img/s | scoring img/s | bound ratio | fit s | peer fit s | fit ratio | fit floor s | floor ratio "
        "| peak MB | peer peak MB | ONNX peak MB | image AUROC | peer image AUROC |",
        "|" + "---|" * 21,
    ]
    for row in rows:
        runs = row["runs"]
        paired = [run for run in runs if run.get("peer")]
        ratios = [run["ours"]["test_images_per_second"] / run["peer"]["test_img_per_s"] for run in paired]
        fit_ratios = [run["peer"]["fit_s"] / run["ours"]["fit_seconds"] for run in paired]
        bound_ratios = [run["bound"]["images_per_second"] / run["peer"]["test_img_per_s"] for run in paired]
        floor_ratios = [run["peer"]["fit_s"] / run["bound"]["fit_floor_s"] for run in paired]
        cells = [
            row["category"],
            row["shots"],
            fmt(middle(runs, "ours", "test_images_per_second"), 1),
            fmt(middle(runs, "peer", "test_img_per_s"), 1),
            spread(ratios),
            fmt(middle(runs, "ours", "detect_images_per_second"), 1),
            fmt(middle(runs, "onnx", "images_per_second"), 1),
            fmt(middle(runs, "bound", "images_per_second"), 1),
            fmt(middle(runs, "bound", "backbone_images_per_second"), 1),
            fmt(middle(runs, "bound", "scoring_images_per_second"), 1),
            spread(bound_ratios),
            fmt(middle(runs, "ours", "fit_seconds"), 2),
            fmt(middle(runs, "peer", "fit_s"), 2),
            spread(fit_ratios),
            fmt(middle(runs, "bound", "fit_floor_s"), 2),
            spread(floor_ratios),
            fmt(middle(runs, "ours", "peak_memory_mb"), 0),
            fmt(middle(runs, "peer", "peak_memory_mb"), 0),
            fmt(middle(runs, "onnx", "peak_memory_mb"), 0),
            fmt(middle(runs, "ours", "image_auroc")),
            fmt(middle(runs, "peer", "image_auroc")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if row.get("peer_skipped"):
            lines.append(f"|  | ↳ peer not run: {row['peer_skipped']} |" + " |" * 19)
        refused = {run["onnx"].get("refused") for run in runs} - {None}
        if refused:
            lines.append(f"|  | ↳ ONNX: {'; '.join(sorted(refused))} |" + " |" * 19)
    reports = [run["bound"]["kernels"] for row in rows for run in row["runs"] if "kernels" in run["bound"]]
    if reports:
        lines += [
            "",
            "Kernels the scoring ran on (the bound's process, `bench/kernels.py`):",
            "",
            *markdown(reports[0]),
        ]
    path.write_text("\n".join(lines) + "\n")


def measure(root: Path, category: str, shots: str, peer_python: str | None) -> dict:
    """One repeat: ours, the ONNX engine, the bound and (given its python) the peer, in turn."""
    bound = [sys.executable, __file__, "--time-bound", shots, "--root", str(root), "--categories", category]
    run = {
        "ours": run_ours(root, category, shots),
        "onnx": run_onnx(root, category, shots),
        "bound": json.loads(measured(bound)[0]),
    }
    if peer_python:
        run["peer"] = run_peer(peer_python, root, category, shots)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="*")
    parser.add_argument("--shots", nargs="*", default=["all", "4"])
    parser.add_argument("--peer-python", help="python of the peer's venv (anomalib); without it no peer row")
    parser.add_argument(
        "--peer-max-train",
        type=int,
        default=100,
        help="skip the peer's full-shot fit above this many training images (its greedy coreset allocates the "
        "whole feature matrix on every step: hours for magnetic_tile's 714)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="measure each row this many times, in turn")
    parser.add_argument("--out", type=Path, default=HERE / "speed.md")
    parser.add_argument("--time-onnx", type=Path, help=argparse.SUPPRESS)  # the ONNX child's part
    parser.add_argument("--time-bound", help=argparse.SUPPRESS)  # the bound child's part: its shots
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")
    if args.time_onnx:
        time_onnx(args.time_onnx, args.root, args.categories[0])
        return
    if args.time_bound:
        time_bound(args.root, args.categories[0], args.time_bound)
        return

    from anomalens.data import list_categories, load_split

    command = "python bench/speed.py " + " ".join(sys.argv[1:])
    rows = []
    for category in args.categories or list_categories(args.root):
        n_train = len(load_split(args.root, category, "train"))
        for shots in args.shots:
            row: dict = {"category": category, "shots": shots}
            peer = args.peer_python
            if not args.peer_python:
                row["peer_skipped"] = "no --peer-python"
            elif shots == "all" and n_train > args.peer_max_train:
                row["peer_skipped"], peer = f"{n_train} training images > --peer-max-train {args.peer_max_train}", None
            row["runs"] = [measure(args.root, category, shots, peer) for _ in range(args.repeats)]
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("category", "shots")} | {"done": True}), flush=True)
            write_markdown(args.out, rows, command)
            args.out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
