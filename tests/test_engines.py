"""Engines (issue 33): a third engine is one class and one `register_engine` call. Defined here, outside the
package, it loads from its own kind of model file and its results go through the service (findings, answers)
as the torch and ONNX engines' do; an engine named for a file it does not read is refused in words."""

import json
from pathlib import Path

import numpy as np
import pytest

from anomalens import predictor
from anomalens.calibration import Calibration
from anomalens.data import as_float, read_image
from anomalens.language.answers import ANSWERERS
from anomalens.predictor import engine_for, load_predictor, model_identity, register_engine
from anomalens.result import InspectionResult, ModelMetadata, file_version
from anomalens.service import InspectionService
from conftest import texture


class BrightnessEngine:
    """A model file holding one number: an image brighter than it on average is anomalous."""

    def __init__(self, path, limit: float):
        self.path, self.limit = path, limit
        self.calibration = Calibration(limit, 0.1, 1.0, 1.0, 0.0, n_normal=1, method="stated")

    @classmethod
    def load(cls, path, weights=None) -> "BrightnessEngine":
        return cls(path, float(json.loads(path.read_text())["limit"]))

    @property
    def metadata(self) -> ModelMetadata:
        return ModelMetadata(self.path.stem, file_version(self.path), "brightness", "mean brightness")

    def iter_predict(self, images, max_pixels=None, batch_evidence=False, scored=None):
        for image in images:
            try:
                pixels = as_float(read_image(image) if isinstance(image, str | Path) else image)
            except ValueError as error:
                yield InspectionResult.failed(str(image), error)
                continue
            score = float(np.asarray(pixels, dtype=float).mean())
            anomalous = score > self.limit
            height, width = pixels.shape[:2]
            yield InspectionResult(
                source=str(image),
                score=score,
                anomalous=anomalous,
                probability=0.9 if anomalous else 0.1,
                confidence=0.9,
                anomaly_map=np.zeros((height, width)),
                image_size=(width, height),
                image=pixels,
                expert="mean brightness",
                calibration=self.calibration,  # what decided it: the overlay's scale
            )

    def predict(self, images, max_pixels=None, batch_evidence=False):
        return list(self.iter_predict(images, max_pixels, batch_evidence))


@pytest.fixture
def brightness_engine(monkeypatch):
    monkeypatch.setattr(predictor, "ENGINES", dict(predictor.ENGINES))  # registered for this test only
    return register_engine("brightness", (".bright",), BrightnessEngine.load)


def test_a_third_engine_is_one_class_and_one_registration(tmp_path, brightness_engine):
    model = tmp_path / "lamp.bright"
    model.write_text(json.dumps({"limit": 0.5}))
    loaded = load_predictor(model)
    assert isinstance(loaded, BrightnessEngine) and isinstance(loaded, predictor.Predictor)
    assert model_identity(loaded) == ("lamp", file_version(model))
    dark, bright = texture(1) * 0.3, np.clip(texture(2) * 0.3 + 0.6, 0, 1)
    service = InspectionService()
    inspections = list(service.inspect(loaded, [dark, bright]))
    assert [i.result.anomalous for i in inspections] == [False, True]
    assert all(i.ok and i.answer() for i in inspections)  # findings and a grounded answer, as any engine's
    # a verdict with no region marked is answered as one about the whole image, never a crash or "the the"
    found = inspections[1].findings
    assert "at the whole of the image" in inspections[1].answer()
    for intent, answerer in ANSWERERS.items():
        answer = answerer(found, None)
        assert answer and "the the" not in answer, (intent, answer)


def test_an_engine_named_for_a_file_it_does_not_read_is_refused(tmp_path, brightness_engine):
    assert engine_for(tmp_path / "m.onnx").name == "onnx" and engine_for(tmp_path / "m.safetensors").name == "torch"
    assert engine_for(tmp_path / "m.bright").name == "brightness"
    with pytest.raises(ValueError, match="a model for the onnx engine; the brightness engine reads .bright"):
        engine_for(tmp_path / "m.onnx", "brightness")
    with pytest.raises(ValueError, match="unknown engine 'tensorrt'"):
        engine_for(tmp_path / "m.onnx", "tensorrt")


def test_detect_runs_a_model_file_on_the_engine_that_reads_it(tmp_path, brightness_engine):
    from typer.testing import CliRunner

    from anomalens.cli import app
    from conftest import save_png

    model = tmp_path / "lamp.bright"
    model.write_text(json.dumps({"limit": 0.5}))
    images = [save_png(tmp_path / "dark.png", texture(1) * 0.3), save_png(tmp_path / "lit.png", texture(2) * 0.3 + 0.6)]
    runner = CliRunner()
    for engine in ([], ["--engine", "brightness"]):  # by the file's kind, or named
        out = tmp_path / f"out{len(engine)}"
        run = runner.invoke(app, ["detect", *map(str, images), "--model", str(model), *engine, "--out", str(out)])
        assert run.exit_code == 0, run.output
        results = {Path(r["source"]).name: r for r in json.loads((out / "results.json").read_text())}
        assert results["dark.png"]["anomalous"] is False and results["lit.png"]["anomalous"] is True
    wrong = runner.invoke(app, ["detect", str(images[0]), "--model", str(model), "--engine", "onnx"])
    assert wrong.exit_code == 2 and "a model for the brightness engine" in wrong.output
