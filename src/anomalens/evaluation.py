"""Benchmark one dataset category the way a user would run it: fit on its normal training images
(all, or the first k) — or, zero-shot, use no training image at all and inspect the test images as
one unlabeled batch — inspect every test image through the normal prediction path, and score the
maps against the ground-truth masks at the images' own resolution (MVTec-AD's protocol) or, for
comparisons with anomalib, at its fixed evaluation size."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .batch_evidence import reference_shift
from .calibration import Calibration
from .data import ImageError, load_mask, load_split
from .inspector import Inspector
from .metrics import calibration_errors, evaluate
from .resampling import at_image_size


def evaluate_category(
    root,
    category: str,
    shots: int | None = None,
    options: dict | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    eval_size: int | None = None,
    zero_shot: str | None = None,
    batch_evidence: bool = False,
) -> dict:
    """Metrics, verdict quality and timings for one category; `progress(stage, done, total)` is optional.
    Pixel metrics are computed at each image's own resolution, or, with `eval_size`, on maps and masks
    resized to eval_size × eval_size (anomalib's protocol, for comparisons with it). With `zero_shot`, a
    registered zero-shot route's name, no training image is read: "mutual" scores the test images as one batch
    (its time counts as detection); "clip" compares each with text about the category, named after its folder,
    using the CLIP of `options["clip_weights"]` / `options["clip_model"]`. By default each test image is decided
    alone; `batch_evidence`: the test set is decided as one batch (`batch_evidence.batch_refined`)."""
    train = [] if zero_shot else load_split(root, category, "train")
    if shots:
        train = train[:shots]
    test = load_split(root, category, "test")
    inspector = _inspector(category, dict(options or {}), zero_shot)
    fit_seconds = _fit(inspector, train, progress, zero_shot)
    test_started = time.perf_counter()  # the whole test pass: results, masks and metrics (as anomalib's test)
    seen = _test_pass(inspector, test, progress, eval_size, batch_evidence)
    labels, calibration = np.array(seen.labels), seen.calibration
    metrics = evaluate(labels, np.array(seen.scores), seen.masks, seen.maps)  # lists: sizes may differ
    test_seconds = time.perf_counter() - test_started
    return {
        "category": category,
        "shots": "zero" if zero_shot else shots or "all",
        "expert": inspector.expert_name,
        "scale": str(inspector.config.scale),  # the layout fitted (the one `--scale auto` chose)
        "n_train": len(train) - len(inspector.skipped),
        "n_test": len(seen.labels),
        **metrics,
        **verdict_quality(labels, np.array(seen.verdicts, bool), np.array(seen.probabilities)),
        "calibration": calibration.to_dict() if calibration else None,
        "decision_mode": ", ".join(sorted(seen.modes)) or None,
        # the test set's normal-looking images against the references, in normal spreads (no labels used)
        "reference_shift": reference_shift(calibration, seen.scores) if calibration else None,
        "fit_seconds": fit_seconds,
        "detect_images_per_second": len(test) / seen.detect_seconds if seen.detect_seconds else float("nan"),
        "test_images_per_second": len(test) / test_seconds,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "skipped": seen.skipped,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "eval_size": eval_size or "native",
    }


def _inspector(category: str, options: dict, zero_shot: str | None) -> Inspector:
    """The inspector `evaluate_category` runs: `options` as given, or the zero-shot route (a text route's words
    are the category's name)."""
    if zero_shot is None:
        return Inspector(**options)
    options.pop("expert", None)
    return Inspector.zero_shot(zero_shot, class_name=category.replace("_", " "), **options)


def _fit(inspector: Inspector, train: list, progress, zero_shot: str | None) -> float:
    """Fits on the training images (none zero-shot); the seconds it took."""
    started = time.perf_counter()
    done = 0

    def fit_progress(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("fit", done, len(train))

    if not zero_shot:
        inspector.fit([s.path for s in train], progress=fit_progress)
    return time.perf_counter() - started


@dataclass
class _Seen:
    """What the test pass collected: per scored image its label, score, verdict, probability, map and mask."""

    calibration: Calibration | None
    skipped: list[str | None]  # what could not be read, and why
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    modes: set[str] = field(default_factory=set)  # how the results were decided
    detect_seconds: float = 0.0  # time spent producing results (decoding included), not reading masks or scoring


def _test_pass(inspector: Inspector, test: list, progress, eval_size: int | None, batch_evidence: bool) -> _Seen:
    """Every test image through the normal prediction path, with its mask (skipped: those unreadable)."""
    seen = _Seen(inspector.calibration, list(inspector.skipped))
    predictions = inspector.iter_predict([s.path for s in test], batch_evidence=batch_evidence)
    for i, sample in enumerate(test, start=1):
        started = time.perf_counter()
        result = next(predictions)
        seen.detect_seconds += time.perf_counter() - started
        if progress:
            progress("detect", i, len(test))
        if not result.ok:
            seen.skipped.append(result.error)
            continue
        assert result.image_size is not None  # an ok result has its image's size
        width, height = result.image_size
        try:
            mask = load_mask(sample.mask_path, (height, width)) if sample.mask_path else np.zeros((height, width), bool)
        except ImageError as error:
            seen.skipped.append(str(error))
            continue
        _add(seen, sample.label, result, mask, eval_size)
    return seen


def _add(seen: _Seen, label: int, result, mask: np.ndarray, eval_size: int | None) -> None:
    seen.labels.append(label)
    seen.scores.append(result.score)
    seen.verdicts.append(result.anomalous)
    seen.probabilities.append(result.probability)
    seen.modes |= {result.decision.mode} if result.decision else set()
    seen.calibration = result.calibration  # a zero-shot batch's own comes with its results
    if eval_size is not None:
        seen.maps.append(_resized(result.anomaly_map, eval_size, "bilinear"))
        seen.masks.append(_resized(mask, eval_size, "nearest"))
    else:
        same = result.anomaly_map.shape == mask.shape
        seen.maps.append(result.anomaly_map if same else at_image_size(result.anomaly_map, mask.shape))
        seen.masks.append(mask)


def _resized(array: np.ndarray, size: int, mode: str) -> np.ndarray:
    tensor = torch.from_numpy(array.astype(np.float32))[None, None]
    out = F.interpolate(
        tensor, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {})
    )
    return out[0, 0].numpy() > 0.5 if array.dtype == bool else out[0, 0].numpy()


def verdict_quality(labels: np.ndarray, verdicts: np.ndarray, probabilities: np.ndarray) -> dict:
    """How the calibrated yes/no verdicts and probabilities fare against the test labels (measured, never
    tuned on). A rate whose class is absent from the test set is None (n/a)."""
    defective, normal = labels == 1, labels == 0
    recall = float(np.mean(verdicts[defective])) if defective.any() else None
    false_alarms = float(np.mean(verdicts[normal])) if normal.any() else None
    ece, brier = calibration_errors(labels, probabilities) if len(labels) else (None, None)
    return {
        "verdict_accuracy": float(np.mean(verdicts == defective)) if len(labels) else None,
        "verdict_balanced_accuracy": (recall + 1 - false_alarms) / 2
        if recall is not None and false_alarms is not None
        else None,
        "verdict_recall": recall,
        "verdict_false_alarm_rate": false_alarms,
        "probability_ece": ece,
        "probability_brier": brier,
    }
