"""The one obvious API: ``Inspector().fit(normal_images)`` then ``inspector.predict(images)``;
zero-shot, with no normal images: ``Inspector(zero_shot="mutual").predict(images)`` (a batch scored against
itself) or ``Inspector.zero_shot_clip(weights, class_name=...)`` (CLIP and text prompts).

Data flow: images → backbone patch features → expert (patch anomaly map + image score) → smoothed
map at the image's size → calibrated verdict and confidence → regions and their location in words.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import DEFAULT_BACKBONE, create_backbone, resolve_weights
from .calibration import Calibration, batch_calibration, calibrate, probability_calibration
from .data import ImageError, load_image
from .experts import EXPERTS, Expert, MutualScorer
from .experts.defect_types import defect_descriptors
from .features import patch_features, standardise_exposure, to_batch
from .regions import Region, describe_location, find_regions
from .training import TRAINED_EXPERTS, fit_trained

ImageInput = str | Path | np.ndarray
FEW_SHOT_MAX = 16  # expert="auto": the few-shot memory bank up to this many references, PatchCore above
EXPERT_ALIASES = {"memory": "auto", "both": "fused"}  # the command line's names
SMOOTHING_SIGMA = 4.0  # Gaussian σ of the map in pixels at 256 px (PatchCore's), scaled with image_size
# Zero-shot routes: "mutual" scores a batch's images against each other (B); "clip" compares each image with
# text about normal and defective parts (A, needs CLIP weights: Inspector.zero_shot_clip).
ZERO_SHOT = ("mutual", "clip")


@dataclass
class InspectionResult:
    """What the inspector says about one image. `error` is set (and the rest empty) if it could not be read."""

    source: str
    score: float | None = None
    anomalous: bool | None = None
    probability: float | None = None  # calibrated probability that the image is anomalous
    confidence: float | None = None  # probability of the verdict given: max(p, 1 − p)
    anomaly_map: np.ndarray | None = field(default=None, repr=False)  # H×W at the image's own size
    regions: list[Region] = field(default_factory=list)
    location: str = ""  # "bottom left", … ("" when no defect)
    image_size: tuple[int, int] | None = None  # width, height
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        """JSON-ready summary (the map itself is left out: it goes to image files)."""
        return {
            "source": self.source, "ok": self.ok, "error": self.error, "score": self.score,
            "anomalous": self.anomalous, "probability": self.probability, "confidence": self.confidence,
            "location": self.location, "regions": [r.to_dict() for r in self.regions],
            "image_size": self.image_size,
        }


@dataclass(frozen=True)
class InspectorConfig:
    backbone: str = DEFAULT_BACKBONE
    image_size: int = 256
    expert: str = "auto"  # "auto", "memory_bank" (few-shot), "patchcore" (full-shot), "decoder" or "fused"
    coreset_ratio: float = 0.1
    max_bank: int = 16_384  # caps the PatchCore bank so detection speed does not grow with the training set
    num_neighbors: int = 9
    batch_size: int = 8  # small batches keep activations in cache: faster on CPU than large ones
    synthetic_images: int = 256  # "decoder", "fused": synthetic anomalies to train on
    seed: int = 0


class Inspector:
    """Fit on normal images (k = 1 reference or thousands), then predict verdicts, maps and regions.
    With `zero_shot="mutual"` there is no fit: each predict() batch is scored against itself."""

    def __init__(self, backbone: str = DEFAULT_BACKBONE, *, weights: str | Path | None = None,
                 zero_shot: str | None = None, **options):
        if zero_shot is not None and zero_shot not in ZERO_SHOT:
            raise ValueError(f"unknown zero-shot route {zero_shot!r}; choose one of {', '.join(ZERO_SHOT)}")
        self.zero_shot = zero_shot
        self.config = InspectorConfig(backbone=backbone, **options)
        self.weights_file = resolve_weights(backbone, weights)
        self.backbone = None if zero_shot == "clip" else create_backbone(backbone, self.weights_file)
        self.expert: Expert | None = None
        self.calibration: Calibration | None = None
        self.skipped: list[str] = []  # training images that could not be read

    @classmethod
    def zero_shot_clip(cls, clip_weights: str | Path | None = None, clip_model: str | None = None, *,
                       class_name: str | None = None, defects: Sequence[str] = (), writer=None,
                       **options) -> "Inspector":
        """Zero-shot route A: CLIP's image patches against prompts about a normal and a defective
        `class_name` (plus known `defects`, and prompts a language model `writer` adds). Weights come from
        `clip_weights` (a local file) or, without it, the hub; offline that fails with a message saying
        where to get a file."""
        from .clip import Tokenizer, create_clip
        from .experts.clip_zero_shot import ClipZeroShotExpert

        inspector = cls(zero_shot="clip", **options)
        model = create_clip(clip_model if clip_model or not clip_weights else None, clip_weights)
        inspector.expert = ClipZeroShotExpert(model, Tokenizer(), class_name, defects, writer,
                                              batch_size=inspector.config.batch_size)
        inspector.calibration = probability_calibration()
        return inspector

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, images: Sequence[ImageInput], progress: Callable[[int], None] | None = None,
            train_progress: Callable[[str, int, int], None] | None = None) -> "Inspector":
        """Build the expert's memory from normal images (or train it: "decoder", "fused") and calibrate the
        decision on them. Unreadable images are skipped and listed in `self.skipped`; none readable is an
        error. `progress(n)` counts embedded images; `train_progress(stage, done, total)` follows training."""
        if self.zero_shot:
            raise ValueError("a zero-shot inspector is not fitted: call predict(images) on the batch directly")
        kind = EXPERT_ALIASES.get(self.config.expert, self.config.expert)
        if kind != "auto" and kind not in EXPERTS:
            raise ValueError(f"unknown expert {self.config.expert!r}: choose auto, memory, {', '.join(EXPERTS)} or both")
        self.skipped, chunks, resized = [], [], []
        for item in self._batches(images):
            if isinstance(item, tuple):  # (source, error): unreadable
                self.skipped.append(str(item[1]))
                continue
            batch = to_batch([array for _, array in item], self.config.image_size)
            chunks.append(patch_features(self.backbone, batch))
            if progress:
                progress(len(item))
            if kind in TRAINED_EXPERTS:  # anomalies are synthesised from them: kept small, as uint8
                resized.append(batch.mul(255).round_().to(torch.uint8))
        if not chunks:
            raise ValueError("no readable normal image to fit on" + (f": {self.skipped[0]}" if self.skipped else ""))
        features = [torch.cat(stage) for stage in zip(*chunks)]  # only features are kept, never all images
        n_images = len(features[0])
        memory_kind = "memory_bank" if n_images <= FEW_SHOT_MAX else "patchcore"
        if kind in TRAINED_EXPERTS:
            embed = partial(patch_features, self.backbone)
            text_start = getattr(self.backbone.network, "decoder_start", None)  # CLIP backbones name states in words
            self.expert, normal_maps, normal_scores = fit_trained(kind, memory_kind, self.config, features,
                                                                  torch.cat(resized), embed, train_progress,
                                                                  text_start() if text_start else None)
            method = "held-out"
        else:
            self.expert = EXPERTS[memory_kind if kind == "auto" else kind].create(self.config).fit(features)
            normal_maps, normal_scores = self.expert.leave_one_out(features)
            method = "leave-one-out" if n_images > 1 else "self-similarity"
        self.calibration = calibrate(normal_scores.numpy(), self._smooth(normal_maps).numpy(), method)
        return self

    # ---- prediction ----------------------------------------------------------------------------
    def predict(self, images: Sequence[ImageInput]) -> list[InspectionResult]:
        return list(self.iter_predict(images))

    def iter_predict(self, images: Iterable[ImageInput]) -> Iterator[InspectionResult]:
        """Results in input order; an unreadable image gives a result with `error` set, not an exception.
        Images are decoded a little ahead on a worker thread, overlapping decoding with the network.
        Zero-shot route B ("mutual") reads and embeds the whole batch before the first result, then scores
        it at once."""
        if self.zero_shot == "mutual":
            yield from self._iter_zero_shot(images)
            return
        self._require_fitted()
        for item in self._batches(images):
            if isinstance(item, tuple):  # (source, error): unreadable
                yield InspectionResult(source=item[0], error=str(item[1]))
            else:
                yield from self._finish(item)

    def _iter_zero_shot(self, images: Iterable[ImageInput]) -> Iterator[InspectionResult]:
        """Scores a whole batch mutually, and calibrates the verdict on the batch's own normal mode."""
        entries, chunks = [], []  # entries: (source, image shape) or (source, ImageError), in input order
        for item in self._batches(images):
            if isinstance(item, tuple):  # (source, error): unreadable
                entries.append(item)
            else:
                entries += [(source, array.shape[:2]) for source, array in item]
                chunks.append(self._embed([array for _, array in item]))
        n_read = sum(len(chunk[0]) for chunk in chunks)
        if n_read < 2:
            raise ValueError(f"zero-shot scoring compares images with each other: it needs at least 2 readable "
                             f"images, got {n_read}")
        self.expert = MutualScorer.create(self.config)
        patch_maps, scores = self.expert.score([torch.cat(stage) for stage in zip(*chunks)])
        maps, scores = self._smooth(patch_maps).numpy(), scores.numpy()
        self.calibration = batch_calibration(scores, maps)
        readable = iter(zip(scores, maps))
        for source, shape in entries:
            if isinstance(shape, ImageError):
                yield InspectionResult(source=source, error=str(shape))
            else:
                score, small_map = next(readable)
                yield self._result(source, shape, float(score), small_map)

    def _batches(self, images: Iterable[ImageInput]) -> Iterator[list[tuple[str, np.ndarray]] | tuple[str, ImageError]]:
        """Decoded [(source, array), …] batches of up to batch_size, in input order; an unreadable image
        closes the batch before it and comes on its own as a (source, error) pair."""
        batch: list[tuple[str, np.ndarray]] = []
        for source, loaded in _decode_ahead(images, depth=2 * self.config.batch_size):
            if isinstance(loaded, ImageError):
                if batch:
                    yield batch
                batch = []
                yield source, loaded
                continue
            batch.append((source, loaded))
            if len(batch) == self.config.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def score(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Raw image scores (B,) and smoothed maps (B, S, S) at the model's input size S for one batch."""
        self._require_fitted()
        if self.zero_shot == "clip":  # CLIP reads the images with its own image tower
            maps, scores = self.expert.score_images(images)
        else:
            maps, scores = self.expert.score(self._embed(images))
        return scores.numpy(), self._smooth(maps).numpy()

    def defect_descriptors(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(B, D) descriptions of where each image departs from normal, for the defect-type expert."""
        self._require_fitted()
        if self.zero_shot:
            raise ValueError("defect types need a fitted inspector (a model file or references), not zero-shot")
        features = self._embed(images)
        maps, _ = self.expert.score(features)
        return defect_descriptors(features, maps)

    def _finish(self, batch: list[tuple[str, np.ndarray]]) -> Iterator[InspectionResult]:
        if not batch:
            return
        scores, maps = self.score([array for _, array in batch])
        for (source, array), score, small_map in zip(batch, scores, maps):
            yield self._result(source, array.shape[:2], float(score), small_map)

    def _result(self, source: str, shape: tuple[int, int], score: float, small_map: np.ndarray) -> InspectionResult:
        cal = self.calibration
        full_map = F.interpolate(torch.from_numpy(small_map)[None, None], size=shape, mode="bilinear",
                                 align_corners=False)[0, 0].numpy()
        anomalous = score >= cal.image_threshold
        probability = cal.probability(score)
        regions = []
        if anomalous:
            # Outline at half the peak's height above a normal pixel, and never below the calibrated pixel
            # threshold unless the peak itself is (so a positive verdict always says where); report the
            # regions whose peak no normal image reaches.
            peak = float(small_map.max())
            half_max = (cal.pixel_floor + peak) / 2
            level = max(cal.pixel_threshold, half_max) if peak > cal.pixel_threshold else half_max
            regions = find_regions(small_map, level, seed=cal.region_threshold, image_size=(shape[1], shape[0]))
        return InspectionResult(
            source=source, score=score, anomalous=bool(anomalous), probability=probability,
            confidence=max(probability, 1 - probability), anomaly_map=full_map, regions=regions,
            location=describe_location(regions), image_size=(shape[1], shape[0]),
        )

    # ---- internals -----------------------------------------------------------------------------
    def _embed(self, arrays: Sequence[np.ndarray]):
        batch = to_batch(arrays, self.config.image_size)
        if self.zero_shot == "mutual":  # no normal image says which exposure is normal: see standardise_exposure
            batch = standardise_exposure(batch)
        return patch_features(self.backbone, batch)

    def _smooth(self, patch_maps: torch.Tensor) -> torch.Tensor:
        """(B, h, w) patch maps → (B, S, S) at the input size, Gaussian-smoothed (PatchCore's σ = 4 at 256 px).
        In batch-size chunks: the convolution's working memory grows with the batch (gigabytes for the
        hundreds of leave-one-out maps of a large training set)."""
        size, step = self.config.image_size, self.config.batch_size
        out = []
        for start in range(0, len(patch_maps), step):
            maps = F.interpolate(patch_maps[start:start + step, None].float(), size=(size, size), mode="bilinear",
                                 align_corners=False)
            out.append(gaussian_blur(maps, SMOOTHING_SIGMA * size / 256)[:, 0])
        return torch.cat(out)

    def _require_fitted(self) -> None:
        if self.expert is None or self.calibration is None:
            raise RuntimeError("the inspector is not fitted: call fit(normal_images) or Inspector.load(path)")

    @property
    def weights_sha256(self) -> str:
        return hashlib.sha256(Path(self.weights_file).read_bytes()).hexdigest()

    # ---- model files ---------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        from .model_file import save_inspector

        if self.zero_shot:
            raise ValueError("a zero-shot inspector has no model to save: it scores each batch on its own")
        return save_inspector(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, weights: str | Path | None = None) -> "Inspector":
        from .model_file import load_inspector

        return load_inspector(path, weights=weights)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) maps with reflected borders (radius 4σ)."""
    radius = int(4 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    maps = F.pad(maps, [radius] * 4, mode="reflect")
    maps = F.conv2d(maps, kernel.view(1, 1, 1, -1))
    return F.conv2d(maps, kernel.view(1, 1, -1, 1))


def _decode_ahead(images: Iterable[ImageInput], depth: int) -> Iterator[tuple[str, np.ndarray | ImageError]]:
    """(source, array or the ImageError) in input order, with at most `depth` images decoded ahead."""

    def load(item: ImageInput, source: str) -> np.ndarray | ImageError:
        try:
            return _as_array(item, source)
        except ImageError as error:
            return error

    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=1) as pool:
        for i, item in enumerate(images):
            source = _source(item, i)
            pending.append((source, pool.submit(load, item, source)))
            if len(pending) > depth:
                source, future = pending.popleft()
                yield source, future.result()
        while pending:
            source, future = pending.popleft()
            yield source, future.result()


def _source(item: ImageInput, index: int) -> str:
    return f"array[{index}]" if isinstance(item, np.ndarray) else str(item)


def _as_array(item: ImageInput, source: str) -> np.ndarray:
    """A path is decoded; an array must already be H×W×3 (uint8, or float in [0, 1])."""
    if not isinstance(item, np.ndarray):
        return load_image(item)
    if item.ndim != 3 or item.shape[2] != 3 or min(item.shape[:2]) == 0:
        raise ImageError(source, f"array must be H×W×3, got shape {item.shape}")
    if item.dtype == np.uint8:
        return np.ascontiguousarray(item, dtype=np.float32) / 255.0
    return np.ascontiguousarray(np.clip(item, 0, 1), dtype=np.float32)
