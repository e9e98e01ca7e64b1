#!/usr/bin/env python3
"""More normal evidence from the same references (issue: verdicts, item 1): does it place the line better?

Two ingredients, each next to **ours** (the decision `calibrate` fits today: the lower of the t-bound over the
references' leave-one-out scores and the synthetic anomalies' lower quartile), on the cached features of
`bench/verdicts.py` (same draws: 3 per k):
- **augmented**: 4 mild, product-safe copies of each reference (a crop of 88–100 % of it resized back, exposure
  × 0.9–1.1), scored with their own reference left out (`Expert.left_out_scores`), join the normal scores;
- **patch-null**: the image score is the highest patch's dissimilarity, so an image-level null is the maximum
  over resampled patch sets: every reference's patches scored leave-one-out (thousands of normal patch
  scores), maxima of 2,000 sets of one image's patch count drawn from them; its 90 % point, where lower.
Also the median leave-one-out score of the references and the median score of the test set's normal images
(which the decision never sees): the gap between them is the bias no amount of reference evidence removes.

    python bench/verdict_evidence.py          # → bench/verdict_evidence.md
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

import verdicts as V
from anomalens import Inspector
from anomalens.calibration import calibrate
from anomalens.experts import ExpertInput, NormalImages, expert_class
from anomalens.experts.memory_bank import image_scaled
from anomalens.features import flatten_patches, patch_features
from anomalens.maps import smooth
from anomalens.synthetic_evidence import SYNTHETIC_SOURCES, anomalous_evidence

COPIES = 4
RESAMPLES = 2000
RULES = ("ours", "augmented", "patch-null")


def augmented(pixels: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, list[int]]:
    """COPIES mild copies of each (3, S, S) uint8 reference: a crop of 88–100 % resized back, exposure ± 10 %."""
    copies, owners = [], []
    for owner, image in enumerate(pixels.float() / 255):
        side = image.shape[-1]
        for _ in range(COPIES):
            crop = int(side * rng.uniform(0.88, 1.0))
            top, left = rng.integers(0, side - crop + 1, 2)
            window = image[None, :, top : top + crop, left : left + crop]
            resized = torch.nn.functional.interpolate(window, size=(side, side), mode="bilinear", align_corners=False)
            copies.append((resized[0] * rng.uniform(0.9, 1.1)).clamp(0, 1))
            owners.append(owner)
    return torch.stack(copies), owners


def left_out_patches(references: list[torch.Tensor]) -> np.ndarray:
    """(k, h·w) each reference's patch dissimilarities (1 − cosine, summed over stages, as the memory bank's image
    score) against the other references' patches."""
    k = references[0].shape[0]
    scores = torch.zeros(k, references[0].shape[2] * references[0].shape[3])
    for fmap in references:
        patches = flatten_patches(image_scaled(fmap)).view(k, -1, fmap.shape[1])
        unit = patches / patches.norm(dim=2, keepdim=True).clamp(min=1e-12)
        for i in range(k):
            others = torch.cat([unit[j] for j in range(k) if j != i])
            scores[i] += 1 - (unit[i] @ others.T).amax(1)
    return scores.double().numpy()


def draw_rows(category: str, shots: int, draw: int, data: dict) -> list[dict]:
    train, test, labels, pixels, embed = data["train"], data["test"], data["labels"], data["pixels"], data["embed"]
    pick = np.sort(np.random.default_rng(draw).choice(len(train[0]), shots, False))  # bench/verdicts.py's draws
    references = [f[pick] for f in train]
    expert = expert_class("auto", shots).create(Inspector().config, shots)
    evidence = expert.fit(NormalImages(references))
    maps = smooth(evidence.maps, V.SIZE).numpy()
    scores = expert.score(ExpertInput(features=test))[1].numpy()
    anomalies = anomalous_evidence(expert, pixels[pick[:SYNTHETIC_SOURCES]], embed)
    normal = evidence.scores.numpy()
    rng = np.random.default_rng(draw)
    ours = calibrate(normal, maps, evidence.method, anomalies)
    copies, owners = augmented(pixels[pick], rng)
    more = expert.left_out_scores(embed(copies), owners).double().numpy()
    with_copies = calibrate(np.r_[normal, more], list(maps) + [maps[o] for o in owners], evidence.method, anomalies)
    patches = left_out_patches(references)
    pool = patches.ravel()
    maxima = [pool[rng.integers(len(pool), size=patches.shape[1])].max() for _ in range(RESAMPLES)]
    null = float(np.quantile(maxima, 0.9))
    patch_null = replace(ours, image_threshold=min(null, ours.image_threshold))
    common = {
        "category": category,
        "shots": str(shots),
        "draw": draw,
        "loo_median": float(np.median(normal)),
        "test_normal_median": float(np.median(scores[labels == 0])),
        "null_90": null,
        "ours_threshold": ours.image_threshold,
    }
    rules = dict(zip(RULES, (ours, with_copies, patch_null)))
    return [common | {"rule": rule} | V.quality(labels, scores, c) for rule, c in rules.items()]


def write_markdown(path: Path, rows: list[dict]) -> None:
    lines = [
        "# More normal evidence from the same references",
        "",
        f"Command: `python bench/verdict_evidence.py` ({time.strftime('%Y-%m-%d')}). "
        + (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        "Mean (min–max) over 3 draws. Thresholds: the leave-one-out median of the references' scores, the test",
        "set's normal images' median (never seen by the decision), the patch null's 90 % point, ours.",
        "",
        "| category | k | rule | balanced acc. | recall | false alarms | ECE | oracle gap | LOO median | test normal median | patch null 90 % | ours threshold |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    columns = ("balanced", "recall", "false_alarms", "ece", "gap", "loo_median", "test_normal_median", "null_90")
    for key in dict.fromkeys((r["category"], r["shots"], r["rule"]) for r in rows):
        group = [r for r in rows if (r["category"], r["shots"], r["rule"]) == key]
        cells = []
        for column in (*columns, "ours_threshold"):
            values = np.array([r[column] for r in group])
            cells.append(f"{values.mean():.3f} ({values.min():.3f}–{values.max():.3f})")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=V.DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="+", default=list(V.CATEGORIES))
    parser.add_argument("--shots", nargs="+", type=int, default=[2, 4, 8])  # k = 1 has no leave-one-out patches
    parser.add_argument("--out", type=Path, default=V.HERE / "verdict_evidence.md")
    args = parser.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")
    torch.manual_seed(0)
    embed = partial(patch_features, Inspector().backbone)
    rows: list[dict] = []
    for category in args.categories:
        train, _ = V.features(args.root, category, "train")
        test, labels = V.features(args.root, category, "test")
        data = {
            "train": [f.float() for f in train],
            "test": [f.float() for f in test],
            "labels": labels,
            "pixels": V.train_pixels(args.root, category),
            "embed": embed,
        }
        for shots in args.shots:
            for draw in range(V.DRAWS):
                rows += draw_rows(category, shots, draw, data)
                print(category, shots, draw, {r["rule"]: round(r["gap"], 3) for r in rows[-len(RULES) :]}, flush=True)
                write_markdown(args.out, rows)


if __name__ == "__main__":
    main()
