"""`anomalens export`: the ONNX graph gives the model's own scores and maps, and carries its calibration."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from typer.testing import CliRunner

from anomalens import Inspector
from anomalens.cli import app
from anomalens.pixels import to_batch
from conftest import plant_defect, texture

pytestmark = pytest.mark.e2e  # through the CLI
runner = CliRunner()


@pytest.mark.parametrize("expert", ["memory_bank", "patchcore"])
def test_export_gives_the_models_scores_maps_and_calibration(tmp_path, expert):
    inspector = Inspector(expert=expert, image_size=128).fit([texture(i) for i in range(4)])
    model = inspector.save(tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(model), "-o", str(out)])
    assert result.exit_code == 0, result.output
    session = onnxruntime.InferenceSession(str(out))
    for image in (plant_defect(texture(300), 0)[0], texture(301)):
        expected = inspector.predict(image)[0]
        anomaly_map, score = session.run(None, {"pixels": to_batch([image], 128).numpy()})
        assert score[0] == pytest.approx(expected.score, rel=1e-4)
        assert abs(anomaly_map[0].max() - expected.anomaly_map.max()) <= 1e-4 * np.ptp(expected.anomaly_map) + 1e-5
    header = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["anomalens"])
    assert header["calibration"] == inspector.calibration.to_dict() and header["expert"] == expert
    again = runner.invoke(app, ["export", str(model), "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_a_zero_shot_batch_expert_is_refused_with_its_reason(tmp_path):
    from anomalens.export import export_onnx

    with pytest.raises((ValueError, NotImplementedError)):
        export_onnx(Inspector.zero_shot("mutual", image_size=128), tmp_path / "b.onnx")
