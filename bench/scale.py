"""Batch inspection on Ray Data against local `detect` (issue 31, part 4): for each of `--sizes` (256 and 2048
px a side), `--n` generated images (2,000 by default; a tenth with a planted defect) inspected by one fitted
model (few-shot, 16 generated normal images of that size)

- locally: `anomalens detect FOLDER --model M` (one process: JSON and overlays), and
- on a local Ray cluster: `anomalens detect FOLDER --model M --ray --workers N` (Parquet rows and overlays),
  for each N of `--workers`;
- then the last Ray run again over its finished output (a resumed run: every image skipped), and its rows
  written to the records, SQLite and PostgreSQL, as the Ray driver writes them (one transaction per batch) and
  one commit per record (as `detect --records` and the service do).

Each run is timed end to end as a user runs it (a fresh process: start-up, the cluster's start, the model
loaded by each worker, every overlay written). The peak resident memory of each Ray worker (its actor
process, VmHWM) is read from /proc while it runs. 2048² images are 256² textures scaled up by 8 (nearest
neighbour): every one different, and a PNG of about 0.2 MB, so 2,000 of them fit on a small disk; the free
space is checked before anything is written, and each run's output is removed once measured. The records'
rates are the database's part: the image hashes are computed before they are timed. Each size's figures are
kept in bench/scale.json as soon as that size is done (a run of some sizes replaces only theirs), and
bench/scale.md is written from all of them (`--table-only`: from the JSON alone).

    PYTHONPATH=src python bench/scale.py [--n 2000 [N_2048]] [--sizes 256 2048] [--workers 1 2] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from anomalens.inspector import Inspector  # noqa: E402
from conftest import free_port, plant_defect, texture  # noqa: E402

LOAD_AT_START = os.getloadavg()[0]
CLI = [sys.executable, "-c", "from anomalens.cli import app; app(prog_name='anomalens')"]
BASE = 256  # every image is drawn at this size, then scaled up to its own
MIB = 2**20


def image(seed: int, size: int, defect: bool) -> Image.Image:
    pixels = texture(seed, size=BASE)
    if defect:
        pixels = plant_defect(pixels, seed, radius=14)[0]
    picture = Image.fromarray((pixels * 255 + 0.5).astype(np.uint8))
    return picture if size == BASE else picture.resize((size, size), Image.NEAREST)


def generate(folder: Path, n: int, size: int, first_seed: int = 10_000, defects: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image(first_seed + i, size, defects and i % 10 == 0).save(folder / f"{i:05d}.png")


def check_disk(folder: Path, n: int, size: int) -> None:
    """Enough free space for the images and one run's output at a time (an overlay PNG per image, counted at
    a quarter of its raw size: 4× what a 2048² one took, 0.74 MiB), or stop before writing anything."""
    sample = folder / "sample.png"
    image(0, size, True).save(sample)
    need = n * (sample.stat().st_size + size * size * 3 // 4) + 2 * 2**30
    sample.unlink()
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SystemExit(
            f"{n} images of {size}² and one run's output need about {need / 2**30:.1f} GiB free in {folder}, which "
            f"has {free / 2**30:.1f} GiB: give --tmp a folder on a larger disk, or a smaller --n"
        )


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


def megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / MIB


def on_ray(images: Path, model: Path, out: Path, workers: int, env: dict) -> tuple[float, str, str]:
    """`detect --ray` timed, with the peak memory of each worker process seen (MiB)."""
    peaks: dict[int, int] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=worker_peaks, args=(stop, peaks), daemon=True)
    watcher.start()
    try:
        seconds, said = timed(
            ["detect", str(images), "--model", str(model), "--out", str(out), "--ray", "--workers", str(workers),
             "--batch-size", "16"],
            env,
        )  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    return seconds, said, ", ".join(f"{kb / 1024:.0f}" for kb in sorted(peaks.values())) or "n/a"


def stored_bytes(store) -> int:
    """What the inspections take in the database: the SQLite file (checkpointed), PostgreSQL's table with its
    indexes and TOAST."""
    from sqlalchemy import text

    if store.dialect == "postgresql":
        with store.engine.connect() as connection:
            return int(connection.execute(text("SELECT pg_total_relation_size('inspections')")).scalar_one())
    with store.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(store.engine.url.database).stat().st_size


def record_rates(out: Path, make_url) -> tuple[float, float, float]:
    """Records/s of the Ray rows in `out` written to a fresh database from `make_url()`: one transaction per
    batch (the Ray driver), then, on another fresh one, one commit per record; and the bytes each record takes
    there."""
    import pyarrow.parquet as pq

    from anomalens.distributed import PARTS, record_rows
    from anomalens.records import RecordStore, sha256_file

    tables = [pq.read_table(part) for part in sorted(out.glob(f"{PARTS}*.parquet"))]
    rows = sum(t.num_rows for t in tables)
    for table in tables:  # hashed once, before the timing: the rates are the database's part
        for source in table.column("source").to_pylist():
            sha256_file(source)
    rates, sizes = [], []
    for batches in (tables, [t.slice(i, 1) for t in tables for i in range(t.num_rows)]):
        with RecordStore(make_url(), station="bench") as store:
            started = time.perf_counter()
            for batch in batches:
                record_rows(store, batch, "", "bench-run")
            rates.append(rows / (time.perf_counter() - started))
            assert store.count() == rows
            sizes.append(stored_bytes(store) / rows)
    return rates[0], rates[1], sizes[0]


def records_table(out: Path, root: Path) -> list[tuple[str, float, float, float]]:
    from postgres_server import new_database, postgres_bin, postgres_server

    folder, counter = Path(tempfile.mkdtemp(prefix="records-", dir=root)), iter(range(100))
    table = [("SQLite file (WAL)", *record_rates(out, lambda: str(folder / f"{next(counter)}.db")))]
    if postgres_bin() is not None:
        with postgres_server(free_port()) as server:
            table.append(("PostgreSQL (local, 127.0.0.1)", *record_rates(out, lambda: new_database(server))))
    return table


def measure(size: int, n: int, args: argparse.Namespace, root: Path, env: dict) -> dict:
    """One size, `n` images: the runs, the records, the resumed run, as scale.json keeps them."""
    check_disk(root, n, size)
    started = time.perf_counter()
    images, normal = root / f"images-{size}", root / f"normal-{size}"
    generate(images, n, size)
    generate(normal, 16, size, first_seed=0, defects=False)
    model = Inspector().fit(sorted(normal.glob("*.png"))).save(root / f"model-{size}.safetensors")
    print(f"{n} images of {size}² ({megabytes(images):.0f} MiB) and the model in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip

    local_out = root / "local"
    seconds, said = timed(["detect", str(images), "--model", str(model), "--out", str(local_out)], env)
    local = n / seconds
    rows = [("local `detect`", "1 process", seconds, local, "", megabytes(local_out), said)]
    shutil.rmtree(local_out)
    print(rows[-1], flush=True)
    for workers in args.workers:
        out = root / f"ray-{workers}"
        seconds, said, peak = on_ray(images, model, out, workers, env)
        rows.append(("`detect --ray`", f"{workers} worker(s)", seconds, n / seconds, peak, megabytes(out), said))
        print(rows[-1], flush=True)
        if workers != args.workers[-1]:
            shutil.rmtree(out)
    last = root / f"ray-{args.workers[-1]}"  # kept: resumed, then its rows recorded
    resumed = timed(["detect", str(images), "--model", str(model), "--out", str(last), "--ray"], env)
    print("resumed", resumed, flush=True)
    written = records_table(last, root)
    print(written, flush=True)
    shutil.rmtree(last)
    shutil.rmtree(images)
    return {
        "n": n, "date": str(date.today()), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "load_at_start": LOAD_AT_START, "workers": args.workers[-1],
        "rows": rows, "resumed": resumed, "written": written,
        "command": f"PYTHONPATH=src python bench/scale.py --n {n} --sizes {size}",
    }  # fmt: skip


def report(size: str, kept: dict) -> list[str]:
    """One size's part of scale.md, from what scale.json keeps of it."""
    n, rows, written, workers = kept["n"], kept["rows"], kept["written"], kept["workers"]
    seconds, said = kept["resumed"]
    local = rows[0][3]
    lines = [
        f"## {size}² images",
        "",
        f"{n} images; {kept['date']}, {kept['machine']}, {kept['cpus']} CPUs, load average {kept['load_at_start']:.1f} "
        "when it started (above 0.5, other work shared the machine: figures indicative)."
        + (f" {kept['note']}" if kept.get("note") else ""),
        "",
        "| run | workers | wall (s) | images/s | vs local | peak RSS per Ray worker process seen (MiB) | output (MiB) |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for name, who, wall, rate, peak, output, _ in rows:
        lines.append(f"| {name} | {who} | {wall:.1f} | {rate:.1f} | {rate / local:.2f}× | {peak} | {output:.0f} |")
    lines += [
        "",
        f"A resumed run (`detect --ray` again over the {workers}-worker output, every image already done): "
        f"{seconds:.1f} s, {n / seconds:,.0f} images skipped per second. It said: {said}",
        "",
        "| records of these rows written to | one transaction per batch of 16 (records/s) | one commit per record (records/s) | bytes per record stored |",
        "|---|---:|---:|---:|",
    ]  # fmt: skip
    lines += [f"| {name} | {batched:,.0f} | {each:,.0f} | {size:,.0f} |" for name, batched, each, size in written]
    lines += ["", "What each run said:", ""] + [f"- {name}, {who}: {said}" for name, who, *_, said in rows]
    return lines + ["", f"    {kept['command']}", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000], help="images: one number, or one per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tmp", type=Path, default=None, help="where images and outputs go (default: the system's)")
    parser.add_argument("--out", type=Path, default=HERE / "scale.md")
    parser.add_argument("--table-only", action="store_true", help="write scale.md from scale.json, run nothing")
    args = parser.parse_args()
    if len(args.n) not in (1, len(args.sizes)):
        parser.error("--n: one number, or one per size")
    kept_file = args.out.with_suffix(".json")
    kept = json.loads(kept_file.read_text()) if kept_file.exists() else {}
    env = os.environ | {"COLUMNS": "200"}
    if not args.table_only:
        with tempfile.TemporaryDirectory(prefix="anomalens-scale-", dir=args.tmp) as tmp:
            for size, n in zip(args.sizes, args.n * len(args.sizes) if len(args.n) == 1 else args.n):
                kept[str(size)] = measure(size, n, args, Path(tmp), env)
                kept_file.write_text(json.dumps(kept, indent=1))
    lines = [
        "# Batch inspection on Ray Data against local `detect`",
        "",
        "Generated PNGs of each size (a tenth with a planted defect; 2048² ones are 256² textures scaled up by 8, "
        "every one different), one few-shot model per size (16 generated normal images, the default backbone and "
        "expert, 256-px input), timed end to end in a fresh process as a user runs it: start-up, the local Ray "
        "cluster's start and each worker's model load included; every overlay written (at the image's size).",
        "",
    ]
    for size in sorted(kept, key=int):
        lines += report(size, kept[size])
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
