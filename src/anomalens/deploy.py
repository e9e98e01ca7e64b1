"""Inspection with an exported model (`anomalens export`) and no torch: numpy, Pillow and onnxruntime only.
Images are decoded and resized exactly as on the torch route (`preprocessing`), the ONNX graph gives each
one's smoothed map and score, and the calibration in the model's metadata turns them into the same
`InspectionResult`s as `Inspector.predict`: verdict, probability, the map at the image's own size, regions.
A model that lays images out in tiles (aspect kept, or a stated scale) runs the graph on each tile and
stitches the tiles' maps as the torch route does (`preprocessing.Layout`, `stitching.ImageMaps`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .calibration import Calibration
from .data import ImageError
from .preprocessing import SQUASH, ImageInput, Layout, as_images, checked_scale, decode_ahead
from .result import InspectionResult, ModelMetadata, Scored, decided, file_version
from .stitching import ImageMaps

METADATA_KEY = "anomalens"  # what `export_onnx` writes: version, config, expert, calibration, input size
DECODE_AHEAD = 2  # images decoded on the worker thread while the graph runs


class OnnxModelError(ValueError):
    """An ONNX file that cannot be run as an AnomaLens model, and why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")


class OnnxInspector:
    """An exported model that predicts as a fitted `Inspector` does (`predict`, `iter_predict`; its results
    carry no defect descriptor, which would need the backbone's features)."""

    def __init__(self, path: str | Path):
        self.model_file = Path(path)
        self._version: str | None = None
        try:
            import onnxruntime
        except ImportError:
            raise OnnxModelError(path, "running an ONNX model needs onnxruntime: pip install onnxruntime") from None
        if not Path(path).is_file():
            raise OnnxModelError(path, "no such file")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime's errors share no type but Exception
            raise OnnxModelError(path, f"not a readable ONNX model ({error})") from None
        header = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if header is None:
            raise OnnxModelError(path, f"an ONNX model, but not an AnomaLens one (no {METADATA_KEY!r} metadata)")
        try:
            header = json.loads(header)
            self.calibration = Calibration(**header["calibration"])
            self.expert_name: str = header["expert"]
            self.input_size = int(header["input_size"])
            self.resize_mode: str = header.get("resize_mode", "bilinear")  # files exported before it was recorded
            self.config: dict = header["config"]
            self.layout = Layout(self.input_size, checked_scale(header.get("scale", SQUASH)))  # older: squashed
        except (ValueError, KeyError, TypeError) as error:
            raise OnnxModelError(path, f"its {METADATA_KEY!r} metadata is unusable ({error!r})") from None

    @classmethod
    def load(cls, path: str | Path) -> OnnxInspector:
        """The exported model in `path` (`predictor.Predictor`); raises OnnxModelError if it cannot be run."""
        return cls(path)

    @property
    def metadata(self) -> ModelMetadata:
        """The model file's stem and the hash of its bytes (`predictor.Predictor`)."""
        if self._version is None:
            self._version = file_version(self.model_file)
        return ModelMetadata(self.model_file.stem, self._version, "onnx", self.expert_name)

    def predict(
        self, images: ImageInput | Iterable[ImageInput], max_pixels: int | None = None, batch_evidence: bool = False
    ) -> list[InspectionResult]:
        return list(self.iter_predict(images, max_pixels, batch_evidence))

    def iter_predict(
        self,
        images: ImageInput | Iterable[ImageInput],
        max_pixels: int | None = None,
        batch_evidence: bool = False,
        scored: Callable[[], None] | None = None,
    ) -> Iterator[InspectionResult]:
        """Results in input order, one input (the image, or each of its tiles) at a time through the graph
        (exported for a batch of one); an unreadable image gives a result with `error` set, not an exception.
        `batch_evidence`, `scored`: as `Inspector.iter_predict`."""
        return decided(self._scored(images, max_pixels), batch_evidence, scored)

    def _scored(
        self, images: ImageInput | Iterable[ImageInput], max_pixels: int | None
    ) -> Iterator[Scored | InspectionResult]:
        for source, decoded in decode_ahead(as_images(images), DECODE_AHEAD, max_pixels, self.layout.max_side):
            if isinstance(decoded, ImageError):
                yield InspectionResult(source=source, error=str(decoded))
                continue
            plan = self.layout.plan(decoded)
            image = ImageMaps([plan])  # stitched, and scored as its highest tile, as in torch
            for index, pixels in enumerate(plan.tiles(decoded.image, self.resize_mode)):
                tile_map, tile_score = self.session.run(None, {"pixels": pixels[None]})
                image.add(0, index, tile_map[0], float(tile_score[0]))
            yield Scored(decoded, float(image.scores[0]), image.maps()[0], self.calibration, self.expert_name)
