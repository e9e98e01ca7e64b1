"""The one obvious API: ``Inspector().fit(normal_images)`` then ``inspector.predict(images)``; zero-shot, with
no normal images: ``Inspector.zero_shot(route).predict(images)``, a registered zero-shot route by name ("mutual": a
batch scored against itself; "clip": CLIP and text prompts about ``class_name``). It composes the stages in
data-flow order: preprocessing (decode, resize) → features (backbone) → expert (patch maps, scores) → maps →
decision (calibration) → result (verdict, regions); experts declare their `needs`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .backbones import DEFAULT_BACKBONE, create_backbone, resolve_weights
from .batch_evidence import batch_calibration
from .calibration import calibrate, probability_calibration
from .config import InspectorConfig
from .defect_memory import DefectMemory, flagged
from .embedded import Embedded, embedded, expert_input, tile_batches
from .evidence import DecisionEvidence
from .experts import Expert, ExpertInput, NormalEvidence, expert_class
from .experts.base import Progress
from .experts.defect_types import FORMS, DefectExamples, DefectTypeClassifier, defect_descriptors
from .features import patch_features
from .graph import InferenceGraph
from .lineage import Step
from .maps import smooth
from .model_file import read_model, save_model
from .model_header import resolved_settings
from .preprocessing import (
    AUTO,
    SQUASH,
    Decoded,
    ImageInput,
    Layout,
    Unreadable,
    as_images,
    batches,
    checked_scale,
)
from .references import References
from .result import InspectionResult, ModelMetadata, Scored, decided, file_version
from .scale import Probe, choose_scale
from .stitching import ImageMaps
from .synthetic_evidence import anomalous_evidence

__all__ = ["ImageInput", "InspectionResult", "Inspector", "InspectorConfig"]
Weights = str | Path | None  # a backbone weights file; None: the one its package ships
Images = ImageInput | Iterable[ImageInput]  # one image (path or array) or many
Count = Callable[[int], None]  # images embedded so far
Embed = Callable[[torch.Tensor], list[torch.Tensor]]  # float pixel batches → patch features
ImageScore = tuple[float, np.ndarray, np.ndarray | None, str, str]  # score, map, descriptor, reference, known defect


class Inspector:
    """Fit on normal images (k = 1 reference or thousands), then predict verdicts, maps and regions. A
    zero-shot expert (`Inspector.zero_shot(route)`: any expert that needs no normal images) has no fit.
    `predict` never changes the inspector: one fitted inspector serves many threads."""

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        weights: Weights = None,
        expert: str | Expert = "auto",
        expert_settings: Mapping | None = None,
        **options,
    ):
        kind = expert_class(expert) if isinstance(expert, str) else type(expert)
        settings = resolved_settings(expert if isinstance(expert, str) else kind, expert_settings, options)
        name = expert if isinstance(expert, str) else kind.name
        self.config = InspectorConfig(backbone, expert=name, expert_settings=settings, **options)
        self.config = replace(self.config, scale=checked_scale(self.config.scale, auto=True))
        self.weights_file = resolve_weights(backbone, weights) if "features" in kind.needs else None
        self.backbone = create_backbone(backbone, self.weights_file) if self.weights_file else None
        fitted = "normal" in kind.needs
        self.expert = expert if isinstance(expert, Expert) else None if fitted else kind.create(self.config)
        self.calibration = probability_calibration() if kind.probability_scores else None
        self.skipped: list[str] = []  # training images that could not be read
        self.references: References | None = None  # which normal image a result is most like
        self.scale_probes: list[Probe] = []  # scale="auto": the layouts tried (`scale.choose_scale`)
        self.model_file: Path | None = None  # the file it was loaded from (`load`) or saved as a taught version
        self.evidence: DecisionEvidence | None = None  # what the decision was calibrated on (teaching reads it)
        self.lineage: tuple[Step, ...] = ()  # the teaching steps that made it (`lineage`)
        self.defect_examples: DefectExamples | None = None  # typed defects it was taught
        self.defect_memory: DefectMemory | None = None  # marked defects it was taught to find again
        self._version: tuple[Path, str] | None = None  # model_file and its hash, read once per file

    @classmethod
    def zero_shot(cls, route="mutual", *, class_name=None, defects=(), clip_weights=None, clip_model=None, **options):
        """An inspector on a registered zero-shot route (`experts.zero_shot_routes`); one that reads text (CLIP)
        is built from `class_name` and `defects` on the CLIP of `clip_weights` (a file) or `clip_model` (a name)."""
        kind = expert_class(route, zero_shot=True)
        text = "text" in kind.needs
        return cls(expert=kind.from_text(class_name, defects, clip_weights, clip_model) if text else route, **options)

    def fit(self, images: Images, progress: Count | None = None, train_progress: Progress | None = None) -> Inspector:
        """Fit the expert on normal images and calibrate the decision on them. Unreadable images are skipped
        and listed in `self.skipped`; none readable is an error. `progress(n)` counts embedded images;
        `train_progress(stage, done, total)` follows training."""
        kind = expert_class(self.config.expert)
        if "normal" not in kind.needs:
            raise ValueError("a zero-shot inspector is not fitted: call predict(images) on the batch directly")
        if self.config.scale == AUTO:
            images = list(as_images(images))
            scale, self.scale_probes = choose_scale(self, images) if kind.reads_tiles else (SQUASH, [])
            self.config = replace(self.config, scale=scale)
        seen = self._normal_embedded(images, kind, progress)
        embed = partial(patch_features, self.backbone) if self.backbone else None
        text_start = getattr(getattr(self.backbone, "network", None), "decoder_start", None)  # CLIP backbones
        normal = seen.normal_images(embed, text_start, train_progress)
        # the few-shot bank holds every patch of its references: "auto" counts tiles, unless there is one image
        self.expert = expert_class(self.config.expert, len(normal) if len(seen.plans) > 1 else 1).create(
            self.config, len(normal)
        )
        self._calibrate(seen, self.expert.fit(normal), embed)
        return self

    def _normal_embedded(self, images: Images, kind: type[Expert], progress: Count | None) -> Embedded:
        """The normal images as the expert's inputs, and the references they are; unreadable ones are listed in
        `skipped`, and none readable is an error."""
        seen = embedded(as_images(images), self.layout(kind), kind, self.backbone, self.config.batch_size, progress)
        self.skipped = seen.skipped
        if not seen.parts:
            raise ValueError("no readable normal image to fit on" + (f": {self.skipped[0]}" if self.skipped else ""))
        features = seen.joined.features
        self.references = References.of(seen.sources, features) if features is not None else None
        return seen

    def _calibrate(self, seen: Embedded, evidence: NormalEvidence, embed: Embed | None) -> None:
        """The decision placed on the normal images' evidence (untiled: scores and maps as the expert gives them,
        every reference's or its held-out ones') and on synthetic anomalies made of untiled references, which
        bound the threshold; the evidence kept for teaching."""
        assert self.expert is not None  # just fitted
        scores, maps = seen.per_image(evidence)
        made_from = None if seen.tiled or embed is None else torch.from_numpy(np.stack(seen.first_tiles))
        anomalies = None
        if made_from is not None and embed is not None:
            anomalies = anomalous_evidence(self.expert, made_from, embed, self.config.seed)
        self.evidence = DecisionEvidence.of(scores, maps, evidence.method, anomalies, made_from)
        self.calibration = calibrate(scores, maps, evidence.method, anomalies, self.config.max_false_alarms)

    def layout(self, kind: Expert | type[Expert]) -> Layout:
        """How images are laid out as this expert's inputs (experts that read whole images squash them)."""
        size = kind.input_size or self.config.image_size
        return Layout(size, self.config.scale if kind.reads_tiles else SQUASH)

    def predict(
        self, images: Images, max_pixels: int | None = None, batch_evidence: bool = False
    ) -> list[InspectionResult]:
        """All results at once, each image decided alone (its verdict depends on it and the model only);
        `batch_evidence`: the threshold may move on the batch's own scores where they are clearly two groups
        (`batch_evidence.batch_refined`). Results say which (`InspectionResult.decision`)."""
        return list(self.iter_predict(images, max_pixels, batch_evidence))

    def iter_predict(
        self,
        images: Images,
        max_pixels: int | None = None,
        batch_evidence: bool = False,
        scored: Callable[[], None] | None = None,
    ) -> Iterator[InspectionResult]:
        """Results in input order; an unreadable image gives a result with `error` set, not an exception.
        Images are decoded a little ahead on a worker thread. An expert that scores a batch against itself
        ("batch") reads and embeds the whole batch before the first result, as does `batch_evidence`;
        `scored()` is called as each image is scored (progress)."""
        if self.expert is None or (self.calibration is None and "batch" not in self.expert.needs):
            raise RuntimeError("the inspector is not fitted: call fit(normal_images) or Inspector.load(path)")
        layout = self.layout(self.expert)
        group = 1 if layout.max_side is None else self.config.batch_size  # tiled at a stated scale: one at a time
        groups = batches(as_images(images), group, max_pixels, layout.max_side)  # larger: refused
        expert = self.expert
        together = [list(groups)] if "batch" in expert.needs else ([item] for item in groups)
        items = (item for group in together for item in self._scored(group, expert, layout))
        yield from decided(items, batch_evidence, scored)

    def _scored(
        self, group: list[list[Decoded] | Unreadable], expert: Expert, layout: Layout
    ) -> Iterator[Scored | InspectionResult]:
        """Every item's score (or, unreadable or failing on its own, its error result) in order."""
        decoded = [entry for item in group if isinstance(item, list) for entry in item]
        outcomes = self._isolated(decoded, expert, layout) if decoded else []
        kept = [o for o in outcomes if not isinstance(o, InspectionResult)]
        calibration = self.calibration
        if calibration is None and kept:  # a batch expert: the batch calibrates itself
            calibration = batch_calibration(np.array([o[0] for o in kept]), [o[1] for o in kept])
        done = iter(zip(decoded, outcomes))
        for item in group:
            if isinstance(item, tuple):
                yield InspectionResult(source=item[0], error=str(item[1]))
                continue
            for entry, outcome in (next(done) for _ in item):
                if isinstance(outcome, InspectionResult):
                    yield outcome
                    continue
                score, image_map, descriptor, reference, known = outcome
                assert calibration is not None  # made from this outcome's batch
                yield Scored(entry, score, image_map, calibration, expert.name, descriptor, reference, known)

    def _isolated(self, decoded: list[Decoded], expert: Expert, layout: Layout) -> list[ImageScore | InspectionResult]:
        """The images scored together; if that fails, the failure is traced to the images that fail alone
        (laid out, cut into tiles and embedded alone: an expert that scores a batch against itself then
        scores the rest together), whose results say why, and the others are scored as usual. A failure no
        one image causes (too few images for such an expert) is the batch's, and raised."""
        try:
            return list(self._scored_together(decoded, expert, layout))
        except Exception as error:  # noqa: BLE001 - one image's failure, whatever it is, is its result
            together = "batch" in expert.needs
            outcomes: list[ImageScore | InspectionResult | None] = []
            for entry in decoded:
                try:
                    if together:
                        self._embedded(entry, expert, layout)
                        outcomes.append(None)  # scored with the rest below
                    else:
                        outcomes.append(self._scored_together([entry], expert, layout)[0])
                except Exception as own:  # noqa: BLE001
                    outcomes.append(InspectionResult.failed(entry.source, own))
            if not together:
                return [o for o in outcomes if o is not None]
            rest = [entry for entry, o in zip(decoded, outcomes) if o is None]
            if len(rest) == len(decoded):
                raise error
            scored = iter(self._scored_together(rest, expert, layout) if rest else [])
            return [o if isinstance(o, InspectionResult) else next(scored) for o in outcomes]

    def _embedded(self, entry: Decoded, expert: Expert, layout: Layout) -> None:
        """One image laid out, cut into tiles and embedded alone: raises what it alone raises."""
        for _, _, tiles in tile_batches([entry], [layout.plan(entry)], expert, self.config.batch_size):
            expert_input(self.backbone, tiles, expert)

    def _scored_together(self, decoded: list[Decoded], expert: Expert, layout: Layout) -> list[ImageScore]:
        """Scores the images tile batch by tile batch (a batch expert: all at once) and stitches each image's map:
        each image's (score, map, and its highest tile's descriptor, nearest reference and taught defect)."""
        per_image = ImageMaps([layout.plan(entry) for entry in decoded])
        notes: list[tuple[np.ndarray | None, str, str]] = [(None, "", "")] * len(decoded)
        form = self.defect_examples.form if self.defect_examples else FORMS[0]  # described as its typed examples
        batched: Iterator[tuple[list[int], list[int], ExpertInput]] = (
            (owners, indices, expert_input(self.backbone, tiles, expert))
            for owners, indices, tiles in tile_batches(decoded, per_image.plans, expert, self.config.batch_size)
        )
        if "batch" in expert.needs:
            chunks = list(batched)
            whole = [c[0] for c in chunks], [c[1] for c in chunks], ExpertInput.joined([c[2] for c in chunks])
            batched = iter([(sum(whole[0], []), sum(whole[1], []), whole[2])])
        for owners, indices, batch in batched:
            patch_maps, tile_scores = expert.score(batch)
            tile_maps = smooth(patch_maps, layout.size).numpy()
            features = batch.features
            raised = patch_maps, tile_maps  # in place, where like a taught defect
            tile_known = flagged(self.defect_memory, expert, features, raised, tile_scores, self.calibration)
            tile_descriptors = defect_descriptors(features, patch_maps, form) if features else [None] * len(owners)
            tile_nearest = self.references.nearest(features) if self.references and features else [""] * len(owners)
            tile_notes = list(zip(tile_descriptors, tile_nearest, tile_known))
            for j, (owner, index) in enumerate(zip(owners, indices)):
                if per_image.add(owner, index, tile_maps[j], float(tile_scores[j])):
                    notes[owner] = tile_notes[j]
        scores = per_image.scores.tolist()
        return [(score, image_map, *note) for score, image_map, note in zip(scores, per_image.maps(), notes)]

    @property
    def defect_types(self) -> DefectTypeClassifier | None:
        """The defect-type head of the typed defects it was taught (None: fewer than two types)."""
        return self.defect_examples.head() if self.defect_examples is not None else None

    @property
    def expert_name(self) -> str:  # as an exported model (`deploy.OnnxInspector`) names it
        return self.expert.name if self.expert else expert_class(self.config.expert).name

    @property
    def metadata(self) -> ModelMetadata:
        """What it is (`predictor.Predictor`): loaded, its file's stem and hash; else "few-shot" or "zero-shot"."""
        if self.model_file is not None:
            if self._version is None or self._version[0] != self.model_file:
                self._version = (self.model_file, file_version(self.model_file))
            return ModelMetadata(self.model_file.stem, self._version[1], "torch", self.expert_name)
        zero_shot = self.expert is not None and "normal" not in self.expert.needs
        return ModelMetadata("zero-shot" if zero_shot else "few-shot", None, "torch", self.expert_name)

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
        inspector.references, inspector.evidence = model.references, model.evidence
        inspector.lineage, inspector.defect_examples = model.lineage, model.defect_examples
        inspector.defect_memory, inspector.model_file = model.defect_memory, Path(path)
        return inspector
