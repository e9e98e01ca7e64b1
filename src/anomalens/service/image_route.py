"""The images route: image files → the inspector the reference names (a model file, or a folder of normal
images fitted few-shot; none: the images scored against each other, zero-shot) → a `Finding` per image."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..data import IMAGE_SUFFIXES
from ..data.datasets import scan_folder
from ..predictor import Predictor
from ..routes import Finding, register_route
from . import Inspection, InspectionService


@register_route
class Images:
    name = "images"
    suffixes = tuple(sorted(IMAGE_SUFFIXES))

    def __init__(self, service: InspectionService | None = None):
        self.service = service or InspectionService()

    def predictor(self, reference: Path | None) -> Predictor:
        if reference is None:
            return self.service.zero_shot()
        if reference.is_dir():
            normal, _ = scan_folder(reference)
            if not normal:
                raise ValueError(f"{reference}: no normal images in this folder")
            return self.service.fit([str(p) for p in normal])
        return self.service.load(reference)

    def inspect(self, paths: Sequence[Path], reference: Path | None) -> Iterator[Finding]:
        predictor = self.predictor(reference)
        for inspection in self.service.inspect(predictor, [str(p) for p in paths]):
            yield image_finding(inspection)


def image_finding(inspection: Inspection) -> Finding:
    result = inspection.result
    if not inspection.ok:
        return Finding(result.source, Images.name, False, error=result.error)
    record = {k: v for k, v in result.to_dict().items() if k != "source"}
    where = result.location if result.anomalous else ""
    return Finding(
        result.source, Images.name, True, result.anomalous, result.probability, where, inspection.answer(), None, record
    )
