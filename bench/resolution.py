#!/usr/bin/env python3
"""Small defects in large images: a generated benchmark of the inspector's layouts, written to bench/resolution.md.

Generated images (no data set needed): a woven texture and a product-like part (a machined plate with holes
on a plain background, placed with a little jitter), large and of several aspect ratios, with a planted
defect (a rough patch: grain of zero mean, so only the texture changes, not the brightness) of a stated share of the image area. Each layout is fitted on normal images
of the group and inspects normal and defective ones; reported per defect size: image recall at the
calibrated threshold (the model's own, from normal images only), false-alarm rate on the normal test
images, pixel AUROC and AUPRO (maps and masks at EVAL_SIDE on the long side), images per second.

Then peak memory: a fresh process loads a native-scale model (tile 256, fitted on small images) and inspects
one 20-megapixel PNG; its peak resident memory comes from the kernel (ru_maxrss).

    python bench/resolution.py           # ~15 minutes on 2 shared cores
    python bench/resolution.py --quick   # fewer images, for a try
    python bench/resolution.py --memory-only   # only the 20-megapixel probe (~5 minutes), the table kept
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from anomalens import Inspector
from anomalens.metrics import aupro, pixel_auroc
from anomalens.resampling import at_image_size

HERE = Path(__file__).resolve().parent
EVAL_SIDE = 512  # maps and masks are compared at this long side (anomalib's protocol resizes them too)
DEFECT_AREAS = (0.0001, 0.0005, 0.002, 0.01)  # share of the image area: 0.01 % … 1 %
GRAIN = 0.15  # σ of a defect's grain, in [0, 1] grey levels (the normal texture's own noise: 0.03)


@dataclass(frozen=True)
class Group:
    kind: str  # "texture" or "product"
    height: int
    width: int
    train: int
    normal: int  # normal test images
    per_size: int  # defective test images per defect area


@dataclass(frozen=True)
class Setting:
    name: str
    options: dict


def texture(seed: int, height: int, width: int) -> np.ndarray:
    """A woven texture (oriented sinusoids and fine noise, as the tests' generator) as uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width), np.float32)
    for freq, angle in ((0.35, 0.3), (0.22, 1.9), (0.5, 1.1)):
        image += np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi))
    image = 0.5 + 0.12 * image + rng.normal(0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image[..., None] * np.array([0.9, 0.75, 0.55], np.float32), 0, 1) * 255).astype(np.uint8)


def product(seed: int, height: int, width: int) -> np.ndarray:
    """A machined plate (brushed grey, a row of holes) on a dark background, shifted by a few pixels."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 0.12, np.float32)
    dy, dx = rng.integers(-6, 7, size=2)
    top, left, bottom, right = height // 8 + dy, width // 16 + dx, height - height // 8 + dy, width - width // 16 + dx
    yy, xx = np.mgrid[0:height, 0:width]
    plate = (yy >= top) & (yy < bottom) & (xx >= left) & (xx < right)
    brushed = 0.62 + 0.04 * np.sin(0.9 * yy + rng.uniform(0, 6.3)) + rng.normal(0, 0.02, (height, width))
    image[plate] = brushed[plate]
    radius, count = (bottom - top) // 6, 5
    for i in range(count):
        cx, cy = left + (i + 0.5) * (right - left) / count, (top + bottom) / 2
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 0.12
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    return (np.clip(np.repeat(image[..., None], 3, 2), 0, 1) * 255).astype(np.uint8)


def plant(image: np.ndarray, area: float, seed: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A rough patch, an ellipse (axes 3 : 2) covering `area` of the image, at a random place (on the part
    where `allowed` says): grain of zero mean added to every pixel, so its brightness stays that of its
    surroundings and only the texture changes (as a scratch field or pitting does); returns the image and
    its mask."""
    rng = np.random.default_rng(10_000 + seed)
    height, width = image.shape[:2]
    b = np.sqrt(area * height * width / (np.pi * 1.5))
    a = 1.5 * b
    for _ in range(100):
        cy, cx = rng.uniform(b + 2, height - b - 2), rng.uniform(a + 2, width - a - 2)
        if allowed is None or allowed[int(cy), int(cx)]:
            break
    y0, y1, x0, x1 = int(cy - b - 1), int(cy + b + 2), int(cx - a - 1), int(cx + a + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    local = ((yy - cy) / b) ** 2 + ((xx - cx) / a) ** 2 <= 1
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = local
    out = image.copy()
    grain = rng.normal(0, GRAIN * 255, (int(local.sum()), 1))
    out[mask] = np.clip(out[mask] + grain, 0, 255).astype(np.uint8)
    return out, mask


def images(group: Group, seed_base: int, count: int) -> list[np.ndarray]:
    make = texture if group.kind == "texture" else product
    return [make(seed_base + i, group.height, group.width) for i in range(count)]


def evaluated(maps: list[np.ndarray], masks: list[np.ndarray]) -> tuple[float, float]:
    """Pixel AUROC and AUPRO with maps and masks brought to EVAL_SIDE on the long side (maps come at the
    decoded image's size, which decoding may have reduced: each is resized from its own)."""
    h, w = masks[0].shape
    f = EVAL_SIDE / max(h, w)
    shape = (round(h * f), round(w * f))
    ys, xs = (np.arange(shape[0]) * h / shape[0]).astype(int), (np.arange(shape[1]) * w / shape[1]).astype(int)
    small_maps = [at_image_size(m, shape) for m in maps]
    small_masks = [m[ys][:, xs] for m in masks]
    return pixel_auroc(small_masks, small_maps), aupro(small_masks, small_maps)


def run_group(group: Group, settings: list[Setting]) -> list[dict]:
    train = images(group, 0, group.train)
    normal = images(group, 1000, group.normal)
    allowed = None if group.kind == "texture" else product(5000, group.height, group.width)[..., 0] > 100
    defective = {
        area: [
            plant(image, area, 100 * k + i, allowed)
            for i, image in enumerate(images(group, 2000 + 100 * k, group.per_size))
        ]
        for k, area in enumerate(DEFECT_AREAS)
    }
    rows = []
    for setting in settings:
        started = time.perf_counter()
        inspector = Inspector(**setting.options).fit(train)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        normal_results = inspector.predict(normal)
        by_area = {area: inspector.predict([image for image, _ in planted]) for area, planted in defective.items()}
        per_image = (time.perf_counter() - started) / (len(normal) + sum(len(v) for v in defective.values()))
        false_alarms = np.mean([bool(r.anomalous) for r in normal_results])
        normal_maps = [r.anomaly_map for r in normal_results]
        for area, results in by_area.items():
            masks = [np.zeros((group.height, group.width), bool)] * len(normal_maps) + [m for _, m in defective[area]]
            p_auroc, pro = evaluated(normal_maps + [r.anomaly_map for r in results], masks)  # type: ignore[operator]
            rows.append(
                dict(
                    group=f"{group.kind} {group.width}×{group.height}",
                    setting=setting.name,
                    expert=inspector.expert.name if inspector.expert else "",
                    area=area,
                    pixels=round(area * group.height * group.width),
                    recall=float(np.mean([bool(r.anomalous) for r in results])),
                    false_alarms=float(false_alarms),
                    pixel_auroc=p_auroc,
                    aupro=pro,
                    images_per_s=1 / per_image,
                    fit_s=fit_s,
                    counts=f"{group.train}/{group.normal}/{group.per_size}",
                )
            )
            print(rows[-1], flush=True)
    return rows


MEMORY_PROBE = """
import resource, sys, time
from anomalens import Inspector
inspector = Inspector.load(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = inspector.predict(sys.argv[2])[0]
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - started,
      f"{result.anomaly_map.shape}, anomalous {result.anomalous}, {len(result.regions)} region(s)", flush=True)
"""
MEMORY_TITLE = "## One 20-megapixel image (5472 × 3648), tiles 256 at native scale"


def peak_memory() -> tuple[float, float, float, str]:
    """(MB once the model is loaded, peak MB, seconds, map shape) of inspecting one 20-megapixel PNG in a fresh
    process that only loads a native-scale model (fitted here on small images) and inspects it."""
    with tempfile.TemporaryDirectory() as folder:
        model = Inspector(image_size=256, scale=1.0).fit([texture(i, 768, 768) for i in range(3)])
        model_path = model.save(Path(folder) / "native.safetensors")
        image_path = Path(folder) / "20mp.png"
        defective, _ = plant(texture(7, 3648, 5472), 0.0005, 7, None)  # a defect: regions are found too
        Image.fromarray(defective).save(image_path, compress_level=1)
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, str(model_path), str(image_path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split(maxsplit=3)
    return int(out[0]) / 1024, int(out[1]) / 1024, float(out[2]), out[3].strip()


def memory_section() -> list[str]:
    before, peak, seconds, shape = peak_memory()
    return [
        "",
        MEMORY_TITLE,
        "",
        "`python bench/resolution.py --memory-only`: a fresh process loads a native-scale model (fitted on three "
        "768 × 768 images) and inspects one 20-megapixel PNG with a planted 0.05 % defect: decoding, 551 tiles in "
        f"batches of 8, stitching, regions. Its peak resident memory (ru_maxrss, torch and the model included): **{peak:.0f} MB** "
        f"({before:.0f} MB once the model was loaded); {seconds:.0f} s; map {shape}.",
    ]


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| images | layout | expert | defect area | ≈ px | recall | false alarms | pixel AUROC | AUPRO | img/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['group']} | {r['setting']} | {r['expert']} | {100 * r['area']:.2g} % | {r['pixels']} | "
            f"{r['recall']:.2f} | {r['false_alarms']:.2f} | {r['pixel_auroc']:.3f} | {r['aupro']:.3f} | "
            f"{r['images_per_s']:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, for a try")
    parser.add_argument("--no-memory", action="store_true", help="skip the 20-megapixel memory probe")
    parser.add_argument("--memory-only", action="store_true", help="rerun only the probe, keep the table")
    args = parser.parse_args()
    if args.memory_only:
        kept = (HERE / "resolution.md").read_text().split(MEMORY_TITLE)[0].rstrip().splitlines()
        (HERE / "resolution.md").write_text("\n".join(kept + memory_section()) + "\n")
        return
    n = 4 if args.quick else 1
    groups = [
        Group("texture", 2048, 2048, train=6, normal=20 // n, per_size=5 // n),
        Group("product", 1024, 2560, train=6, normal=8 // n, per_size=3 // n),
    ]
    settings = [
        Setting("squash 256", dict(image_size=256, scale="squash")),
        Setting("tiles 256 at scale 0.5", dict(image_size=256, scale=0.5)),
    ]
    started = time.perf_counter()
    rows = [row for group in groups for row in run_group(group, settings)]
    lines = [
        "# Small defects in large images (generated)",
        "",
        f"`python bench/resolution.py{' --quick' if args.quick else ''}` — {time.perf_counter() - started:.0f} s on "
        "2 shared CPU cores (niced), efficientnet_lite0. Counts (train / normal test / defective per size): "
        + ", ".join(f"{g.kind} {g.train}/{g.normal}/{g.per_size}" for g in groups)
        + ". Recall and false alarms are at each model's own calibrated threshold (from its normal training "
        "images only). Pixel metrics at 512 px on the long side.",
        "",
        *table(rows),
    ]
    if not args.no_memory:
        lines += memory_section()
    (HERE / "resolution.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
