"""One predictor interface for every engine (issue 31): what the CLI, the service and the Ray batch path ask of a
model, whatever runs it. Load it from a file, `iter_predict` images into `InspectionResult`s, and say what it
is (`metadata`: the model's id and version, which travel with every result). `Inspector` (torch) and
`OnnxInspector` (an exported model on onnxruntime) implement it; a third engine is one more class.
(Modelled on anomalib's `Inferencer`: load, predict, metadata.)"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from .deploy import OnnxInspector
from .inspector import Inspector
from .preprocessing import ImageInput
from .result import InspectionResult, ModelMetadata, file_version

__all__ = ["ModelMetadata", "Predictor", "file_version", "load_predictor", "model_identity"]


@runtime_checkable
class Predictor(Protocol):
    """A model that inspects images. `iter_predict` gives results in input order, an unreadable image a result
    with `error` set (never an exception); `batch_evidence` and `scored` as `Inspector.iter_predict`."""

    @property
    def metadata(self) -> ModelMetadata: ...

    def iter_predict(
        self,
        images: ImageInput | Iterable[ImageInput],
        max_pixels: int | None = None,
        batch_evidence: bool = False,
        scored: Callable[[], None] | None = None,
    ) -> Iterator[InspectionResult]: ...

    def predict(
        self, images: ImageInput | Iterable[ImageInput], max_pixels: int | None = None, batch_evidence: bool = False
    ) -> list[InspectionResult]: ...


def load_predictor(path: str | Path, weights: str | Path | None = None) -> Predictor:
    """The predictor for a model file: an exported `.onnx` model on onnxruntime, any other a torch `Inspector`
    (`weights`: its backbone's weights file). Raises what the engine raises for a file it cannot load."""
    if Path(path).suffix.lower() == ".onnx":
        return OnnxInspector.load(path)
    return Inspector.load(path, weights=weights)


def model_identity(predictor: Predictor, references: Iterable[bytes | str | Path] = ()) -> tuple[str, str | None]:
    """The (model id, version) recorded with every result, one scheme for every engine and route, so that one
    model has one id and version whether the CLI, the service or a Ray worker ran it. A model file, on either
    engine: its stem and the SHA-256 of its bytes (`metadata`). Few-shot (fitted in memory): "few-shot" and
    the SHA-256 over the SHA-256 of each reference image, in the order fitted (`references`: the files, or the
    uploaded bytes; the same images, the same version). Zero-shot: "zero-shot", no version (no normal images)."""
    meta = predictor.metadata
    given = list(references)
    if meta.model_version is not None or meta.model_id != "few-shot" or not given:
        return meta.model_id, meta.model_version
    digest = hashlib.sha256()
    for reference in given:
        image = hashlib.sha256(reference).hexdigest() if isinstance(reference, bytes) else file_version(reference)
        digest.update(bytes.fromhex(image))
    return meta.model_id, digest.hexdigest()
