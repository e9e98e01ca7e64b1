"""One inspection service for the interactive interfaces (the CLI and the HTTP server): which inspector a
request asks for — a model file, few-shot references, a zero-shot route — and each result carried on to
findings, an overlay and a chat session. They call this; neither wires these pieces itself. The Ray batch
path (`distributed`) does not go through it: each worker loads its predictor from the model file."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..backbones import DEFAULT_BACKBONE
from ..data import reduced, to_uint8
from ..experts import expert_class, zero_shot_routes
from ..experts.defect_types import DefectGuess, DefectTypeClassifier
from ..inspector import Inspector
from ..language import ChatImages, ChatSession, Criteria, Findings, LanguageModel, compose, findings_from
from ..overlay import render_overlay
from ..predictor import Predictor
from ..preprocessing import ImageInput
from ..resampling import at_image_size
from ..result import InspectionResult
from .conversations import Conversations, SeriesChats
from .jobs import FitJob, JobFiles, JobJournal
from .store import ModelStore, StoreError

__all__ = [
    "Conversations",
    "FitJob",
    "Inspection",
    "InspectionService",
    "JobFiles",
    "JobJournal",
    "ModelStore",
    "SeriesChats",
    "StoreError",
]
FIRST_QUESTION = "Is there any anomaly in the image?"
DISPLAY_SIDE = 768  # a conversation keeps its pictures at most this size: under 2 MB each, whatever was uploaded
ZERO_SHOT_INSPECTORS = 5  # zero-shot inspectors kept (a text route's prompts embedded once per class name)


@dataclass
class Inspection:
    """One image's result with what is said about it. `findings` is None when the image was unreadable."""

    result: InspectionResult
    findings: Findings | None

    @property
    def ok(self) -> bool:
        return self.result.ok

    def overlay(self, max_side: int | None = None) -> Image.Image:
        """The heatmap over the image the result was decoded from, with boxes around its regions; with
        `max_side`, drawn at most that size (the image and map are reduced first, which keeps it cheap)."""
        r = self.result
        assert r.image is not None and r.anomaly_map is not None and r.calibration is not None  # a successful one
        image, anomaly_map = r.image, r.anomaly_map
        if max_side and max(image.shape[:2]) > max_side:
            image = reduced(image, max_side)
            anomaly_map = at_image_size(anomaly_map, image.shape[:2])
        return render_overlay(image, anomaly_map, r.calibration, r.regions, r.image_size)

    def failed(self, error: BaseException) -> Inspection:
        """This image's inspection as one that failed (e.g. its overlay could not be drawn or written)."""
        return Inspection(InspectionResult.failed(self.result.source, error), None)

    def answer(self) -> str:
        """The grounded answer to the first question a person asks."""
        assert self.findings is not None, "no answer for an unreadable image"
        return compose(FIRST_QUESTION, self.findings).text


class InspectionService:
    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        language_model: LanguageModel | None = None,
        guard: str = "correct",
        clip_weights: str | Path | None = None,
        clip_model: str | None = None,
    ):
        self.weights, self.language_model, self.guard = weights, language_model, guard
        self.clip_weights, self.clip_model = clip_weights, clip_model
        self._few_shot: Inspector | None = None  # unfitted: its backbone is loaded once and shared
        self._zero_shot: OrderedDict[str, Inspector] = OrderedDict()
        self._lock = threading.Lock()

    # ---- which inspector -----------------------------------------------------------------------
    def load(self, model: str | Path) -> Inspector:
        return Inspector.load(model, weights=self.weights)

    def fit(
        self,
        images: Iterable[ImageInput],
        *,
        progress: Callable[[int], None] | None = None,
        train_progress: Callable[[str, int, int], None] | None = None,
        **options,
    ) -> Inspector:
        """A new inspector fitted on normal images (`options`: the Inspector's, e.g. expert, image_size)."""
        if not options or options == {"expert": "auto"}:  # the default inspector: share its backbone
            with self._lock:
                if self._few_shot is None:
                    self._few_shot = Inspector(weights=self.weights)
            inspector = copy.copy(self._few_shot)  # fit() gives the copy its own expert and calibration
        else:
            inspector = Inspector(options.pop("backbone", DEFAULT_BACKBONE), weights=self.weights, **options)
        return inspector.fit(images, progress=progress, train_progress=train_progress)

    @property
    def default_zero_shot_route(self) -> str:
        """The route a request that names none takes: clip where the service has a CLIP, else mutual."""
        return "mutual" if self.clip_weights is None and self.clip_model is None else "clip"

    def zero_shot_routes(self) -> list[str]:
        """The zero-shot routes this service runs: every registered one, but a route that reads text when the
        service has no CLIP."""
        has_clip = self.clip_weights is not None or self.clip_model is not None
        return [route for route in zero_shot_routes() if has_clip or "text" not in expert_class(route).needs]

    def zero_shot(
        self, route: str | None = None, class_name: str | None = None, defects: Sequence[str] = ()
    ) -> Inspector:
        """The inspector on the registered zero-shot route `route` (default: `default_zero_shot_route`), on the
        service's CLIP for a route that reads text about `class_name`. They predict without changing, so they
        are shared: one per route, and one per class and defects for a text route (the latest few)."""
        route = route or self.default_zero_shot_route
        reads_text = "text" in expert_class(route, zero_shot=True).needs  # an unknown route: its ValueError
        if reads_text and self.clip_weights is None and self.clip_model is None:  # never a download unasked
            raise ValueError(f"the {route} route reads text with CLIP, and this service has none (clip_weights)")
        key = f"{route}:{(class_name or '').strip().lower()}:{'|'.join(defects)}" if reads_text else route
        with self._lock:
            if key not in self._zero_shot:
                self._zero_shot[key] = Inspector.zero_shot(
                    route,
                    class_name=class_name,
                    defects=defects,
                    clip_weights=self.clip_weights,
                    clip_model=self.clip_model,
                    weights=self.weights,
                )
                while len(self._zero_shot) > ZERO_SHOT_INSPECTORS:
                    self._zero_shot.popitem(last=False)
            self._zero_shot.move_to_end(key)
            return self._zero_shot[key]

    # ---- results → findings → overlay → chat ---------------------------------------------------
    def inspect(
        self,
        inspector: Predictor,
        images: Iterable[ImageInput],
        *,
        class_name: str = "",
        criteria: Criteria | None = None,
        references: Sequence[str] = (),
        defect_types: DefectTypeClassifier | None = None,
        max_pixels: int | None = None,
        batch_evidence: bool = False,
        scored: Callable[[], None] | None = None,
    ) -> Iterator[Inspection]:
        """Inspections in input order; an unreadable image is an Inspection whose result has `error` set.
        Each image is decided alone; `batch_evidence`: as one batch (`batch_evidence.batch_refined`). `scored()`
        is called as each image is scored (progress). Defect types are named by `defect_types`, else by those
        the model was taught."""
        defect_types = defect_types or getattr(inspector, "defect_types", None)
        for result in inspector.iter_predict(images, max_pixels, batch_evidence, scored):
            if not result.ok:
                yield Inspection(result, None)
                continue
            try:
                guess = self._defect_type(result, defect_types)
                found = findings_from(
                    result, class_name=class_name, criteria=criteria, references=tuple(references), defect_type=guess
                )
            except Exception as error:  # noqa: BLE001 - this image's failure alone: its result says why
                yield Inspection(InspectionResult.failed(result.source, error), None)
                continue
            yield Inspection(result, found)

    def chat(self, inspection: Inspection, references: Sequence = ()) -> ChatSession:
        """A conversation about one inspection (`references`: normal images a vision model is shown)."""
        assert inspection.result.image is not None and inspection.findings is not None  # a successful inspection
        picture = Image.fromarray(to_uint8(reduced(inspection.result.image, DISPLAY_SIDE)))
        images = ChatImages(display(picture), display(inspection.overlay(DISPLAY_SIDE)), list(references[:2]))
        return ChatSession(inspection.findings, self.language_model, guard=self.guard, images=images)

    @staticmethod
    def defect_types(
        inspector: Inspector, examples: Mapping[str, Sequence[ImageInput]]
    ) -> tuple[DefectTypeClassifier, list[str]]:
        """A defect-type head from labelled examples (type → images), and the examples it could not read.
        Descriptors come with the examples' results: nothing is embedded twice."""
        descriptors: dict[str, np.ndarray] = {}
        skipped: list[str] = []
        for name, images in examples.items():
            results = inspector.predict(list(images))
            skipped += [r.error for r in results if r.error is not None]  # the ones not ok
            rows = [r.descriptor for r in results if r.ok and r.descriptor is not None]
            if rows:
                descriptors[name] = np.stack(rows)
        return DefectTypeClassifier.fit(descriptors), skipped

    @staticmethod
    def _defect_type(result: InspectionResult, head: DefectTypeClassifier | None) -> DefectGuess | None:
        return head.classify(result.descriptor) if head is not None and result.descriptor is not None else None


def display(picture: Image.Image) -> Image.Image:
    """A copy at most DISPLAY_SIDE pixels a side, for what is kept beyond the inspection itself."""
    picture = picture.copy()
    picture.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE))
    return picture
