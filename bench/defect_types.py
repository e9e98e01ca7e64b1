#!/usr/bin/env python3
"""Naming a defect's type from a few labelled examples: the descriptor and head chosen set by set left out.

For every shared set whose test split names two or more defect types, k ∈ {1, 4, all} references (the first
seeded draw), the default expert is fitted on cached features (bench/verdicts.py's cache) and scores the
defective test images. For each seed, PER_TYPE images of each type (at most half the smallest type) are the
examples, the rest the queries. Grid: how a descriptor weighs patches (`defect_types.FORMS`, the top share of
patches), the head (nearest class mean, or a logistic regression of a given C) and how an example is described
(from its map as a query is, or from its map within its ground-truth mask, as a person's mark). For each set
left out, the grid entry with the best mean accuracy on the other sets is chosen and reported on it.

    python bench/defect_types.py      # → bench/defect_types.md
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anomalens import Inspector
from anomalens.data import load_mask, load_split
from anomalens.experts import NormalImages, expert_class
from anomalens.experts.base import ExpertInput
from anomalens.experts.defect_types import DefectTypeClassifier, defect_descriptors
from verdicts import DEFAULT_ROOT, features

HERE = Path(__file__).resolve().parent
SETS = ("magnetic_tile", "mvtec_transistor")  # the shared sets naming two or more defect types
SHOTS = ("1", "4", "all")
PER_TYPE = 10
SEEDS = 5
GRID = [
    (form, share, head, example)
    for (form, share), head, example in itertools.product(
        [("excess-weighted", 0.0), ("top-share", 0.01), ("top-share", 0.02), ("top-share", 0.05)],
        [None, 10.0, 100.0],
        ["map", "marked"],
    )
]
TODAY = {"teaching": ("excess-weighted", 0.0, None, "marked"), "examples folder": ("excess-weighted", 0.0, None, "map")}


def scored(category: str, shots: str) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, np.ndarray]:
    """(features, patch maps, ground-truth masks on the patch grid, types) of the defective test images."""
    train, _ = features(DEFAULT_ROOT, category, "train")
    test, labels = features(DEFAULT_ROOT, category, "test")
    n = len(train[0]) if shots == "all" else int(shots)
    pick = np.arange(n) if shots == "all" else np.sort(np.random.default_rng(0).choice(len(train[0]), n, False))
    expert = expert_class("auto", n).create(Inspector().config, n)
    expert.fit(NormalImages([f[pick].float() for f in train]))
    defective = torch.from_numpy(labels == 1)
    chosen = [f[defective].float() for f in test]
    maps = torch.cat([expert.score(ExpertInput(features=[f[i : i + 32] for f in chosen]))[0]
                      for i in range(0, len(chosen[0]), 32)])  # fmt: skip
    samples = [s for s in load_split(DEFAULT_ROOT, category, "test") if s.label == 1]
    grid = maps.shape[-2:]
    masks = torch.stack([F.adaptive_max_pool2d(torch.from_numpy(load_mask(s.mask_path)).float()[None], grid)[0]
                         for s in samples])  # fmt: skip
    return chosen, maps, masks, np.array([s.defect for s in samples])


def described(data, form: str, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(as queries, as marked examples) descriptors of every image by `form` and `share`."""
    chosen, maps, masks, _ = data
    floor = maps.flatten(1).amin(1)[:, None, None]  # the map's own zero: outside the mark counts for nothing
    marked = floor + (maps - floor) * masks
    return defect_descriptors(chosen, maps, form, share), defect_descriptors(chosen, marked, form, share)


def accuracy(types: np.ndarray, descriptors: tuple[np.ndarray, np.ndarray], head, example: str, seed: int) -> float:
    """Share of queries named right by `head` from examples described as `example`, examples drawn by `seed`."""
    queries, marked = descriptors
    names = sorted(set(types))
    per = min(PER_TYPE, min(np.sum(types == name) for name in names) // 2)
    rng = np.random.default_rng(seed)
    picked = {name: rng.choice(np.flatnonzero(types == name), per, False) for name in names}
    rows = marked if example == "marked" else queries
    classifier = DefectTypeClassifier.fit({name: rows[i] for name, i in picked.items()}, head)
    rest = np.setdiff1d(np.arange(len(types)), np.concatenate(list(picked.values())))
    return float(np.mean([classifier.classify(queries[i]).name == types[i] for i in rest]))


def accuracies(data) -> dict[tuple, float]:
    """Every grid entry's mean accuracy over SEEDS draws of the examples."""
    forms = {(form, share): described(data, form, share) for form, share, _, _ in GRID}
    return {
        (form, share, head, example): float(
            np.mean([accuracy(data[3], forms[(form, share)], head, example, seed) for seed in range(SEEDS)])
        )
        for form, share, head, example in GRID
    }


def describe(entry: tuple) -> str:
    form, share, head, example = entry
    weighing = f"top {share:.0%} of patches" if form == "top-share" else "excess-weighted"
    named = "nearest class mean" if head is None else f"logistic C = {head:g}"
    return f"{weighing}, {named}, examples from {'the map within the mask' if example == 'marked' else 'the map'}"


def main() -> None:
    results: dict[tuple, dict[tuple, float]] = {}
    for category, shots in itertools.product(SETS, SHOTS):
        results[(category, shots)] = accuracies(scored(category, shots))
        print(category, shots, flush=True)
    chosen = {left: max(GRID, key=lambda e: np.mean([r[e] for c, r in results.items() if c[0] != left]))
              for left in SETS}  # fmt: skip
    default = max(GRID, key=lambda e: np.mean([r[e] for r in results.values()]))
    lines = [
        "# Defect types: descriptor and head chosen with each set left out",
        "",
        f"Command: `python bench/defect_types.py` ({time.strftime('%Y-%m-%d')}; cached EfficientNet-Lite0 features "
        f"at 256 px; mean over {SEEDS} draws of the examples).",
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        "| left out | chosen on the other | k | accuracy | today's teaching | today's examples folder |",
        "|---|---|---|---|---|---|",
    ]
    for (category, shots), row in results.items():
        lines.append(f"| {category} | {describe(chosen[category])} | {shots} | "
                     f"{row[chosen[category]]:.3f} | {row[TODAY['teaching']]:.3f} | {row[TODAY['examples folder']]:.3f} |")  # fmt: skip
    lines += ["", f"Chosen on both (the default): **{describe(default)}**.", "", "Every entry, every row:", ""]
    lines += ["| entry | " + " | ".join(f"{c} {k}" for c, k in results) + " |", "|---|" + "---|" * len(results)]
    lines += [f"| {describe(e)} | " + " | ".join(f"{r[e]:.3f}" for r in results.values()) + " |" for e in GRID]
    (HERE / "defect_types.md").write_text("\n".join(lines) + "\n")
    print(describe(default))


if __name__ == "__main__":
    main()
