#!/usr/bin/env python3
"""Verdict benchmark: the decision's constants chosen leave-one-set-out, and what a user sees with them.

Two steps. **Measure** (`--categories C`, one process per category if you like): for each shared category, k ∈
{1, 2, 4, 8} references (3 draws each) and all of them (PatchCore, one draw), fit the default expert once and
keep what every decision rule is computed from — the references' leave-one-out scores, 24 synthetic anomalies'
scores (`synthetic_evidence.anomalous_evidence`), the test images' scores — in bench/verdicts-<category>.json, with
zero-shot route B's outcome. Backbone features are computed once per category and cached.

**Choose and report** (always, from every category measured): every `calibration.DecisionRule` of the grids is
applied per image, through the shipped `calibrate` and `Calibration.probability`, to every fit. For each
category left out, the rule is chosen on the other categories only and reported on the one left out: first the
threshold (fewest (category, k) where it loses more than 0.01 balanced accuracy to the plain t-bound, then the
smallest worst loss, then the best mean balanced accuracy: the rule never much worse before the one best on
average), then for it the probability's width (fewest (category, k ≥ 4 or full-shot) with
ECE above 0.10, then the lowest mean ECE there). The default shipped is the rule chosen on all categories. Also reported: the plain t-bound (the baseline), the
stated operating point `max_false_alarms = 0.05` full-shot, and how far each category's normal test images sit
from its references (the shift the user is warned of).

    python bench/verdicts.py --categories magnetic_tile   # measure one category (kept per category)
    python bench/verdicts.py --table-only                 # choose leave-one-set-out → bench/verdicts.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from functools import cache, partial
from pathlib import Path

import numpy as np
import torch
from scipy.special import stdtr

from anomalens import Inspector
from anomalens.batch_evidence import normal_mode
from anomalens.calibration import Calibration, DecisionRule, calibrate
from anomalens.data.datasets import load_split
from anomalens.experts import NormalImages, expert_class
from anomalens.experts.base import ExpertInput
from anomalens.features import patch_features
from anomalens.metrics import calibration_errors
from anomalens.pixels import to_batch
from anomalens.preprocessing import as_images, batches
from anomalens.robust import median_and_spread
from anomalens.synthetic_evidence import SYNTHETIC_SOURCES, anomalous_evidence

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
CACHE = Path.home() / ".cache" / "anomalens-bench" / "verdict-features"
CATEGORIES = ("ballscrew_pitting", "battery_weld", "magnetic_tile", "mpdd_metal_plate", "mvtec_transistor")
SHOTS = ("1", "2", "4", "8", "all")
DRAWS = 3
SIZE = 256  # the default inspector's image size
BASELINE = DecisionRule(prediction_level=0.90, synthetic_max_normal=0, width=1.0)  # the plain t-bound
THRESHOLD_GRID = [  # where the line goes; then, for the rule chosen, the probability's width (WIDTHS)
    DecisionRule(level, quantile, most, least)
    for level, quantile, most, least in itertools.product(
        (0.5, 0.7, 0.8, 0.9, 0.95), (0.1, 0.25, 0.5), (0, 2, 4, 8, 16, 64, 10**9), (1, 2)
    )
    if least <= most or most == 0
]
WIDTHS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
LOSS = 0.01  # balanced accuracy a rule may lose to the plain t-bound on a (category, k)
MAX_ECE = 0.10  # … and its ECE at k ≥ 4 and full-shot
ECE_SHOTS = ("4", "8", "all")


# --- measure -------------------------------------------------------------------------------------------------


def pixel_batches(samples) -> Iterator[torch.Tensor]:
    """The images squashed to 256 × 256 as the default inspector reads them, (B, 3, S, S) in [0, 1]."""
    for item in batches(as_images([str(s.path) for s in samples]), 8):
        assert isinstance(item, list), f"unreadable: {item}"
        yield to_batch([entry.image for entry in item], SIZE)


def features(root: Path, category: str, split: str) -> tuple[list[torch.Tensor], np.ndarray]:
    """Per-stage patch features (float16) of a split, cached, and its labels (1 = defective)."""
    path = CACHE / f"{category}-{split}.pt"  # EfficientNet-Lite0 at 256 px, the default inspector's
    samples = load_split(root, category, split)
    labels = np.array([s.label for s in samples])
    if path.exists():
        return torch.load(path), labels
    backbone = Inspector().backbone
    parts = [patch_features(backbone, pixels) for pixels in pixel_batches(samples)]
    stored = [torch.cat(stage).half() for stage in zip(*parts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stored, path)
    return stored, labels


def train_pixels(root: Path, category: str) -> torch.Tensor:
    """The training images as the inspector reads them, uint8 (N, 3, S, S), cached."""
    path = CACHE / f"{category}-train-pixels.pt"
    if path.exists():
        return torch.load(path)
    parts = [p.mul(255).round().to(torch.uint8) for p in pixel_batches(load_split(root, category, "train"))]
    stored = torch.cat(parts)
    torch.save(stored, path)
    return stored


def fits(root: Path, category: str, shots: list[str]) -> Iterator[dict]:
    """Each fit's scores in turn: the references' leave-one-out ones, synthetic anomalies', the test set's."""
    train, _ = features(root, category, "train")
    test, _ = features(root, category, "test")
    train, test = [f.float() for f in train], [f.float() for f in test]
    pixels = train_pixels(root, category)
    embed = partial(patch_features, Inspector().backbone)
    for shot in shots:
        n = len(train[0]) if shot == "all" else int(shot)
        for draw in range(1 if shot == "all" else DRAWS):  # all references: one draw (the coreset is seeded)
            rng = np.random.default_rng(draw)
            pick = np.arange(n) if shot == "all" else np.sort(rng.choice(len(train[0]), n, False))
            expert = expert_class("auto", n).create(Inspector().config, n)
            evidence = expert.fit(NormalImages([f[pick] for f in train]))
            synthetic = anomalous_evidence(expert, pixels[pick[:SYNTHETIC_SOURCES]], embed)
            yield {
                "shots": shot,
                "draw": draw,
                "normal": evidence.scores.double().tolist(),
                "synthetic": [] if synthetic is None else synthetic.tolist(),
                "test": expert.score(ExpertInput(features=test))[1].double().tolist(),
            }
            print(category, shot, draw, flush=True)


def zero_shot_outcome(root: Path, category: str) -> dict:
    """Route B (the test images scored against each other, `Inspector.zero_shot("mutual")`), decided by its
    own batch calibration, as a user gets it."""
    samples = load_split(root, category, "test")
    results = Inspector.zero_shot("mutual").predict([s.path for s in samples])
    labels = np.array([s.label for s, r in zip(samples, results) if r.ok])
    scores = np.array([r.score for r in results if r.ok])
    verdicts = np.array([r.anomalous for r in results if r.ok])
    return outcome(labels, scores, verdicts, np.array([r.probability for r in results if r.ok]))


# --- decide and score --------------------------------------------------------------------------------------


def balanced(labels: np.ndarray, verdicts: np.ndarray) -> float:
    return float((verdicts[labels == 1].mean() + 1 - verdicts[labels == 0].mean()) / 2)


def oracle(labels: np.ndarray, scores: np.ndarray) -> float:
    """The best balanced accuracy of any single threshold, chosen with the test labels."""
    return max(balanced(labels, scores >= t) for t in np.r_[np.unique(scores), np.inf])


def outcome(labels: np.ndarray, scores: np.ndarray, verdicts: np.ndarray, probabilities: np.ndarray) -> dict:
    """Verdict and probability quality against the test labels, and the oracle gap of the scores."""
    ba = balanced(labels, verdicts)
    return {
        "accuracy": float(np.mean(verdicts == (labels == 1))),
        "balanced": ba,
        "recall": float(verdicts[labels == 1].mean()),
        "false_alarms": float(verdicts[labels == 0].mean()),
        "ece": float(calibration_errors(labels, probabilities)[0]),
        "gap": float(oracle(labels, scores) - ba),
    }


def decided(fit: dict, labels: np.ndarray, rule: DecisionRule, max_false_alarms: float | None = None) -> dict:
    """One fit decided per image by `rule`, through the shipped calibration."""
    normal, test = np.array(fit["normal"]), np.array(fit["test"])
    calibration: Calibration = calibrate(normal, [np.zeros((1, 1))], "leave-one-out", np.array(fit["synthetic"]),
                                         max_false_alarms, rule)  # fmt: skip
    spread, dof = calibration.predictive()  # `Calibration.probability`, vectorised (tests/test_calibration.py)
    probabilities = stdtr(dof, (test - calibration.image_threshold) / spread)
    return outcome(labels, test, test >= calibration.image_threshold, probabilities)


def ece_bound(fit: dict, labels: np.ndarray) -> float:
    """The lowest ECE the decision's probability (a Student-t predictive, n − 1 degrees of freedom) reaches on
    this fit with ANY threshold and width — both chosen with the test labels: what no choice of the rule's
    constants can beat."""
    normal, test = np.array(fit["normal"]), np.array(fit["test"])
    dof, spread = max(len(normal) - 1, 1), median_and_spread(normal)[1]
    return min(
        float(calibration_errors(labels, stdtr(dof, (test - threshold) / (width * spread)))[0])
        for threshold in np.quantile(test, np.linspace(0, 1, 41))
        for width in np.geomspace(0.1, 30, 25)
    )


FAMILY_WIDTHS = np.geomspace(0.1, 30, 30)


def family_ece_bound(fits: list[dict], labels: np.ndarray) -> float:
    """The lowest mean ECE over the draws of one (category, k) that any threshold rule of THRESHOLD_GRID reaches
    with any width of FAMILY_WIDTHS, both chosen with that cell's test labels: what no choice of the decision's
    constants can beat (`ece_bound` frees the threshold from the rules altogether)."""
    best = np.inf
    for rule in THRESHOLD_GRID:
        eces = np.zeros(len(FAMILY_WIDTHS))
        for fit in fits:
            normal, test = np.array(fit["normal"]), np.array(fit["test"])
            calibration = calibrate(normal, [np.zeros((1, 1))], "leave-one-out", np.array(fit["synthetic"]),
                                    None, replace(rule, width=1.0))  # fmt: skip
            spread, dof = calibration.predictive()
            z = (test - calibration.image_threshold) / spread
            eces += [calibration_errors(labels, stdtr(dof, z / width))[0] / len(fits) for width in FAMILY_WIDTHS]
        best = min(best, float(eces.min()))
    return best


@cache
def table(rule: DecisionRule) -> dict[tuple[str, str], list[dict]]:
    """{(category, k): one outcome per draw} of `rule`, on every category MEASURED."""
    return {
        (category, shot): [decided(f, np.array(data["labels"]), rule) for f in data["fits"] if f["shots"] == shot]
        for category, data in MEASURED.items()
        for shot in dict.fromkeys(f["shots"] for f in data["fits"])
    }


MEASURED: dict[str, dict] = {}  # category → its measured fits and labels, as `main` reads them


def mean(outcomes: list[dict], column: str) -> float:
    return float(np.mean([o[column] for o in outcomes]))


def choose(baseline: dict, categories: list[str]) -> DecisionRule:
    """The rule that does best on `categories`: first the threshold (THRESHOLD_GRID: fewest (category, k) where
    it loses more than LOSS balanced accuracy to the plain t-bound, then the smallest worst loss — to the third
    decimal — then the highest mean balanced accuracy), then for that threshold the width (WIDTHS: fewest (category, k ≥ 4 or
    full-shot) with ECE above MAX_ECE, then the lowest mean ECE there)."""
    cells = {cell for cell in baseline if cell[0] in categories}

    def threshold_key(rule: DecisionRule) -> tuple:
        outcomes = table(rule)
        losses = [mean(baseline[cell], "balanced") - mean(outcomes[cell], "balanced") for cell in cells]
        misses = sum(loss > LOSS for loss in losses)
        return misses, round(max(losses), 3), -np.mean([mean(outcomes[cell], "balanced") for cell in cells])

    rule = min(THRESHOLD_GRID, key=threshold_key)

    def width_key(width: float) -> tuple:
        outcomes = table(replace(rule, width=width))
        eces = [mean(outcomes[cell], "ece") for cell in cells if cell[1] in ECE_SHOTS]
        return sum(ece > MAX_ECE for ece in eces), float(np.mean(eces))

    return replace(rule, width=min(WIDTHS, key=width_key))


# --- report ------------------------------------------------------------------------------------------------


COLUMNS = ("accuracy", "balanced", "recall", "false_alarms", "ece", "gap")


def cells(outcomes: list[dict]) -> str:
    parts = []
    for column in COLUMNS:
        values = np.array([o[column] for o in outcomes])
        spread = f" ({values.min():.3f}–{values.max():.3f})" if len(values) > 1 else ""
        parts.append(f"{values.mean():.3f}{spread}")
    return " | ".join(parts)


def shift(data: dict) -> str:
    """How far the normal test images' scores sit from the references' leave-one-out ones (full-shot), in the
    references' spreads: by the labels, and as the model sees it (the test batch's low mode, no labels)."""
    fit = next(f for f in data["fits"] if f["shots"] == "all")
    median, spread = median_and_spread(np.array(fit["normal"]))
    test, labels = np.array(fit["test"]), np.array(data["labels"])
    by_labels = (np.median(test[labels == 0]) - median) / spread
    low_mode = (np.median(test[normal_mode(test)]) - median) / spread
    return f"{by_labels:+.1f} σ (by labels) / {low_mode:+.1f} σ (batch low mode)"


def describe(rule: DecisionRule) -> str:
    most = "" if rule.synthetic_max_normal >= 10**9 else f" ≤ {rule.synthetic_max_normal}"
    where = f"{rule.synthetic_min_normal} ≤ n{most}"
    synthetic = "never" if rule.synthetic_max_normal == 0 else f"q = {rule.anomaly_quantile}, {where}"
    return f"t-bound {rule.prediction_level}, synthetic {synthetic}, width {rule.width}"


def write_markdown(path: Path, measured: dict[str, dict]) -> DecisionRule:
    categories = [c for c in CATEGORIES if c in measured]
    baseline = table(BASELINE)
    lines = [
        "# Verdict benchmark: the decision chosen leave-one-set-out",
        "",
        f"Command: `python bench/verdicts.py --categories C` for each category, then `--table-only` "
        f"({time.strftime('%Y-%m-%d')}; cached EfficientNet-Lite0 features at 256 px).",
        "",
        (__doc__ or "").split("\n\n")[2].replace("\n", " "),
        "",
        f"Grid: {len(THRESHOLD_GRID)} thresholds (t-bound level × synthetic quantile × most normal images the",
        f"synthetic rule applies to), then {len(WIDTHS)} probability widths for the threshold chosen. k-shot rows: mean (min–max) over 3 draws; `all`: one draw. Every",
        "verdict is per image (batch evidence is opt-in, `--batch-evidence`). Oracle gap = best balanced accuracy",
        "of any single threshold chosen with the test labels − the rule's. ECE bound (t-bound rows): the lowest",
        "ECE the Student-t probability reaches with any threshold and width, both chosen with the test labels.",
        "",
        "## The rule chosen with each category left out",
        "",
        "| left out | chosen on the others |",
        "|---|---|",
    ]
    chosen = {left: choose(baseline, [c for c in categories if c != left]) for left in categories}
    lines += [f"| {left} | {describe(rule)} |" for left, rule in chosen.items()]
    default = choose(baseline, categories)
    lines += ["", f"Chosen on all categories (the shipped default, `DecisionRule()`): **{describe(default)}**.", ""]
    lines += [
        "## Left out: the chosen rule on the category it was not chosen on, against the plain t-bound",
        "",
        "| category | k | rule | accuracy | balanced acc. | recall | false alarms | ECE | oracle gap | loss vs t-bound |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for category in categories:
        for shot in SHOTS:
            cell = (category, shot)
            if cell not in baseline:
                continue
            loss = mean(baseline[cell], "balanced") - mean(table(chosen[category])[cell], "balanced")
            lines.append(f"| {category} | {shot} | left-out choice | {cells(table(chosen[category])[cell])} | "
                         f"{loss:+.3f} |")  # fmt: skip
            labels = np.array(measured[category]["labels"])
            bound = np.mean([ece_bound(f, labels) for f in measured[category]["fits"] if f["shots"] == shot])
            lines.append(f"| {category} | {shot} | t-bound | {cells(baseline[cell])} | ECE bound {bound:.3f} |")
        if "zero" in measured[category]:
            lines.append(f"| {category} | zero | route B (batch) | {cells([measured[category]['zero']])} | |")
    lines += [
        "",
        "## The shipped default (chosen on all categories) on each",
        "",
        "| category | k | accuracy | balanced acc. | recall | false alarms | ECE | oracle gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {category} | {shot} | {cells(table(default)[(category, shot)])} |" for category, shot in baseline]
    lines += ece_limit(measured, chosen)
    lines += [
        "",
        "## Stated operating point (`--max-false-alarms 5%`, full-shot) and the references' shift",
        "",
        "| category | false alarms | recall | normal test images against the references |",
        "|---|---|---|---|",
    ]
    for category in categories:
        data = measured[category]
        fit = next(f for f in data["fits"] if f["shots"] == "all")
        stated = decided(fit, np.array(data["labels"]), DecisionRule(), max_false_alarms=0.05)
        lines.append(f"| {category} | {stated['false_alarms']:.3f} | {stated['recall']:.3f} | {shift(data)} |")
    path.write_text("\n".join(lines) + "\n")
    return default


def ece_limit(measured: dict[str, dict], chosen: dict[str, DecisionRule]) -> list[str]:
    """Where ECE ≤ MAX_ECE is out of reach of every choice of the decision's constants (`family_ece_bound`)."""
    lines = [
        "",
        "## ECE at k ≥ 4 and full-shot: the left-out choice, and the best any constants reach",
        "",
        "Best any constants reach: the lowest mean ECE of any rule of the threshold grid with any of "
        f"{len(FAMILY_WIDTHS)} widths (0.1–30), chosen per row with its test labels. Where it is above "
        f"{MAX_ECE}, no choice of the rule's constants — leave-one-set-out or not — meets the bound.",
        "",
        "| category | k | left-out choice | best any constants reach | reachable |",
        "|---|---|---|---|---|",
    ]
    for category, data in measured.items():
        labels = np.array(data["labels"])
        for shot in ECE_SHOTS:
            bound = family_ece_bound([f for f in data["fits"] if f["shots"] == shot], labels)
            ece = mean(table(chosen[category])[(category, shot)], "ece")
            lines.append(
                f"| {category} | {shot} | {ece:.3f} | {bound:.3f} | {'yes' if bound <= MAX_ECE else '**no**'} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--shots", nargs="+", default=[*SHOTS, "zero"])
    parser.add_argument("--table-only", action="store_true", help="only choose and report from what is measured")
    parser.add_argument("--out", type=Path, default=HERE / "verdicts.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    for category in [] if args.table_only else args.categories:
        path = HERE / f"verdicts-{category}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["labels"] = features(args.root, category, "test")[1].tolist()
        data["fits"] = [f for f in data.get("fits", []) if f["shots"] not in args.shots]  # others' kept
        for fit in fits(args.root, category, [k for k in args.shots if k != "zero"]):
            data["fits"].append(fit)
            path.write_text(json.dumps(data))
        if "zero" in args.shots:
            data["zero"] = zero_shot_outcome(args.root, category)
            path.write_text(json.dumps(data))
    measured = {c: json.loads(p.read_text()) for c in CATEGORIES if (p := HERE / f"verdicts-{c}.json").exists()}
    complete = {c: d for c, d in measured.items() if {f["shots"] for f in d.get("fits", [])} >= set(SHOTS)}
    MEASURED.update(complete)
    default = write_markdown(args.out, complete)
    print("chosen on all:", asdict(default))


if __name__ == "__main__":
    main()
