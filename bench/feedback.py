#!/usr/bin/env python3
"""Simulated operator (issue 32): how much do corrections teach a model?

Per shared set, shot count k, seed and variant: a default inspector is fitted on k seeded normal training
images; the test images are split in a seeded order, half of the defective and half of the good ones held
aside for scoring only (never corrected), and the rest are streamed. After each prediction a simulated
operator corrects what is wrong: a verdict error (a false alarm marked normal; a missed defect marked
defective), and, where the set names two or more defect types, a flagged defect whose type the model does not
name right. A defect is given with its mask, or only its box, or only its verdict (the variants "mask", "box",
"label"), and its type where the set names types. The careless operator (variant "careless": masks, like
"mask") gets a tenth of the corrections wrong (the opposite verdict). Corrections are taught in rounds, the
model fixed in between (`anomalens.teaching.teach`, each round a new version), until CHECKPOINTS corrections.

At each checkpoint, on the held-aside half: verdict accuracy and balanced accuracy, ECE (10 bins), pixel AUROC
and AUPRO, and the grounded chat's answers to "Where is the defect?" (the 3×3 cell of the mask's largest
region, as bench/qa_bench.py asks) and "Which defect is it?" (sets naming two or more types). Rows are kept
per set (bench/feedback-<set>.json, written after every run, so sets can run as processes of their own); the
table (mean ± spread over seeds, by set, k, variant and corrections) is written from all that are there.

    python bench/feedback.py --root ../shared/datasets                      # every set → bench/feedback.md
    python bench/feedback.py --sets magnetic_tile --shots 1 --seeds 0      # one run's rows (others kept)
    python bench/feedback.py --table-only
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from anomalens import Inspector
from anomalens.data import load_mask, load_split
from anomalens.language import ChatSession, findings_from
from anomalens.metrics import aupro, calibration_errors, pixel_auroc
from anomalens.teaching import Correction, teach
from qa_bench import QUESTIONS, mask_cell, picked_option

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
SETS = ("battery_weld", "magnetic_tile", "mpdd_metal_plate", "ballscrew_pitting", "mvtec_transistor")
CHECKPOINTS = (5, 10, 20, 50)  # corrections taught (0: the fitted model)
VARIANTS = ("mask", "box", "label", "careless")
CARELESS = 0.1  # share of the careless operator's corrections that are wrong


def held_aside(test: list, seed: int) -> tuple[list, list]:
    """(stream, held): the test images in a seeded order, half of the defective and half of the good ones held."""
    order = random.Random(seed).sample(test, len(test))
    held = {id(s) for label in (0, 1) for s in [t for t in order if t.label == label][::2]}
    return [s for s in order if id(s) not in held], [s for s in order if id(s) in held]


def mask_of(sample, result) -> np.ndarray:
    width, height = result.image_size
    if sample.label and sample.mask_path:
        return load_mask(sample.mask_path, (height, width))
    return np.zeros((height, width), bool)


def correction_for(
    sample, result, model: Inspector, variant: str, typed: bool, rng: random.Random
) -> Correction | None:
    """What the simulated operator says about one prediction, if anything."""
    head = model.defect_types
    named = head.classify(result.descriptor).name if head and result.descriptor is not None else None
    wrong_type = typed and sample.label and result.anomalous and named != sample.defect
    if bool(result.anomalous) == bool(sample.label) and not wrong_type:
        return None
    defective = bool(sample.label) != (variant == "careless" and rng.random() < CARELESS)
    if not defective:
        return Correction(sample.path, "normal")
    mask = mask_of(sample, result) if sample.label else None
    kind = sample.defect if typed and sample.label else None
    if variant in ("mask", "careless") and mask is not None and mask.any():
        return Correction(sample.path, "defective", type=kind, mask=sample.mask_path)
    if variant == "box" and mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        return Correction(sample.path, "defective", type=kind, box=box)
    return Correction(sample.path, "defective", type=kind)


def scores(model: Inspector, held: list, types: list[str]) -> dict:
    """The metrics on the held-aside images."""
    results = model.predict([s.path for s in held])
    labels = np.array([int(bool(s.label)) for s in held])
    verdicts = np.array([int(bool(r.anomalous)) for r in results])
    masks = [mask_of(s, r) for s, r in zip(held, results)]
    maps = [r.anomaly_map for r in results]
    answers = defaultdict(list)
    head = model.defect_types
    for sample, result, mask in zip(held, results, masks):
        if not sample.label:
            continue
        guess = head.classify(result.descriptor) if head and result.descriptor is not None else None
        session = ChatSession(findings_from(result, defect_type=guess))
        answers["where"].append(
            picked_option("where", session.ask(QUESTIONS["where"]).answer, types) == mask_cell(mask)
        )
        if len(types) > 1:
            said = picked_option("type", session.ask(QUESTIONS["type"]).answer, types)
            answers["which"].append(said == sample.defect)
    recall, specificity = verdicts[labels == 1].mean(), 1 - verdicts[labels == 0].mean()
    return {
        "accuracy": float((verdicts == labels).mean()),
        "balanced": float((recall + specificity) / 2),
        "ece": calibration_errors(labels, [r.probability for r in results])[0],
        "pixel_auroc": pixel_auroc(masks, maps),
        "aupro": aupro(masks, maps),
        **{kind: float(np.mean(right)) for kind, right in answers.items()},
    }


def run(
    root: Path, category: str, shots: int, seed: int, variant: str, synthetic: int, checkpoints=CHECKPOINTS
) -> list[dict]:
    """One simulated operator's rows: the fitted model's, then one per checkpoint reached."""
    train = load_split(root, category, "train")
    test = load_split(root, category, "test")
    types = sorted({s.defect for s in test if s.label and s.defect})
    stream, held = held_aside(test, seed)
    refs = [s.path for s in random.Random(seed).sample(train, shots)]
    model = Inspector(expert_settings={"synthetic_images": synthetic}, seed=seed).fit(refs)
    key = {"set": category, "shots": shots, "seed": seed, "variant": variant}
    rows = [key | {"corrections": 0, "taught": 0} | scores(model, held, types)]
    rng, pending, taught, started = random.Random(seed + 1), [], 0, time.perf_counter()
    goals = iter(checkpoints)
    goal = next(goals)
    for sample in stream:
        [result] = model.predict(sample.path)
        if not result.ok:
            continue
        if (correction := correction_for(sample, result, model, variant, len(types) > 1, rng)) is not None:
            pending.append(correction)
        if taught + len(pending) >= goal or (sample is stream[-1] and pending):
            model, taught = teach(model, pending).inspector, taught + len(pending)
            rows.append(key | {"corrections": goal, "taught": taught} | scores(model, held, types))
            print(json.dumps(rows[-1] | {"seconds": round(time.perf_counter() - started)}), flush=True)
            pending, goal = [], next(goals, None)
            if goal is None:
                break
    return rows


def write_table(path: Path, rows: list[dict], command: str) -> None:
    metrics = ("accuracy", "balanced", "ece", "pixel_auroc", "aupro", "where", "which")
    groups = defaultdict(list)
    for row in rows:
        groups[(row["set"], row["shots"], row["variant"], row["corrections"])].append(row)
    lines = [
        "# Teaching: a simulated operator's corrections (bench/feedback.py)",
        "",
        f"Written {time.strftime('%Y-%m-%d')}. Command: `{command}`. Mean ± spread (max − min) over seeds, on the "
        "held-aside half of each set; `taught`: corrections taught (a stream may end before a checkpoint).",
        "",
        "| set | k | operator | corrections | taught | seeds | " + " | ".join(metrics) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(metrics),
    ]
    for (category, shots, variant, corrections), group in sorted(groups.items()):
        cells = []
        for metric in metrics:
            values = [r[metric] for r in group if r.get(metric) is not None and np.isfinite(r[metric])]
            cells.append(f"{np.mean(values):.3f} ± {np.ptp(values):.3f}" if values else "–")
        taught = f"{np.mean([r['taught'] for r in group]):.0f}"
        lines.append(
            f"| {category} | {shots} | {variant} | {corrections} | {taught} | {len(group)} | "
            + " | ".join(cells)
            + " |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--shots", nargs="*", type=int, default=[1, 4])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--synthetic", type=int, default=64, help="synthetic anomalies a taught head trains on")
    parser.add_argument("--checkpoints", nargs="*", type=int, default=list(CHECKPOINTS), help="corrections taught")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "feedback.md")
    parser.add_argument("--rows", type=Path, default=HERE, help="folder of the per-set rows (feedback-<set>.json)")
    args = parser.parse_args()
    for category in [] if args.table_only else args.sets:
        path = args.rows / f"feedback-{category}.json"
        kept = json.loads(path.read_text()) if path.exists() else []
        for shots in args.shots:
            for seed in args.seeds:
                for variant in args.variants:
                    key = (shots, seed, variant)
                    kept = [r for r in kept if (r["shots"], r["seed"], r["variant"]) != key]
                    kept += run(args.root, category, shots, seed, variant, args.synthetic, args.checkpoints)
                    path.write_text(json.dumps(kept, indent=1))
    rows = [row for path in sorted(args.rows.glob("feedback-*.json")) for row in json.loads(path.read_text())]
    write_table(args.out, rows, "python bench/feedback.py " + " ".join(sys.argv[1:]))
    print(f"wrote {args.out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
