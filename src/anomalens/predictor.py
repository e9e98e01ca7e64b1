"""One predictor interface for every engine (issue 31): what the CLI, the service and the Ray batch path ask of a
model, whatever runs it. Load it from a file, `iter_predict` images into `InspectionResult`s, and say what it
is (`metadata`: the model's id and version, which travel with every result). `Inspector` (torch) and
`OnnxInspector` (an exported model on onnxruntime) implement it; a third engine is one more class and one
`register_engine` call naming the model files it reads. (Modelled on anomalib's `Inferencer`: load, predict,
metadata.)"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .deploy import OnnxInspector
from .inspector import Inspector
from .preprocessing import ImageInput
from .result import InspectionResult, ModelMetadata, file_version

__all__ = [
    "ENGINES",
    "Engine",
    "ModelMetadata",
    "Predictor",
    "engine_for",
    "file_version",
    "load_predictor",
    "model_identity",
    "register_engine",
]


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


@dataclass(frozen=True)
class Engine:
    """What runs a model file: its name (`detect --engine NAME`), the model files it reads (by suffix) and how
    it loads one (`load(path, weights)`: `weights`, a backbone's weights file, for engines that take one)."""

    name: str
    suffixes: tuple[str, ...]
    load: Callable[[Path, Path | None], Predictor]


ENGINES: dict[str, Engine] = {}
DEFAULT_ENGINE = "torch"  # a model file no engine claims by its suffix is tried as a torch model (its error says why)


def register_engine(name: str, suffixes: tuple[str, ...], load: Callable[[Path, Path | None], Predictor]) -> Engine:
    ENGINES[name] = Engine(name, tuple(s.lower() for s in suffixes), load)
    return ENGINES[name]


register_engine("torch", (".safetensors",), lambda path, weights: Inspector.load(path, weights=weights))
register_engine("onnx", (".onnx",), lambda path, weights: OnnxInspector.load(path))


def engine_for(path: str | Path, name: str | None = None) -> Engine:
    """The engine named, once it reads this kind of model file; else the one that claims the file's suffix."""
    suffix = Path(path).suffix.lower()
    if name is not None:
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
        engine = ENGINES[name]
        if suffix not in engine.suffixes:
            owner = next((e.name for e in ENGINES.values() if suffix in e.suffixes), None)
            reads = f"a model for the {owner} engine" if owner else f"not a {', '.join(engine.suffixes)} model file"
            raise ValueError(f"{path}: {reads}; the {name} engine reads {', '.join(engine.suffixes)} files")
        return engine
    return next((e for e in ENGINES.values() if suffix in e.suffixes), ENGINES[DEFAULT_ENGINE])


def load_predictor(path: str | Path, weights: str | Path | None = None, engine: str | None = None) -> Predictor:
    """The predictor for a model file, on the engine named or the one that reads its kind (`.onnx`: onnxruntime,
    `.safetensors` and anything unclaimed: torch); `weights`: a backbone's weights file. Raises what the engine
    raises for a file it cannot load."""
    return engine_for(path, engine).load(Path(path), Path(weights) if weights is not None else None)


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
