"""The model store: model ids matched whole, and fit jobs that survive a restart of the service."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from anomalens import Inspector
from anomalens.preprocessing import Decoded
from anomalens.service import ModelStore, StoreError
from conftest import texture


def wait(store: ModelStore, job_id: str, seconds: float = 120) -> dict:
    deadline = time.time() + seconds
    while (job := store.job(job_id).to_dict())["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.1)
    return job


@pytest.mark.parametrize("model_id", ["nl\n", "a b", "../x", "", ".hidden", "x" * 65, "ok\nok"])
def test_model_ids_are_matched_whole(tmp_path, model_id):
    with pytest.raises(StoreError, match="invalid model id"):
        ModelStore(tmp_path).path(model_id)


def test_ids_skip_file_names_that_are_not_ids(tmp_path):
    for name in ("good.safetensors", "nl\n.safetensors", "-dash.safetensors"):
        (tmp_path / name).write_bytes(b"")
    assert ModelStore(tmp_path).ids() == ["good"]


def test_fit_jobs_accepted_before_a_restart_are_resumed_or_failed_never_unknown(tmp_path, monkeypatch):
    crashed = ModelStore(tmp_path)
    monkeypatch.setattr(crashed._fitting, "submit", lambda *args: None)  # accepted, then the process dies
    upload = Decoded("upload.png", (texture(2, size=64) * 255).astype(np.uint8), (64, 64))  # as the server gives
    images = [texture(0, size=64), texture(1, size=64), upload]
    resumable = crashed.start_fit("resumed", images, skipped=["x.png: not an image"])
    lost = crashed.start_fit("lost", images, skipped=[])
    shutil.rmtree(tmp_path / ".jobs" / lost.id)  # its images went with the crash

    restarted = ModelStore(tmp_path)
    assert restarted.job(lost.id).to_dict() | {"job_id": None} == {
        "job_id": None,
        "model_id": "lost",
        "status": "failed",
        "done": 0,
        "total": 3,
        "error": "the service restarted during the fit and its images are gone",
        "skipped": [],
    }
    job = wait(restarted, resumable.id)
    assert job["status"] == "done" and job["done"] == 3 and job["skipped"] == ["x.png: not an image"]
    assert restarted.describe("resumed")["n_normal"] == 3
    probe = [texture(9, size=64)]  # resumed from disk, the fit is the one the images would have given at once
    assert restarted.get("resumed").predict(probe)[0].score == Inspector().fit(images).predict(probe)[0].score
    assert not (tmp_path / ".jobs" / resumable.id).exists()  # the images go once the fit has ended

    again = ModelStore(tmp_path)  # finished jobs are still answered after another restart
    assert again.job(resumable.id).status == "done" and again.job(lost.id).status == "failed"
    assert again.ids() == ["resumed"]


def test_exported_models_are_served_beside_fitted_ones(tmp_path):
    from anomalens.export import export_onnx

    normal = [texture(i, size=64) for i in range(3)]
    inspector = Inspector().fit(normal)
    inspector.save(tmp_path / "weld.safetensors")
    export_onnx(inspector, tmp_path / "weld-fast.onnx")
    store = ModelStore(tmp_path)
    assert store.ids() == ["weld", "weld-fast"]
    described = store.describe("weld-fast")
    assert described["ok"] and described["engine"] == "onnx" and described["expert"] == "memory_bank"
    assert described["n_normal"] == 3 and store.describe("weld")["engine"] == "torch"
    probe = [texture(9, size=64)]
    fast, torch_result = store.get("weld-fast").predict(probe)[0], store.get("weld").predict(probe)[0]
    assert fast.anomalous == torch_result.anomalous and fast.score == pytest.approx(torch_result.score, rel=1e-4)
    with pytest.raises(StoreError, match="already exists"):  # a fit may not take an exported model's id
        store.start_fit("weld-fast", normal, skipped=[])

    shutil.copy(tmp_path / "weld-fast.onnx", tmp_path / "weld.onnx")  # one id, two files: which one is meant?
    fresh = ModelStore(tmp_path)
    with pytest.raises(StoreError, match="names two files") as refused:
        fresh.get("weld")
    assert refused.value.status == 409 and not fresh.describe("weld")["ok"]
    fresh.delete("weld")
    assert fresh.ids() == ["weld-fast"]
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    assert "not a readable ONNX model" in fresh.describe("broken")["error"]
    with pytest.raises(StoreError, match="cannot be loaded") as unreadable:
        fresh.get("broken")
    assert unreadable.value.status == 422
