"""Behaviour unchanged by a restructuring: the numbers and answers a user sees, measured on one commit and on
another, compared to the third decimal.

    python bench/equivalence.py measure --label before     # on the commit before the change
    python bench/equivalence.py measure --label after      # on the commit after it
    python bench/equivalence.py compare before after       # → bench/equivalence.md

`measure` runs, on every shared image set: `anomalens eval --shots 4` (the default expert) and
`--zero-shot mutual` (the images against each other), and full-shot on the sets with at most 100 normal training
images, keeping every metric but timings; and the grounded chat of
`bench/faithfulness.py` (seeded conversations; every answer's text). Each label's figures go to
bench/equivalence/<label>.json. `compare` lists every number that differs at the third decimal and every
answer whose words differ."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
KEPT = HERE / "equivalence"
TIMINGS = (
    "fit_seconds",
    "detect_images_per_second",
    "test_images_per_second",
    "peak_memory_mb",
    "wall_seconds",
    "machine",
    "command",
)
ROUTES = {
    "shots 4": ["--shots", "4"],
    "zero-shot": ["--zero-shot", "mutual"],
    "full-shot": [],
    "fused, shots 4": ["--shots", "4", "--expert", "both"],  # memory bank + a decoder trained on synthetic anomalies
}
FULL_SHOT_MAX = 100  # full-shot rows on the sets with at most this many normal training images (minutes, not hours)


def image_sets(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "train").is_dir() and (p / "test").is_dir())


def eval_figures(dataset: Path, route: list[str]) -> dict:
    """`anomalens eval` on one set: its metrics.json, timings left out."""
    with tempfile.TemporaryDirectory() as out:
        # a set's folder is an MVTec root holding one category: eval its parent, naming the category
        command = [sys.executable, "-m", "anomalens.cli", "eval", str(dataset.parent), "--category", dataset.name]
        command += ["--eval-size", "256", "--out", out, *route]
        subprocess.run(command, check=True, capture_output=True)
        rows = json.loads((Path(out) / "metrics.json").read_text())
    rows = rows if isinstance(rows, list) else rows.get("rows", [rows])
    return {key: value for key, value in rows[0].items() if key not in TIMINGS}


def chat_answers(root: Path) -> list[dict]:
    """The grounded chat's seeded conversations (bench/faithfulness.py): question and answer of every turn."""
    with tempfile.TemporaryDirectory() as out:
        report = Path(out) / "faithfulness.md"
        command = [sys.executable, str(HERE / "faithfulness.py"), "--root", str(root), "--backends", "grounded"]
        subprocess.run(command + ["--conversations", "4", "--out", str(report)], check=True, capture_output=True)
        turns = json.loads(report.with_suffix(".json").read_text())["turns"]
    return [{"question": t["question"], "answer": t["answer"]} for t in turns]


def measure(root: Path, label: str, routes: list[str], sets: list[str] | None = None) -> None:
    """Each route's eval rows and the chat's answers, added to what the label holds already."""
    kept = KEPT / f"{label}.json"
    figures: dict = json.loads(kept.read_text()) if kept.is_file() else {"eval": {}}
    if "chat" not in figures:
        figures["chat"] = chat_answers(root)
    for dataset in (d for d in image_sets(root) if sets is None or d.name in sets):
        for route in routes:
            if route == "full-shot" and len(list((dataset / "train" / "good").iterdir())) > FULL_SHOT_MAX:
                continue
            print(f"{dataset.name}, {route} …", file=sys.stderr)
            figures["eval"][f"{dataset.name}, {route}"] = eval_figures(dataset, ROUTES[route])
    KEPT.mkdir(exist_ok=True)
    kept.write_text(json.dumps(figures, indent=1, sort_keys=True))


def differences(before, after, where: str = "") -> list[str]:
    """Every leaf that differs: numbers at the third decimal, anything else exactly."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted((set(before) | set(after)) - set(TIMINGS))  # timings differ by the machine's load
        return [d for k in keys for d in differences(before.get(k), after.get(k), f"{where}/{k}")]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in differences(b, a, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(before, numbers) and isinstance(after, numbers) and not isinstance(before, bool):
        return [] if round(before, 3) == round(after, 3) else [f"{where}: {before:.4f} → {after:.4f}"]
    if before == after:
        return []
    old, new = str(before), str(after)
    at = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    start = max(0, at - 40)  # the words around the first difference
    return [f"{where}: …{old[start : at + 60]!r} → …{new[start : at + 60]!r}"]


def compare(before: str, after: str) -> None:
    old, new = (json.loads((KEPT / f"{label}.json").read_text()) for label in (before, after))
    found = differences(old, new)
    count = sum(len(set(row) - set(TIMINGS)) for row in old["eval"].values()) + len(old["chat"])
    lines = [
        "# Behaviour unchanged by the restructuring",
        "",
        f"Command: `python bench/equivalence.py compare {before} {after}` (each side measured with "
        "`python bench/equivalence.py measure --label LABEL` on its commit).",
        "",
        f"{len(old['eval'])} eval rows, every metric but timings ({'; '.join(sorted(old['eval']))}), and "
        f"{len(old['chat'])} grounded chat answers: {count} values compared, **{len(found)} differ** at the third "
        "decimal.",
        "",
        *(f"- {line}" for line in found),
    ]
    (HERE / "equivalence.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    measuring = commands.add_parser("measure")
    measuring.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    measuring.add_argument("--label", required=True)
    measuring.add_argument("--routes", nargs="*", choices=list(ROUTES), default=list(ROUTES))
    measuring.add_argument("--sets", nargs="*", help="only these shared sets (default: all)")
    comparing = commands.add_parser("compare")
    comparing.add_argument("before")
    comparing.add_argument("after")
    args = parser.parse_args()
    if args.command == "measure":
        if not args.root.is_dir():
            sys.exit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")
        measure(args.root, args.label, args.routes, args.sets)
    else:
        compare(args.before, args.after)


if __name__ == "__main__":
    main()
