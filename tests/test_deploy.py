"""`anomalens.deploy`: an exported model run by onnxruntime, with no torch, gives the torch route's results
(verdicts, scores, maps, regions), and `detect --engine onnx` writes what `detect` writes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import anomalens.data.images
import anomalens.preprocessing
from anomalens import Inspector
from anomalens.cli import app, sample_root
from anomalens.data import load_split
from anomalens.deploy import OnnxInspector, OnnxModelError
from anomalens.export import export_onnx
from conftest import plant_defect, texture

runner = CliRunner()
WELDS = sample_root() / "battery_weld"
TRAIN = [s.path for s in load_split(sample_root(), "battery_weld", "train")]
TEST = [s.path for s in load_split(sample_root(), "battery_weld", "test")]
GENERATED = [plant_defect(texture(300, 200), 0)[0], texture(301, 200), (texture(302, 300)[:180] * 255).astype(np.uint8)]
UNAVAILABLE = ("torch", "scipy", "sklearn", "tifffile", "faiss")  # what the runtime must do without
NO_TORCH = f"""
import json, sys
for name in {UNAVAILABLE!r}:
    sys.modules[name] = None  # importing it now fails
from anomalens.deploy import OnnxInspector
results = OnnxInspector(sys.argv[1]).predict(sys.argv[2:])
assert not [m for m in sys.modules if m.split(".")[0] in {UNAVAILABLE!r} and sys.modules[m] is not None]
print(json.dumps([r.to_dict() for r in results]))
"""


@pytest.fixture(scope="module", params=["memory_bank", "patchcore"])
def model(request, tmp_path_factory):
    """(inspector, its model file, its ONNX export), fitted on the bundled welds (4 for the memory bank)."""
    folder = tmp_path_factory.mktemp(request.param)
    inspector = Inspector(expert=request.param).fit(TRAIN[:4] if request.param == "memory_bank" else TRAIN)
    return inspector, inspector.save(folder / "weld.safetensors"), export_onnx(inspector, folder / "weld.onnx")


def assert_same_results(onnx_results: list[dict], torch_results: list[dict]) -> None:
    """Verdicts, locations and region boxes identical; scores and peaks within 1e-4 (relative)."""
    assert len(onnx_results) == len(torch_results)
    for ours, theirs in zip(onnx_results, torch_results):
        assert (ours["anomalous"], ours["location"]) == (theirs["anomalous"], theirs["location"])
        assert ours["score"] == pytest.approx(theirs["score"], rel=1e-4)
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-4)
        assert [(list(r["box"]), r["area_fraction"]) for r in ours["regions"]] == [
            (list(r["box"]), r["area_fraction"]) for r in theirs["regions"]
        ]  # boxes are lists once through JSON
        assert [r["peak"] for r in ours["regions"]] == pytest.approx([r["peak"] for r in theirs["regions"]], rel=1e-4)


def test_the_onnx_runtime_gives_the_torch_routes_results(model):
    inspector, _, exported = model
    images = TEST + GENERATED
    torch_results, onnx_results = inspector.predict(images), OnnxInspector(exported).predict(images)
    assert_same_results([r.to_dict() for r in onnx_results], [r.to_dict() for r in torch_results])
    assert any(r.regions for r in torch_results) and not all(r.anomalous for r in torch_results)
    for ours, theirs in zip(onnx_results, torch_results):
        assert ours.anomaly_map.shape == theirs.anomaly_map.shape == ours.image.shape[:2]
        assert np.abs(ours.anomaly_map - theirs.anomaly_map).max() <= 1e-4 * np.ptp(theirs.anomaly_map)
        assert ours.calibration == theirs.calibration and ours.expert == theirs.expert


@pytest.mark.parametrize("scale", ["aspect", 1.0])
def test_tiled_models_export_and_the_runtime_stitches_as_the_torch_route(tmp_path, scale):
    normal = [texture(i, 160)[:, :112] for i in range(3)]  # not square: aspect-kept inputs are tiles too
    inspector = Inspector(scale=scale, image_size=64).fit(normal)
    exported = OnnxInspector(export_onnx(inspector, tmp_path / "tiled.onnx"))
    images = [plant_defect(texture(400, 160), 0)[0][:, :131], texture(401, 160)[:150, :97]]  # sides not tile-sized
    assert len(exported.layout.plan(anomalens.preprocessing.decode(images[0], "x")).origins) > 1
    torch_results, onnx_results = inspector.predict(images), exported.predict(images)
    assert_same_results([r.to_dict() for r in onnx_results], [r.to_dict() for r in torch_results])
    for ours, theirs in zip(onnx_results, torch_results):
        assert ours.anomaly_map.shape == theirs.anomaly_map.shape == ours.image.shape[:2]
        assert np.abs(ours.anomaly_map - theirs.anomaly_map).max() <= 1e-4 * np.ptp(theirs.anomaly_map)


@pytest.mark.e2e  # through a process
def test_the_runtime_runs_where_torch_scipy_and_sklearn_cannot_be_imported(model):
    inspector, _, exported = model
    paths = [str(path) for path in TEST[:3]]
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(exported), *paths], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert_same_results(json.loads(run.stdout), [r.to_dict() for r in inspector.predict(paths)])


def test_files_that_are_not_anomalens_onnx_models_are_refused_with_the_reason(tmp_path, monkeypatch):
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(OnnxModelError, match=r"notes\.onnx: not a readable ONNX model"):
        OnnxInspector(text)
    with pytest.raises(OnnxModelError, match=r"gone\.onnx: no such file"):
        OnnxInspector(tmp_path / "gone.onnx")
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [value("x", onnx.TensorProto.FLOAT, [1])],
        [value("y", onnx.TensorProto.FLOAT, [1])],
    )
    plain = tmp_path / "identity.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8), plain)
    with pytest.raises(OnnxModelError, match=r"identity\.onnx: an ONNX model, but not an AnomaLens one"):
        OnnxInspector(plain)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(OnnxModelError, match="needs onnxruntime: pip install onnxruntime"):
        OnnxInspector(plain)


@pytest.mark.e2e  # through the CLI
@pytest.mark.parametrize("model", ["patchcore"], indirect=True)
def test_detect_with_the_onnx_engine_writes_what_the_torch_engine_writes_decoding_each_image_once(
    model, tmp_path, monkeypatch
):
    _, model_file, exported = model
    decodes: list = []  # the files decoded
    decode = anomalens.data.images._read_with_pil
    monkeypatch.setattr(
        anomalens.data.images, "_read_with_pil", lambda path, *a, **k: decodes.append(path) or decode(path, *a, **k)
    )
    outputs = {}
    for engine, model_path in (("torch", model_file), ("onnx", exported)):
        decodes.clear()
        out = tmp_path / engine
        args = ["detect", str(WELDS / "test"), "--model", str(model_path), "--engine", engine, "--out", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert sorted(decodes) == sorted(TEST)  # the overlay is drawn from the image decoded for the model
        outputs[engine] = json.loads((out / "results.json").read_text())
        assert len(list(out.glob("*_overlay.png"))) == len(TEST)
    assert_same_results(outputs["onnx"], outputs["torch"])
    wrong = runner.invoke(app, ["detect", str(WELDS / "test"), "--model", str(model_file), "--engine", "onnx"])
    assert wrong.exit_code == 2 and "weld.safetensors" in wrong.output and "anomalens export" in wrong.output
