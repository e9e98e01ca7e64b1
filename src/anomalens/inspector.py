"""The one obvious API: ``Inspector().fit(normal_images)`` then ``inspector.predict(images)``; zero-shot, with
no normal images: ``Inspector(zero_shot="mutual").predict(images)`` (a batch scored against itself) or
``Inspector.zero_shot_clip(weights, class_name=...)`` (CLIP and text prompts).

The Inspector composes the stages in data-flow order and holds no knowledge of any one expert:
preprocessing (decode, resize) → features (backbone) → expert (patch maps, scores) → maps (smoothing) →
decision (calibration) → result (verdict, regions). What an expert needs, it declares (`Expert.needs`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import torch

from .backbones import DEFAULT_BACKBONE, create_backbone, resolve_weights
from .calibration import SYNTHETIC_SOURCES, anomalous_evidence, batch_calibration, calibrate, probability_calibration
from .config import InspectorConfig
from .experts import ClipZeroShotExpert, Expert, ExpertInput, NormalImages, expert_class
from .experts.base import Progress
from .experts.defect_types import defect_descriptors
from .features import patch_features
from .graph import InferenceGraph
from .maps import smooth
from .model_file import read_model, save_model
from .pixels import Preprocessing
from .preprocessing import Decoded, ImageInput, Unreadable, as_images, batches
from .references import References
from .result import InspectionResult, decide

__all__ = ["ImageInput", "InspectionResult", "Inspector", "InspectorConfig"]
Weights = str | Path | None  # a backbone weights file; None: the one its package ships
Images = ImageInput | Iterable[ImageInput]  # one image (path or array) or many
Count = Callable[[int], None]  # images embedded so far


class Inspector:
    """Fit on normal images (k = 1 reference or thousands), then predict verdicts, maps and regions. A
    zero-shot expert (`zero_shot="mutual"`, or any expert that needs no normal images) has no fit.
    `predict` never changes the inspector: one fitted inspector serves many threads."""

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        weights: Weights = None,
        zero_shot: str | None = None,
        expert: str | Expert = "auto",
        **options,
    ):
        expert = zero_shot or expert
        kind = expert_class(expert, zero_shot=zero_shot is not None) if isinstance(expert, str) else type(expert)
        self.config = InspectorConfig(backbone, expert=expert if isinstance(expert, str) else kind.name, **options)
        self.weights_file = resolve_weights(backbone, weights) if "features" in kind.needs else None
        self.backbone = create_backbone(backbone, self.weights_file) if self.weights_file else None
        fitted = "normal" in kind.needs
        self.expert = expert if isinstance(expert, Expert) else None if fitted else kind.create(self.config)
        self.calibration = probability_calibration() if kind.probability_scores else None
        self.skipped: list[str] = []  # training images that could not be read
        self.references: References | None = None  # which normal image a result is most like

    @classmethod
    def zero_shot_clip(cls, clip_weights=None, clip_model=None, *, class_name=None, defects=(), writer=None, **options):
        """Zero-shot route A: CLIP's patches against text about `class_name` (`ClipZeroShotExpert.from_weights`)."""
        clip = ClipZeroShotExpert.from_weights(clip_weights, clip_model, class_name, defects, writer)
        return cls(expert=clip, **options)

    def fit(self, images: Images, progress: Count | None = None, train_progress: Progress | None = None) -> Inspector:
        """Fit the expert on normal images and calibrate the decision on them. Unreadable images are skipped
        and listed in `self.skipped`; none readable is an error. `progress(n)` counts embedded images;
        `train_progress(stage, done, total)` follows training."""
        kind = expert_class(self.config.expert)
        if "normal" not in kind.needs:
            raise ValueError("a zero-shot inspector is not fitted: call predict(images) on the batch directly")
        self.skipped, parts = [], []
        sources: list[str] = []
        anomaly_sources: list[torch.Tensor] = []  # the first references, as pixels
        for item in batches(as_images(images), self.config.batch_size):
            if isinstance(item, tuple):  # (source, error): unreadable
                self.skipped.append(str(item[1]))
                continue
            batch = self._input(item, kind, keep_pixels=True)
            assert batch.pixels is not None
            batch.pixels = batch.pixels.mul(255).round_().to(torch.uint8)  # kept small; never the decoded images
            anomaly_sources.append(batch.pixels[: max(SYNTHETIC_SOURCES - len(sources), 0)])  # to make anomalies of
            if not {"pixels", "normal_pixels"} & kind.needs:
                batch.pixels = None
            parts.append(batch)
            sources += [entry.source for entry in item]
            if progress:
                progress(len(item))
        if not parts:
            raise ValueError("no readable normal image to fit on" + (f": {self.skipped[0]}" if self.skipped else ""))
        joined = ExpertInput.joined(parts)
        self.references = References.of(sources, joined.features) if joined.features is not None else None
        embed = partial(patch_features, self.backbone) if self.backbone else None
        text_start = getattr(getattr(self.backbone, "network", None), "decoder_start", None)  # CLIP backbones
        normal = NormalImages(joined.features, joined.pixels, embed, text_start, train_progress)
        self.expert = expert_class(self.config.expert, len(normal)).create(self.config, len(normal))
        evidence = self.expert.fit(normal)
        maps = smooth(evidence.maps, self.config.image_size).numpy()
        anomalies = (
            anomalous_evidence(self.expert, torch.cat(anomaly_sources), embed, self.config.seed) if embed else None
        )
        scores, method = evidence.scores.numpy(), evidence.method
        self.calibration = calibrate(scores, maps, method, anomalies, self.config.max_false_alarms)
        return self

    def predict(self, images: Images, max_pixels: int | None = None) -> list[InspectionResult]:
        return list(self.iter_predict(images, max_pixels))

    def iter_predict(self, images: Images, max_pixels: int | None = None) -> Iterator[InspectionResult]:
        """Results in input order; an unreadable image gives a result with `error` set, not an exception.
        Images are decoded a little ahead on a worker thread. An expert that scores a batch against itself
        ("batch") reads and embeds the whole batch before the first result."""
        if self.expert is None or (self.calibration is None and "batch" not in self.expert.needs):
            raise RuntimeError("the inspector is not fitted: call fit(normal_images) or Inspector.load(path)")
        groups = batches(as_images(images), self.config.batch_size, max_pixels)  # larger files: refused unread
        for group in [list(groups)] if "batch" in self.expert.needs else ([item] for item in groups):
            yield from self._inspect(group, self.expert)

    def _inspect(self, group: list[list[Decoded] | Unreadable], expert: Expert) -> Iterator[InspectionResult]:
        """Scores the readable images of `group` together, then gives every item's result in order."""
        decoded = [entry for item in group if isinstance(item, list) for entry in item]
        if decoded:
            batch = ExpertInput.joined([self._input(item, expert) for item in group if isinstance(item, list)])
            patch_maps, image_scores = expert.score(batch)
            maps, scores = smooth(patch_maps, self.config.image_size).numpy(), image_scores.numpy()
            calibration = self.calibration or batch_calibration(scores, maps)
            descriptors = defect_descriptors(batch.features, patch_maps) if batch.features else [None] * len(scores)
            known = self.references is not None and batch.features is not None
            nearest = self.references.nearest(batch.features) if known else [""] * len(scores)  # type: ignore[union-attr, arg-type]
            scored = iter(zip(decoded, scores, maps, descriptors, nearest))
        for item in group:
            if isinstance(item, tuple):
                yield InspectionResult(source=item[0], error=str(item[1]))
                continue
            for entry, score, small_map, descriptor, reference in (next(scored) for _ in item):
                yield decide(entry, float(score), small_map, calibration, expert.name, descriptor, reference)

    def _input(self, item: list[Decoded], kind: Expert | type[Expert], keep_pixels: bool = False) -> ExpertInput:
        """What the expert (or its class, before it is fitted) needs of these images: pixels, features or both
        (pixels always with `keep_pixels`)."""
        size = kind.input_size or self.config.image_size
        pixels = Preprocessing(size, kind.resize_mode, kind.standardises_exposure)([entry.image for entry in item])
        features = patch_features(self.backbone, pixels) if "features" in kind.needs else None
        return ExpertInput(pixels if keep_pixels or {"pixels", "normal_pixels"} & kind.needs else None, features)

    @property
    def expert_name(self) -> str:  # as an exported model (`deploy.OnnxInspector`) names it
        return self.expert.name if self.expert else expert_class(self.config.expert).name

    def graph(self) -> InferenceGraph:
        """The fitted model's tensor part as one torch module (pixels → smoothed maps, scores), for export."""
        return InferenceGraph.of(self)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        if self.expert is None or self.calibration is None or "normal" not in self.expert.needs:
            raise ValueError("a zero-shot inspector has no model to save: it scores each batch (or text) on its own")
        return save_model(path, self, overwrite)

    @classmethod
    def load(cls, path: str | Path, weights: str | Path | None = None) -> Inspector:
        model = read_model(path)
        inspector = cls(**model.config, weights=weights)
        inspector.expert, inspector.calibration = model.matching(inspector).expert, model.calibration
        inspector.references = model.references
        return inspector
