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


@pytest.fixture(params=["files", "records"])
def journal(request, tmp_path):
    """Where fit jobs are kept: a store's files (the default), or the records database (`serve --records`)."""
    if request.param == "files":
        return lambda: None
    pytest.importorskip("sqlalchemy")
    from anomalens.records import RecordStore

    return lambda: RecordStore(tmp_path / "records.db").fit_jobs(tmp_path)


def test_fit_jobs_accepted_before_a_restart_are_resumed_or_failed_never_unknown(tmp_path, monkeypatch, journal):
    crashed = ModelStore(tmp_path, jobs=journal())
    monkeypatch.setattr(crashed._fitting, "submit", lambda *args: None)  # accepted, then the process dies
    upload = Decoded("upload.png", (texture(2, size=64) * 255).astype(np.uint8), (64, 64))  # as the server gives
    images = [texture(0, size=64), texture(1, size=64), upload]
    resumable = crashed.start_fit("resumed", images, skipped=["x.png: not an image"])
    lost = crashed.start_fit("lost", images, skipped=[])
    shutil.rmtree(tmp_path / ".jobs" / lost.id)  # its images went with the crash

    restarted = ModelStore(tmp_path, jobs=journal())
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
    at_once = Inspector().fit(images).predict(probe)[0].score  # (a fit on the store's thread: float rounding)
    assert restarted.get("resumed").predict(probe)[0].score == pytest.approx(at_once, rel=1e-5)
    assert not (tmp_path / ".jobs" / resumable.id).exists()  # the images go once the fit has ended

    again = ModelStore(tmp_path, jobs=journal())  # finished jobs are still answered after another restart
    assert again.job(resumable.id).status == "done" and again.job(lost.id).status == "failed"
    assert again.ids() == ["resumed"]
    kept_as_files = sorted(p.name for p in (tmp_path / ".jobs").glob("*.json"))
    assert kept_as_files == ([] if journal() else sorted(f"{j.id}.json" for j in (lost, resumable)))


def test_fit_jobs_in_the_records_are_each_service_s_own(tmp_path):
    pytest.importorskip("sqlalchemy")
    from anomalens.records import RecordStore

    records = RecordStore(tmp_path / "records.db", station="line-1")
    mine, other_folder = records.fit_jobs(tmp_path / "models"), records.fit_jobs(tmp_path / "other")
    other_station = RecordStore(tmp_path / "records.db", station="line-2").fit_jobs(tmp_path / "models")
    job = {"id": "j1", "model_id": "weld", "total": 3, "done": 0, "status": "queued", "error": None, "skipped": []}
    mine.save(job | {"started": 10.0})
    mine.save(job | {"status": "failed", "error": "'; DROP TABLE fit_jobs; --\x00", "started": 99.0})
    assert mine.load() == [job | {"status": "failed", "error": "'; DROP TABLE fit_jobs; --\ufffd", "started": 10.0}]
    assert other_folder.load() == [] and other_station.load() == []


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
    # the chosen scale and the calibration in words, the same from either engine's file
    assert described["calibration"] == store.describe("weld")["calibration"] == inspector.calibration.words()
    assert described["scale"] == f"{inspector.config.scale} at {inspector.config.image_size} px"
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
