"""Command-line start-up, before and after the light CLI (issue 35), each command a whole process.

Commands, each run with PYTHONPATH at one source tree (the venv's `anomalens` script for the CLI ones):
- `anomalens --help` and `anomalens detect --help`: the help alone;
- `anomalens series detect CSV --out DIR --overwrite` (`detect --series` before it had its own command): a generated series of `POINTS` points with a planted
  spike, inspected end to end (its JSON and its matplotlib plot written);
- `python -c "import anomalens.cli"`: the import alone.
Before: the source tree of `--before` (a git ref; default: where this branch left main, their merge base),
taken out with `git archive`; after: this checkout's src/. The runs alternate before/after and command by command (one warm-up of each first, not
counted), so that the machine's load falls on both alike; wall time is the median of `--runs` runs, with the
fastest and the slowest. Results: bench/cli_startup.md."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
POINTS = 2000
HEAVY = ("torch", "faiss", "onnxruntime", "scipy", "sklearn", "matplotlib")
TARGET_HELP_SECONDS = 0.5


def anomalens_script() -> list[str]:
    """The `anomalens` console script beside this python (the venv's), run by this python."""
    script = Path(sys.executable).parent / "anomalens"
    if not script.exists():
        raise SystemExit(f"no anomalens script beside {sys.executable}: run this with the project's venv python")
    return [sys.executable, str(script)]


def source_tree(ref: str, into: Path) -> tuple[Path, str]:
    """`ref`'s src/ written under `into`; with the commit it names."""
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True)
    archive = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src", commit.stdout.strip()


def small_series(path: Path) -> Path:
    """A periodic sensor line with a spike near its end: the series command finds one window."""
    rows = (
        f"{i},{10 + 3 * math.sin(2 * math.pi * i / 50) + (8 if POINTS - 300 <= i < POINTS - 290 else 0):.4f}"
        for i in range(POINTS)
    )
    path.write_text("t,pressure\n" + "\n".join(rows) + "\n")
    return path


def seconds(cmd: list[str], src: Path) -> float:
    """Wall seconds of `cmd` as a whole process, with `src` first on the import path; it must succeed."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.perf_counter()
    run = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} (PYTHONPATH={src}) failed: {run.stderr[-2000:]}")
    return elapsed


def heavy_modules(src: Path) -> list[str]:
    """The heavy modules `import anomalens.cli` loads from `src`."""
    code = f"import sys, anomalens.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True
    )
    return run.stdout.split()


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return (
        f"{platform.system()} {platform.machine()}, {cpu}, {len(os.sched_getaffinity(0))} cores "
        f"(shared with other work: the before and after runs alternate), Python {platform.python_version()}"
    )


def span(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} s ({min(times):.2f}–{max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--before", help="git ref whose src/ is the 'before' (default: git merge-base HEAD main)")
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command on each side (at least 7)")
    parser.add_argument("--out", type=Path, default=HERE / "cli_startup.md")
    args = parser.parse_args()
    if args.runs < 7:
        parser.error("--runs: at least 7")
    command = " ".join(["python bench/cli_startup.py", *sys.argv[1:]])
    before = (
        args.before
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before_src, before_commit = source_tree(before, work / "before")
        after_src = ROOT / "src"
        after_commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        csv = small_series(work / "line.csv")
        cli = anomalens_script()
        commands = {
            "anomalens --help": [*cli, "--help"],
            "anomalens detect --help": [*cli, "detect", "--help"],
            f"anomalens series detect line.csv ({POINTS} points)": [
                *cli,
                "series",
                "detect",
                str(csv),
                "--out",
                str(work / "out"),
                "--overwrite",
            ],
            'python -c "import anomalens.cli"': [sys.executable, "-c", "import anomalens.cli"],
        }
        sides = {"before": before_src, "after": after_src}
        times: dict[tuple[str, str], list[float]] = {(name, side): [] for name in commands for side in sides}
        for run in range(args.runs + 1):  # run 0 warms the file cache and is not counted
            for name, cmd in commands.items():
                for side, src in sides.items():
                    elapsed = seconds(cmd, src)
                    if run:
                        times[name, side].append(elapsed)
            print(f"run {run}/{args.runs}", file=sys.stderr)
        heavy = {side: heavy_modules(src) for side, src in sides.items()}
    lines = [
        "# Command-line start-up, before and after",
        "",
        f"Measured {date.today().isoformat()} on: {machine()}.",
        f"Command: `{command}`; before = {before_commit}{f' (`{args.before}`)' if args.before else ''}, "
        f"after = this checkout ({after_commit}). "
        + (__doc__ or "").split("\n", 1)[1].strip().replace("`POINTS`", str(POINTS)),
        "",
        "| command | before | after | before ÷ after |",
        "|---|---|---|---|",
    ]
    for name in commands:
        b, a = times[name, "before"], times[name, "after"]
        lines.append(f"| `{name}` | {span(b)} | {span(a)} | {statistics.median(b) / statistics.median(a):.1f}× |")
    help_after = statistics.median(times["anomalens --help", "after"])
    lines += [
        "",
        f"Target: `anomalens --help` within {TARGET_HELP_SECONDS} s: "
        f"{'met' if help_after <= TARGET_HELP_SECONDS else 'missed'} ({help_after:.2f} s median).",
        "",
        f"Heavy modules (of {', '.join(HEAVY)}) that `import anomalens.cli` loads: before: "
        f"{', '.join(heavy['before']) or 'none'}; after: {', '.join(heavy['after']) or 'none'}. "
        "The series command still imports numpy and matplotlib (its plot), neither torch nor scipy.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
