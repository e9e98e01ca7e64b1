"""Inspection records written per second (issue 31: at least 500/s to SQLite), to a SQLite file and to a
PostgreSQL server, each fresh: a batch of `--n` generated results (2,000 by default) of the size the service
writes (regions, the result as answered, the findings kept for chat), written

- in one transaction (`RecordStore.add_inspections`: a line's batch, or `detect` asked to batch), and
- one commit per record (`add_inspection`: what `detect --records` and the service do, each record on disk
  before the next image's result is given).

The PostgreSQL server is started here from Debian's package on 127.0.0.1 (tests/postgres_server.py), or given
by `--postgres URL` (a database the benchmark may write to). Each rate is the best of `--runs` runs on a new
database. Results: bench/records.md.

    PYTHONPATH=src python bench/records.py [--n 2000] [--runs 3] [--postgres URL] [--out bench/records.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from anomalens.records import RecordStore  # noqa: E402


def results(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        anomalous = rng.random() < 0.2
        regions = [
            {"box": [rng.randrange(200), rng.randrange(200), 250, 250], "area_fraction": rng.random() / 50,
             "peak": rng.random() * 5, "centroid": [rng.random() * 256, rng.random() * 256], "location": "top left"}
            for _ in range(rng.randrange(1, 4) if anomalous else 0)
        ]  # fmt: skip
        score = rng.random() * 3
        result = {"ok": True, "error": None, "score": score, "anomalous": anomalous, "probability": score / 3,
                  "confidence": 0.9, "location": "top left" if anomalous else "", "regions": regions,
                  "image_size": [256, 256], "file": f"part-{i:06d}.png", "answer": "No, the part looks normal."}  # fmt: skip
        findings = result | {"threshold": 1.7, "scale": 0.2, "peak_location": "center", "n_normal": 16,
                             "expert": "memory_bank", "references": [], "criteria": None, "defect_type": None}  # fmt: skip
        out.append(
            {
                "source": result["file"],
                "image_path": f"/line/images/{result['file']}",
                "image_sha256": f"{i:064x}",
                "model_id": "bracket",
                "model_version": "ab" * 32,
                "expert": "memory_bank",
                "verdict": "anomalous" if anomalous else "normal",
                "score": score,
                "probability": score / 3,
                "confidence": 0.9,
                "location": result["location"],
                "regions": regions,
                "result": result,
                "findings": findings,
            }  # fmt: skip
        )
    return out


def rates(make_url, batch: list[dict], runs: int) -> dict[str, float]:
    best = {"one transaction": 0.0, "one commit per record": 0.0}
    for _ in range(runs):
        store = RecordStore(make_url(), station="bench")
        start = time.perf_counter()
        store.add_inspections(batch)
        best["one transaction"] = max(best["one transaction"], len(batch) / (time.perf_counter() - start))
        store.close()
        store = RecordStore(make_url(), station="bench")
        start = time.perf_counter()
        for record in batch:
            store.add_inspection(record)
        best["one commit per record"] = max(best["one commit per record"], len(batch) / (time.perf_counter() - start))
        assert store.count() == len(batch)
        store.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: a server started here)")
    parser.add_argument("--out", type=Path, default=HERE / "records.md")
    args = parser.parse_args()
    batch = results(args.n)
    folder = Path(tempfile.mkdtemp(prefix="anomalens-records-bench-"))
    counter = iter(range(10**6))
    table = {"SQLite file (WAL)": rates(lambda: str(folder / f"{next(counter)}.db"), batch, args.runs)}
    if args.postgres:
        table["PostgreSQL"] = rates(lambda: args.postgres, batch, 1)
    else:
        from conftest import free_port
        from postgres_server import new_database, postgres_bin, postgres_server

        if postgres_bin() is not None:
            with postgres_server(free_port()) as server:
                table["PostgreSQL (local, 127.0.0.1)"] = rates(lambda: new_database(server), batch, args.runs)
    lines = [
        "# Inspection records written per second",
        "",
        f"`PYTHONPATH=src python bench/records.py --n {args.n} --runs {args.runs}` ({date.today()}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared with other work; "
        f"Python {platform.python_version()}). {args.n} generated results each, of the size the service writes "
        "(regions, the result, the findings); the best of the runs, each on a new database. The issue asks "
        "for at least 500 records/s to SQLite.",
        "",
        "| database | one transaction (records/s) | one commit per record (records/s) |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {name} | {r['one transaction']:,.0f} | {r['one commit per record']:,.0f} |" for name, r in table.items()
    ]
    lines += [
        "",
        "One commit per record is what `detect --records` and the service do: each record is committed before "
        "the next result is given, so a process killed at any moment loses none it reported. SQLite runs in "
        "WAL mode with synchronous=NORMAL (a commit survives the process being killed; a power cut may lose the "
        "last ones); the PostgreSQL server runs with its defaults (fsync on).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
