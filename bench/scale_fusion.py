#!/usr/bin/env python3
"""Can any layout, or a two-scale fusion, be the best on every metric? (issue: resolution, `--scale auto`)

`bench/scales.md` shows the fixed layouts trading metrics against each other on the shared sets. This
benchmark asks what any choice could reach. For each category and shot count it fits the default inspector
at squash, aspect and native pixels (scale 1), keeps every test image's score and map (at 256 × 256, the
peer's size, maps by Pillow's bilinear filter and masks nearest: within 0.002 of `eval --eval-size 256`'s
rows in bench/scales.md; cached), and scores, next to them, fusions of squash with a finer layout as issue item 4
describes: each map normalised as the fused expert does, (map − pixel floor) / (pixel threshold − floor), and
each image score as its z-score (score − image threshold) / image scale; the two averaged ("mean"), or the
pixelwise and scorewise larger taken ("max"). Then, per row, the best value each metric reaches over all of
them, and which of them come within 0.005 of it on every metric (the acceptance's tolerance): the oracle,
chosen with the test labels, that no rule from normal images alone can beat.

A second table asks whether normal images alone could choose: probes (the choice `--scale auto` makes)
fitted on k of the training images, scored on 6 held-out ones and on 18 synthetic defects planted in them
(`anomalens.synth`, its default sizes), rank the layouts by image AUROC, pixel AUROC and AUPRO on the planted
masks; compare with the ranking on the real test sets.

    python bench/scale_fusion.py          # every category, 4 shots and full-shot → bench/scale_fusion.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import PIL.Image

from anomalens import Inspector
from anomalens.data import as_float, load_split, read_image, to_uint8
from anomalens.data.images import load_mask
from anomalens.metrics import aupro, image_auroc, pixel_auroc
from anomalens.synth import synthesize

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
CACHE = Path.home() / ".cache" / "anomalens-bench" / "scale-maps"
CATEGORIES = ("battery_weld", "magnetic_tile", "mpdd_metal_plate")
LAYOUTS = {"squash": {}, "aspect": {"scale": "aspect"}, "native": {"scale": 1.0}}
FUSED = (("squash", "aspect"), ("squash", "native"))
TOLERANCE = 0.005
SIZE = 256
HELD, PLANTS = 6, 3  # probes: held-out normal images, synthetic defects planted in each
METRICS = ("image", "pixel", "aupro")


def at_size(array: np.ndarray, nearest: bool = False) -> np.ndarray:
    resample = PIL.Image.NEAREST if nearest else PIL.Image.BILINEAR
    return np.asarray(PIL.Image.fromarray(array.astype(np.float32)).resize((SIZE, SIZE), resample))


def normalised(inspector: Inspector, results: list) -> tuple[np.ndarray, np.ndarray]:
    """(image z-scores, maps at SIZE normalised to the pixel threshold) of results, by the inspector's calibration."""
    c = inspector.calibration
    assert c is not None
    scores = np.array([(r.score - c.image_threshold) / c.image_scale for r in results])
    span = max(c.pixel_threshold - c.pixel_floor, 1e-12)
    return scores, np.stack([(at_size(r.anomaly_map) - c.pixel_floor) / span for r in results]).astype(np.float16)


def layout_outputs(root: Path, category: str, shots: str, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """A layout's normalised test scores and maps (cached)."""
    path = CACHE / f"{category}-{shots}-{layout}.npz"
    if not path.exists():
        train = [s.path for s in load_split(root, category, "train")]
        inspector = Inspector(**LAYOUTS[layout]).fit(train if shots == "all" else train[: int(shots)])
        results = inspector.predict([s.path for s in load_split(root, category, "test")])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, *normalised(inspector, results))
    stored = np.load(path)
    return stored["arr_0"], stored["arr_1"].astype(np.float32)


def truth(root: Path, category: str) -> tuple[np.ndarray, np.ndarray]:
    samples = load_split(root, category, "test")
    masks = []
    for sample in samples:
        width, height = PIL.Image.open(sample.path).size
        mask = load_mask(sample.mask_path, (height, width)) if sample.mask_path else np.zeros((height, width), bool)
        masks.append(at_size(mask.astype(np.float32), nearest=True) > 0.5)
    return np.array([s.label for s in samples]), np.stack(masks)


def measured(labels: np.ndarray, masks: np.ndarray, scores: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    return {
        "image": image_auroc(labels, scores),
        "pixel": pixel_auroc(masks, maps),
        "aupro": aupro(masks, maps),
    }


def candidates(outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The layouts and their fusions: name → (image scores, maps)."""
    every = dict(outputs)
    for coarse, fine in FUSED:
        (a, ma), (b, mb) = outputs[coarse], outputs[fine]
        every[f"{coarse}+{fine} mean"] = ((a + b) / 2, (ma + mb) / 2)
        every[f"{coarse}+{fine} max"] = (np.maximum(a, b), np.maximum(ma, mb))
    return every


def probe_rows(root: Path, category: str, shots: str) -> list[dict]:
    """The layouts ranked on synthetic defects planted in held-out normal images (normal images alone)."""
    train = [s.path for s in load_split(root, category, "train")]
    fitted = len(train) - HELD if shots == "all" else int(shots)
    held = [as_float(read_image(path)) for path in train[fitted : fitted + HELD]]
    rng = np.random.default_rng(0)
    planted, masks = [], []
    for image in held:
        everywhere = np.ones(image.shape[:2], bool)
        for _ in range(PLANTS):
            defect = synthesize(image, held[rng.integers(len(held))], rng, object_mask=everywhere)
            planted.append(to_uint8(defect.image))
            masks.append(at_size(defect.mask.astype(np.float32), nearest=True) > 0.5)
    labels = np.r_[np.zeros(len(held)), np.ones(len(planted))]
    all_masks = np.stack([np.zeros((SIZE, SIZE), bool)] * len(held) + masks)
    outputs = {}
    for layout, options in LAYOUTS.items():
        inspector = Inspector(**options).fit(train[:fitted])
        outputs[layout] = normalised(inspector, inspector.predict([to_uint8(i) for i in held] + planted, False))
    return [
        {"category": category, "shots": shots, "fitted": fitted, "layout": name}
        | measured(labels, all_masks, *outputs[name])
        for name in LAYOUTS
    ]


def write_markdown(path: Path, rows: list[dict], probes: list[dict]) -> None:
    intro = (__doc__ or "").split("\n\n")[1:3]
    lines = [
        "# Layouts, fusions and the oracle",
        "",
        f"Command: `python bench/scale_fusion.py` ({time.strftime('%Y-%m-%d')}).",
        "",
    ]
    lines += [paragraph.replace("\n", " ") + "\n" for paragraph in intro]
    lines += [
        "## On the test sets (image AUROC, pixel AUROC, AUPRO at 256 × 256)",
        "",
        "| category | shots | layout | image AUROC | pixel AUROC | AUPRO | within 0.005 of the best on all three |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in dict.fromkeys((r["category"], r["shots"]) for r in rows):
        group = [r for r in rows if (r["category"], r["shots"]) == key]
        best = {m: max(r[m] for r in group) for m in METRICS}
        for r in group:
            ok = all(r[m] >= best[m] - TOLERANCE for m in METRICS)
            lines.append(
                f"| {key[0]} | {key[1]} | {r['layout']} | "
                + " | ".join(f"{r[m]:.3f}" for m in METRICS)
                + f" | {'yes' if ok else ''} |"
            )
        lines.append(
            f"| {key[0]} | {key[1]} | **best of each** | " + " | ".join(f"**{best[m]:.3f}**" for m in METRICS) + " | |"
        )
    lines += [
        "",
        "## Probes: synthetic defects in held-out normal images (what `--scale auto` can see)",
        "",
        "| category | shots | probes fitted on | layout | image AUROC | pixel AUROC | AUPRO |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in probes:
        lines.append(
            f"| {r['category']} | {r['shots']} | {r['fitted']} | {r['layout']} | "
            + " | ".join(f"{r[m]:.3f}" for m in METRICS)
            + " |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--shots", nargs="+", default=["4", "all"])
    parser.add_argument("--out", type=Path, default=HERE / "scale_fusion.md")
    args = parser.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")
    rows: list[dict] = []
    probes: list[dict] = []
    for category in args.categories:
        labels, masks = truth(args.root, category)
        for shots in args.shots:
            outputs = {layout: layout_outputs(args.root, category, shots, layout) for layout in LAYOUTS}
            for name, (scores, maps) in candidates(outputs).items():
                rows.append(
                    {"category": category, "shots": shots, "layout": name} | measured(labels, masks, scores, maps)
                )
            probes += probe_rows(args.root, category, shots)
            print(category, shots, flush=True)
            write_markdown(args.out, rows, probes)


if __name__ == "__main__":
    main()
