#!/usr/bin/env python3
"""Verdict benchmark: how well does a decision rule, fitted from normal images only, place the yes/no line?

Backbone features of every shared category (train and test) are computed once and cached, so rules are
compared without decoding and embedding the images again. For each category, k ∈ {1, 2, 4, 8} references
(3 draws each) and all of them (PatchCore), today's rule, ours (`anomalens.calibration.calibrate`, with and
without synthetic anomalies, from the same fit) and ours refined by the test set as one batch
(`calibration.batch_refined`), and zero-shot route B, are scored on the test labels: verdict accuracy, balanced
accuracy, recall, false-alarm rate, expected calibration error (10 bins) of the probabilities, and the oracle
gap = the best balanced accuracy any single threshold reaches (chosen with the test labels) − the rule's.
Rows are kept per category (bench/verdicts-<category>.json, written after every fit), so categories can run
as processes of their own; the table is written from all that are there.

    python bench/verdicts.py                                  # every category in turn → bench/verdicts.md
    python bench/verdicts.py --categories magnetic_tile       # one category (others' rows kept)
    python bench/verdicts.py --shots zero                     # only route B's rows (the others' kept)
    python bench/verdicts.py --table-only                     # the table from the rows measured
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch

from anomalens import Inspector
from anomalens.calibration import SYNTHETIC_SOURCES, Calibration, anomalous_evidence, batch_refined, calibrate
from anomalens.data.datasets import load_split
from anomalens.experts import Expert, ExpertInput, NormalImages, expert_class
from anomalens.features import patch_features
from anomalens.maps import smooth
from anomalens.metrics import calibration_errors
from anomalens.pixels import to_batch
from anomalens.preprocessing import as_images, batches

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
CACHE = Path.home() / ".cache" / "anomalens-bench" / "verdict-features"
CATEGORIES = ("battery_weld", "magnetic_tile", "mpdd_metal_plate")
DRAWS = 3
SIZE = 256  # the default inspector's image size


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


def balanced(labels: np.ndarray, verdicts: np.ndarray) -> float:
    return (verdicts[labels == 1].mean() + 1 - verdicts[labels == 0].mean()) / 2


def oracle(labels: np.ndarray, scores: np.ndarray) -> float:
    """The best balanced accuracy of any single threshold, chosen with the test labels."""
    cuts = np.r_[np.unique(scores), np.inf]
    return max(balanced(labels, scores >= t) for t in cuts)


def quality(labels: np.ndarray, scores: np.ndarray, calibration: Calibration) -> dict:
    verdicts = scores >= calibration.image_threshold
    return outcome(labels, scores, verdicts, np.array([calibration.probability(float(s)) for s in scores]))


def outcome(labels: np.ndarray, scores: np.ndarray, verdicts: np.ndarray, probabilities: np.ndarray) -> dict:
    """Verdict and probability quality against the test labels, and the oracle gap of the scores."""
    ece, _ = calibration_errors(labels, probabilities)
    ba = balanced(labels, verdicts)
    return {
        "accuracy": float(np.mean(verdicts == (labels == 1))),
        "balanced": float(ba),
        "recall": float(verdicts[labels == 1].mean()),
        "false_alarms": float(verdicts[labels == 0].mean()),
        "ece": float(ece),
        "gap": float(oracle(labels, scores) - ba),
    }


def fitted_rows(expert: Expert, references: list[torch.Tensor], pixels: torch.Tensor, test, labels, embed) -> dict:
    """Today's rule (normal evidence alone, t-bound) and ours (with synthetic anomalies) for one fit."""
    evidence = expert.fit(NormalImages(references))
    maps = smooth(evidence.maps, SIZE).numpy()
    scores = expert.score(ExpertInput(features=test))[1].numpy()
    anomalies = anomalous_evidence(expert, pixels, embed)
    normal = evidence.scores.numpy()
    ours = calibrate(normal, maps, evidence.method, anomalies)
    return {
        "today": quality(labels, scores, calibrate(normal, maps, evidence.method)),
        "ours": quality(labels, scores, ours),
        "ours+batch": quality(labels, scores, batch_refined(ours, scores.tolist()))
        | {
            "all_defective_raised": batch_refined(ours, scores[labels == 1].tolist()).image_threshold
            > ours.image_threshold
        },
    }


def category_rows(root: Path, category: str, shots: list[str]) -> Iterator[list[dict]]:
    """The rows of each fit in turn (today's rule and ours)."""
    train, _ = features(root, category, "train")
    test, labels = features(root, category, "test")
    train, test = [f.float() for f in train], [f.float() for f in test]
    pixels = train_pixels(root, category)
    backbone = Inspector().backbone
    embed = partial(patch_features, backbone)
    for shot in shots:
        n = len(train[0]) if shot == "all" else int(shot)
        draws = 1 if shot == "all" else DRAWS  # all references: one draw (the coreset is seeded)
        for draw in range(draws):
            pick = (
                np.arange(n) if shot == "all" else np.sort(np.random.default_rng(draw).choice(len(train[0]), n, False))
            )
            expert = expert_class("auto", n).create(Inspector().config, n)
            kept = pick[:SYNTHETIC_SOURCES]
            result = fitted_rows(expert, [f[pick] for f in train], pixels[kept], test, labels, embed)
            yield [{"category": category, "shots": shot, "draw": draw, "rule": rule, **q} for rule, q in result.items()]
            print(category, shot, draw, {r: round(q["gap"], 3) for r, q in result.items()}, flush=True)


def zero_shot_rows(root: Path, category: str) -> list[dict]:
    """Route B (the test images scored against each other, `Inspector(zero_shot="mutual")`), decided by its
    own batch calibration: one row, its ECE from the probabilities it reports."""
    samples = load_split(root, category, "test")
    results = Inspector(zero_shot="mutual").predict([s.path for s in samples])
    labels = np.array([s.label for s, r in zip(samples, results) if r.ok])
    scores = np.array([r.score for r in results if r.ok])
    verdicts = np.array([r.anomalous for r in results if r.ok])
    measured = outcome(labels, scores, verdicts, np.array([r.probability for r in results if r.ok]))
    print(category, "zero", {"route B": round(measured["gap"], 3)}, flush=True)
    return [{"category": category, "shots": "zero", "draw": 0, "rule": "route B", **measured}]


COLUMNS = ("accuracy", "balanced", "recall", "false_alarms", "ece", "gap")


def write_markdown(path: Path, rows: list[dict], command: str) -> None:
    lines = [
        "# Verdict benchmark: decision rules fitted from normal images only",
        "",
        f"Command: `{command}` (cached EfficientNet-Lite0 features at 256 px; {time.strftime('%Y-%m-%d')}).",
        "",
        "k-shot rows: mean (min–max) over 3 draws of the k references; `all`: every training image (PatchCore),",
        "one draw; `zero`: zero-shot route B (the test images scored against each other, decided by the batch's own",
        'calibration), run through `Inspector(zero_shot="mutual").predict` on the images, not the cached features.',
        "Rules: **today** = t-bound over leave-one-out normal scores (90 % prediction bound); **ours** = the lower",
        "quartile of 24 synthetic anomalies' scores (`anomalens.synth`), scored leave-one-out like the normal ones;",
        "**ours+batch** = ours refined by the test set's own scores, decided as one batch (`calibration.batch_refined`,",
        "the default of `eval`, `detect` on a folder and the service; it only ever lowers the threshold, and never",
        "below the lowest reference's own score). Its rows'",
        "last column counts the draws where the defective test images alone, as one batch, raised the threshold.",
        "Oracle gap = best balanced accuracy of any single threshold chosen with the test labels − the rule's.",
        "",
        "| category | k | rule | accuracy | balanced acc. | recall | false alarms | ECE | oracle gap | all-defective raised |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["category"], r["shots"], r["rule"]) for r in rows)
    for category, shots, rule in keys:
        group = [r for r in rows if (r["category"], r["shots"], r["rule"]) == (category, shots, rule)]
        cells = []
        for column in COLUMNS:
            values = np.array([r[column] for r in group])
            spread = f" ({values.min():.3f}–{values.max():.3f})" if len(values) > 1 else ""
            cells.append(f"{values.mean():.3f}{spread}")
        raised = [r["all_defective_raised"] for r in group if "all_defective_raised" in r]
        cells.append(f"{sum(raised)} of {len(raised)}" if raised else "")
        lines.append(f"| {category} | {shots} | {rule} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--shots", nargs="+", default=["1", "2", "4", "8", "all", "zero"])
    parser.add_argument("--table-only", action="store_true", help="only write the table from the rows measured")
    parser.add_argument("--out", type=Path, default=HERE / "verdicts.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    for category in [] if args.table_only else args.categories:  # rows kept per category, as they come
        kept = rows_of(category) if (HERE / f"verdicts-{category}.json").exists() else []
        measured: list[dict] = [r for r in kept if r["shots"] not in args.shots]  # other shot counts' rows stay
        for rows in category_rows(args.root, category, [k for k in args.shots if k != "zero"]):
            measured += rows
            (HERE / f"verdicts-{category}.json").write_text(json.dumps(measured, indent=1))
        if "zero" in args.shots:
            measured += zero_shot_rows(args.root, category)
            (HERE / f"verdicts-{category}.json").write_text(json.dumps(measured, indent=1))
    rows = [row for c in CATEGORIES if (HERE / f"verdicts-{c}.json").exists() for row in rows_of(c)]
    write_markdown(
        args.out, rows, "python bench/verdicts.py --categories C  (one process per category), then --table-only"
    )


def rows_of(category: str) -> list[dict]:
    return json.loads((HERE / f"verdicts-{category}.json").read_text())


if __name__ == "__main__":
    main()
