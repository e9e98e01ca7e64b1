"""Batch inspection on Ray Data against local `detect` (issue 31, part 2): `--n` generated 256² images (2,000 by
default; a tenth with a planted defect) inspected by one fitted model (few-shot, 16 generated normal images)

- locally: `anomalens detect FOLDER --model M` (one process: JSON and overlays), and
- on a local Ray cluster: `anomalens detect FOLDER --model M --ray --workers N` (Parquet rows and overlays),
  for each N of `--workers`.

Each is timed end to end as a user runs it (a fresh process: start-up, the cluster's start, the model loaded
by each worker, every overlay written). The peak resident memory of each Ray worker (its actor process,
VmHWM) is read from /proc while it runs. Results: bench/scale.md.

    PYTHONPATH=src python bench/scale.py [--n 2000] [--workers 1 2] [--out bench/scale.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from anomalens.inspector import Inspector  # noqa: E402
from conftest import plant_defect, save_png, texture  # noqa: E402

LOAD_AT_START = os.getloadavg()[0]
CLI = [sys.executable, "-c", "from anomalens.cli import app; app(prog_name='anomalens')"]


def generate(folder: Path, n: int) -> None:
    for i in range(n):
        image = texture(10_000 + i, size=256)
        if i % 10 == 0:
            image = plant_defect(image, i, radius=14)[0]
        save_png(folder / f"{i:05d}.png", image)


def worker_peaks(stop: threading.Event, peaks: dict[int, int]) -> None:
    """The highest VmHWM (kB) of each Ray Data actor process seen while the run goes on."""
    while not stop.is_set():
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if b"MapWorker" not in Path(entry.path, "cmdline").read_bytes():
                    continue
                for line in Path(entry.path, "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[int(entry.name)] = max(peaks.get(int(entry.name), 0), int(line.split()[1]))
            except OSError:
                continue
        stop.wait(0.5)


def timed(args: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(CLI + args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return seconds, " ".join(run.stdout.rsplit("┘", 1)[-1].split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=HERE / "scale.md")
    args = parser.parse_args()
    env = os.environ | {"COLUMNS": "200"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="anomalens-scale-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate(root / "images", args.n)
        for i in range(16):
            save_png(root / "normal" / f"{i:02d}.png", texture(i, size=256))
        model = Inspector().fit(sorted((root / "normal").glob("*.png"))).save(root / "model.safetensors")
        print(f"{args.n} images and the model in {time.perf_counter() - started:.0f} s", flush=True)

        seconds, said = timed(
            ["detect", str(root / "images"), "--model", str(model), "--out", str(root / "local")], env
        )
        local = args.n / seconds
        rows.append(("local `detect`", "1 process", seconds, local, "", said))
        print(rows[-1], flush=True)
        for workers in args.workers:
            peaks: dict[int, int] = {}
            stop = threading.Event()
            watcher = threading.Thread(target=worker_peaks, args=(stop, peaks), daemon=True)
            watcher.start()
            out = root / f"ray-{workers}"
            try:
                seconds, said = timed(
                    ["detect", str(root / "images"), "--model", str(model), "--out", str(out), "--ray",
                     "--workers", str(workers), "--batch-size", "16"],
                    env,
                )  # fmt: skip
            finally:
                stop.set()
                watcher.join()
            peak = ", ".join(f"{kb / 1024:.0f}" for kb in sorted(peaks.values())) or "n/a"
            rows.append(("`detect --ray`", f"{workers} worker(s)", seconds, args.n / seconds, peak, said))
            print(rows[-1], flush=True)

    lines = [
        "# Batch inspection on Ray Data against local `detect`",
        "",
        f"{args.n} generated 256² PNGs (a tenth with a planted defect), one few-shot model (16 generated normal "
        "images, the default backbone and expert), timed end to end in a fresh process as a user runs it: start-up, "
        "the local Ray cluster's start and each worker's model load included; every overlay written. "
        f"{date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{LOAD_AT_START:.1f} when it started (above 0.5, other work shared the machine: figures indicative).",
        "",
        "| run | workers | wall (s) | images/s | vs local | peak RSS per Ray worker process seen (MiB) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, workers, seconds, rate, peak, _ in rows:
        lines.append(f"| {name} | {workers} | {seconds:.1f} | {rate:.1f} | {rate / local:.2f}× | {peak} |")
    lines += ["", "What each run said:", ""] + [f"- {name}, {workers}: {said}" for name, workers, _, _, _, said in rows]
    lines += ["", "    PYTHONPATH=src python bench/scale.py --n " + str(args.n), ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
