#!/usr/bin/env python3
"""Simulated operator (issue 32): how much do corrections teach a model?

Per shared set, shot count k, seed and variant: a default inspector is fitted on k seeded normal training
images; the test images are split in a seeded order, half of the defective and half of the good ones held aside
for scoring only (never corrected), and the rest are streamed, mixed in a seeded order with the training images
the model was not fitted on (a line's good production: the test half alone holds too few verdict errors for 50
corrections on the small sets). After each prediction a simulated operator corrects what is wrong: a verdict
error (a false alarm marked normal; a missed defect marked defective), and, where the set names two or more
defect types, a flagged defect whose type the model does not name right. A defect is given with its mask, or
only its box, or only its verdict (the variants "mask", "box", "label"), and its type where the set names
types. The careless operator (variant "careless": masks, like "mask") gets a tenth of the corrections wrong
(the opposite verdict). Corrections are taught in rounds, the model fixed in between
(`anomalens.teaching.teach`, each round a new version), until CHECKPOINTS corrections; each round is also given
the parts passed so far that the operator let stand (the latest MAX_PASSED), as a line's records hold them.

At each checkpoint, on the held-aside half: verdict accuracy and balanced accuracy, ECE (10 bins), pixel AUROC
and AUPRO, and the grounded chat's answers to "Where is the defect?" (the 3×3 cell of the mask's largest
region, as bench/qa_bench.py asks) and "Which defect is it?" (sets naming two or more types). Rows are kept
per set (bench/feedback-<set>.json, written after every run, so sets can run as processes of their own); the
table (mean ± spread over seeds, by set, k, variant and corrections) is written from all that are there.
`--all-taught` adds, per seed, the k = 8 default taught every test defect with its mask, the held-aside ones
included (`all_taught_rows`; `--backbone` another backbone's): not a result — what "where" is when the maps have
learned the very defects asked about.

    python bench/feedback.py --root ../shared/datasets                      # every set → bench/feedback.md
    python bench/feedback.py --sets magnetic_tile --shots 1 --seeds 0      # one run's rows (others kept)
    python bench/feedback.py --sets mpdd_metal_plate --shots --all-taught  # those rows alone
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
from anomalens.calibration import DecisionRule
from anomalens.data import load_mask, load_split
from anomalens.language import ChatSession, findings_from
from anomalens.metrics import aupro, calibration_errors, pixel_auroc
from anomalens.names import DEFAULT_BACKBONE
from anomalens.teaching import MAX_PASSED, Correction, teach
from qa_bench import QUESTIONS, mask_cell, picked_option

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
SETS = ("battery_weld", "magnetic_tile", "mpdd_metal_plate", "ballscrew_pitting", "mvtec_transistor")
CHECKPOINTS = (5, 10, 20, 50)  # corrections taught (0: the fitted model)
VARIANTS = ("mask", "box", "label", "careless")
CARELESS = 0.1  # share of the careless operator's corrections that are wrong
PASSED_LEVELS = (0.8, 0.9, 0.95, 0.975)  # `DecisionRule.passed_level` on trial (bench only)
REFERENCE_SHOTS = {"k = 8 default": 8, "full-shot": 0}  # what the acceptance compares with (0: every image)
ALL_TAUGHT = "every defect taught"  # the held-aside half's too (`all_taught_rows`)


def split(root: Path, category: str, seed: int) -> tuple[list, list[str], list, list]:
    """(training images, the defect types the test set names, stream, held): see `held_aside`."""
    test = load_split(root, category, "test")
    types = sorted({s.defect for s in test if s.label and s.defect})
    return load_split(root, category, "train"), types, *held_aside(test, seed)


def held_aside(test: list, seed: int) -> tuple[list, list]:
    """(stream, held): the test images in a seeded order, half of the defective and half of the good ones held."""
    order = random.Random(seed).sample(test, len(test))
    held = {id(s) for label in (0, 1) for s in [t for t in order if t.label == label][::2]}
    return [s for s in order if id(s) not in held], [s for s in order if id(s) in held]


def production(stream: list, unused: list, seed: int) -> list:
    """The streamed test images and the unused training images (all good) in one seeded order."""
    mixed = stream + unused
    return random.Random(seed + 2).sample(mixed, len(mixed))


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
    return {
        "accuracy": float((verdicts == labels).mean()),
        "balanced": balanced(labels, verdicts),
        "rule": model.calibration.rule,
        "oracle": max(balanced(labels, [r.score >= r_.score for r in results]) for r_ in results),
        "by_level": by_level(model, results, labels),
        "ece": calibration_errors(labels, [r.probability for r in results])[0],
        "pixel_auroc": pixel_auroc(masks, maps),
        "aupro": aupro(masks, maps),
        **{kind: float(np.mean(right)) for kind, right in answers.items()},
    }


def balanced(labels: np.ndarray, verdicts) -> float:
    verdicts = np.asarray(verdicts, bool)
    return float((verdicts[labels == 1].mean() + 1 - verdicts[labels == 0].mean()) / 2)


def by_level(model: Inspector, results: list, labels: np.ndarray) -> dict[str, float]:
    """Balanced accuracy had the passed parts placed the line at another prediction level
    (`DecisionRule.passed_level`), the model as taught; a known defect is flagged whatever the line."""
    balanced_at = {}
    for level in PASSED_LEVELS:
        line = model.evidence.calibrated(rule=DecisionRule(passed_level=level)).image_threshold
        balanced_at[str(level)] = balanced(labels, [bool(r.known_defect) or r.score >= line for r in results])
    return balanced_at


def run(
    root: Path, category: str, shots: int, seed: int, variant: str, synthetic: int, checkpoints=CHECKPOINTS
) -> list[dict]:
    """One simulated operator's rows: the fitted model's, then one per checkpoint reached."""
    train, types, stream, held = split(root, category, seed)
    refs = random.Random(seed).sample(train, shots)
    model = Inspector(expert_settings={"synthetic_images": synthetic}, seed=seed).fit([s.path for s in refs])
    stream = production(stream, [s for s in train if s not in refs], seed)
    key = {"set": category, "shots": shots, "seed": seed, "variant": variant}
    rows = [key | {"corrections": 0, "taught": 0} | scores(model, held, types)]
    rng, pending, passed, taught, started = random.Random(seed + 1), [], [], 0, time.perf_counter()
    goals = iter(checkpoints)
    goal = next(goals)
    for sample in stream:
        [result] = model.predict(sample.path)
        if not result.ok:
            continue
        if (correction := correction_for(sample, result, model, variant, len(types) > 1, rng)) is not None:
            pending.append(correction)
        elif not result.anomalous:
            passed.append(sample.path)
        if taught + len(pending) >= goal or (sample is stream[-1] and pending):
            model, taught = teach(model, pending, passed=passed[-MAX_PASSED:]).inspector, taught + len(pending)
            rows.append(key | {"corrections": goal, "taught": taught} | scores(model, held, types))
            print(json.dumps(rows[-1] | {"seconds": round(time.perf_counter() - started)}), flush=True)
            pending, goal = [], next(goals, None)
            if goal is None:
                break
    return rows


def reference_rows(root: Path, category: str, seed: int) -> list[dict]:
    """Today's k = 8 default and full-shot model, untaught, on the same held-aside half: what the acceptance
    compares a taught model with (bench/verdicts.md measures them on the whole test set, over other draws)."""
    train, types, _, held = split(root, category, seed)
    rows = []
    for variant, shots in REFERENCE_SHOTS.items():
        picked = random.Random(seed).sample(train, shots) if shots else train
        model = Inspector(seed=seed).fit([s.path for s in picked])
        key = {"set": category, "shots": len(picked), "seed": seed, "variant": variant}
        rows.append(key | {"corrections": 0, "taught": 0} | scores(model, held, types))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def all_taught_rows(root: Path, category: str, seed: int, backbone: str = DEFAULT_BACKBONE) -> list[dict]:
    """The k = 8 default (on `backbone`) taught every test defect with its mask — the held-aside half's included,
    so it is scored on defects it learned — beside the unused training images as passed parts. Not a result: what
    "where" is once the maps have learned the very defects asked about; were how much they are taught what limits
    it, this would reach the target."""
    train, types, stream, held = split(root, category, seed)
    refs = random.Random(seed).sample(train, 8)
    model = Inspector(backbone, expert_settings={"synthetic_images": 64}, seed=seed).fit([s.path for s in refs])
    defects = [Correction(s.path, "defective", mask=s.mask_path) for s in stream + held if s.label and s.mask_path]
    passed = [s.path for s in train if s not in refs][-MAX_PASSED:]
    taught = teach(model, defects, passed=passed).inspector
    variant = ALL_TAUGHT if backbone == DEFAULT_BACKBONE else f"{ALL_TAUGHT}, {backbone}"
    key = {"set": category, "shots": 8, "seed": seed, "variant": variant}
    found = {k: v for k, v in scores(taught, held, types).items() if k != "which"}  # no type taught: not asked
    row = key | {"corrections": len(defects), "taught": len(defects)} | found
    print(json.dumps(row), flush=True)
    return [row]


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
    path.write_text("\n".join(lines + acceptance_lines(rows) + where_lines(rows) + level_lines(rows)) + "\n")


def where_lines(rows: list[dict]) -> list[str]:
    """Issue 32's "where" overall: from k = 1, the boxing operator's after 20 corrections (each set's mean over
    its seeds, then over sets), beside every defect taught's (`all_taught_rows`) on the same sets."""
    runs: dict = defaultdict(dict)
    everything: dict = defaultdict(list)
    for row in rows:
        if row["shots"] == 1 and row["variant"] == "box":
            runs[row["set"]][(row["seed"], row["corrections"])] = row
        if row["variant"] == ALL_TAUGHT:
            everything[row["set"]].append(row["where"])
    after = {name: np.mean([r["where"] for r in _reached(run, 20).values()]) for name, run in runs.items()}
    if not after:
        return []
    both = sorted(set(after) & set(everything))
    line = f'"Where" overall, boxing operator from k = 1 after 20 corrections: {np.mean(list(after.values())):.3f} '
    line += f"({len(after)} sets)"
    if both:
        line += (
            f"; with every defect taught, the held-aside ones included: "
            f"{np.mean([np.mean(everything[n]) for n in both]):.3f} ({len(both)} sets)"
        )
    return ["", line + "."]


def level_lines(rows: list[dict]) -> list[str]:
    """`DecisionRule.passed_level` chosen with each set left out, on the taught models' rows of the others
    (corrections > 0, every operator but the careless one, as taught under the shipped level): the level whose
    worst per-set loss to the best level there is smallest, then the best mean; reported on the set left out
    against the shipped one."""
    per_set: dict = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if (
            row.get("by_level")
            and row["corrections"]
            and row["variant"] not in ("careless", *REFERENCE_SHOTS)
            and not row["variant"].startswith(ALL_TAUGHT)
        ):
            for level, value in row["by_level"].items():
                per_set[row["set"]][float(level)].append(value)
    means = {name: {q: float(np.mean(v)) for q, v in found.items()} for name, found in per_set.items()}

    def chosen(sets: list[str]) -> float:
        def key(q: float) -> tuple[float, float]:
            losses = [max(means[name].values()) - means[name][q] for name in sets]
            return round(max(losses), 3), -float(np.mean([means[name][q] for name in sets]))

        return min(PASSED_LEVELS, key=key)

    lines = [
        "",
        "## The passed parts' prediction level, chosen with each set left out (taught rows, balanced accuracy)",
        "",
        f"Shipped: {DecisionRule().passed_level}; chosen on every set: "
        f"{chosen(sorted(means)) if means else '–'}. Each row's model is the one taught under the shipped "
        "level (the corrections it was given depend on the line in force): the other levels are read on it.",
        "",
        "| left out | chosen on the others | balanced, chosen | balanced, shipped | "
        + " | ".join(f"level {level}" for level in PASSED_LEVELS)
        + " |",
        "|---|---|---|---|" + "---|" * len(PASSED_LEVELS),
    ]
    for name in sorted(means) if len(means) > 1 else []:  # one set leaves nothing to choose on
        level = chosen([other for other in means if other != name])
        shipped = means[name][DecisionRule().passed_level]
        lines.append(
            f"| {name} | {level} | {means[name][level]:.3f} | {shipped:.3f} | "
            + " | ".join(f"{means[name][x]:.3f}" for x in PASSED_LEVELS)
            + " |"
        )
    return lines


def _reached(runs: dict, checkpoint: int) -> dict[int, dict]:
    """Per seed, the row of the model taught up to `checkpoint` corrections (or all its stream gave)."""
    reached = {}
    for (seed, corrections), row in sorted(runs.items()):
        if corrections <= checkpoint:
            reached[seed] = row
    return reached


def _mean_of(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ({len(values)})" if values else "–"


def acceptance_lines(rows: list[dict]) -> list[str]:
    """Issue 32's curve points, per set and operator: k = 1 after 20 corrections against the k = 8 default
    (beside the best balanced accuracy any one line gives the taught model: what its line leaves), after 50
    against full-shot (both untaught, on the same held-aside half and seeds), and the careless operator's last
    row against no corrections."""
    runs: dict = defaultdict(dict)
    for row in rows:
        runs[(row["set"], row["shots"] if row["variant"] not in REFERENCE_SHOTS else 0, row["variant"])][
            (row["seed"], row["corrections"])
        ] = row
    lines = [
        "",
        "## Acceptance: from k = 1, balanced accuracy after 20 and 50 corrections against the untaught k = 8 and",
        "full-shot models on the same held-aside half and seeds; the careless operator's end against no corrections",
        "",
        "| set | operator | seeds | after 20 | any line, after 20 | k = 8 default | ≥ | after 50 | full-shot | ≥ "
        "| where after 20 | where, every defect taught |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (category, shots, variant), run in sorted(runs.items()):
        if shots != 1 or variant == "careless":
            continue
        twenty, fifty = _reached(run, 20), _reached(run, 50)
        cells = [f"| {category} | {variant} | {len(twenty)}"]
        for taught, reference in ((twenty, "k = 8 default"), (fifty, "full-shot")):
            ref = {seed: r for (seed, _), r in runs.get((category, 0, reference), {}).items() if seed in taught}
            mine = np.mean([taught[seed]["balanced"] for seed in ref]) if ref else np.nan
            theirs = np.mean([r["balanced"] for r in ref.values()]) if ref else np.nan
            best = [f"{np.mean([row['oracle'] for row in taught.values()]):.3f}"] if taught is twenty else []
            cells += [f"{mine:.3f}", *best, f"{theirs:.3f}", "✓" if mine >= theirs else ("✗" if ref else "–")]
        everything = [r["where"] for r in runs.get((category, 8, ALL_TAUGHT), {}).values()]
        cells += [f"{np.mean([r.get('where', np.nan) for r in twenty.values()]):.3f}", _mean_of(everything)]
        lines.append(" | ".join(cells) + " |")
    lines += ["", "| set | seeds | metric | no corrections | careless, last | no worse |", "|---|---|---|---|---|---|"]
    for (category, shots, variant), run in sorted(runs.items()):
        if variant != "careless":
            continue
        last, first = _reached(run, max(CHECKPOINTS)), _reached(run, 0)
        for metric in ("balanced", "ece", "pixel_auroc", "aupro", "where", "which"):
            pairs = [(first[s][metric], last[s][metric]) for s in last if first[s].get(metric) is not None]
            if not pairs:
                continue
            before, after = np.mean(pairs, axis=0)
            ok = after <= before if metric == "ece" else after >= before
            lines.append(
                f"| {category} k = {shots} | {len(pairs)} | {metric} | {before:.3f} | {after:.3f} | "
                f"{'✓' if ok else '✗'} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--shots", nargs="*", type=int, default=[1, 4])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--synthetic", type=int, default=64, help="synthetic anomalies a taught head trains on")
    parser.add_argument("--checkpoints", nargs="*", type=int, default=list(CHECKPOINTS), help="corrections taught")
    parser.add_argument("--references", action="store_true", help="also the k = 8 and full-shot rows per seed")
    parser.add_argument("--all-taught", action="store_true", help=f"also the '{ALL_TAUGHT}' rows per seed")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"the '{ALL_TAUGHT}' rows' backbone")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "feedback.md")
    parser.add_argument("--rows", type=Path, default=HERE, help="folder of the per-set rows (feedback-<set>.json)")
    args = parser.parse_args()
    for category in [] if args.table_only else args.sets:
        path = args.rows / f"feedback-{category}.json"
        kept = json.loads(path.read_text()) if path.exists() else []
        for seed in args.seeds if args.references else []:
            kept = [r for r in kept if not (r["seed"] == seed and r["variant"] in REFERENCE_SHOTS)]
            kept += reference_rows(args.root, category, seed)
            path.write_text(json.dumps(kept, indent=1))
        for seed in args.seeds if args.all_taught else []:
            fresh = all_taught_rows(args.root, category, seed, args.backbone)
            kept = [r for r in kept if (r["seed"], r["variant"]) != (seed, fresh[0]["variant"])] + fresh
            path.write_text(json.dumps(kept, indent=1))
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
