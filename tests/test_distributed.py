"""Batch inspection on Ray Data (issue 31): a real local Ray cluster (2 CPUs, 127.0.0.1). The Parquet rows equal
what `anomalens detect` says of the same images (the bundled sample, generated ones and a broken file); a
rerun skips what is done; a worker killed mid-run loses nothing and doubles nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

from anomalens.cli import app, sample_root
from anomalens.distributed import inspect_dataset, read_rows, source_paths
from anomalens.inspector import Inspector
from anomalens.predictor import Predictor, load_predictor
from anomalens.records import RecordStore, sha256_file
from conftest import plant_defect, save_png, texture

SAMPLE = sample_root() / "battery_weld"


@pytest.fixture(scope="module")
def cluster(backbone_cache):
    """A local Ray cluster whose workers import AnomaLens from where the tests do."""
    import anomalens

    src = str(Path(anomalens.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": path, "ANOMALENS_CACHE": str(backbone_cache)}},
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    train = sorted((SAMPLE / "train" / "good").glob("*.png"))
    path = tmp_path_factory.mktemp("ray-model") / "weld.safetensors"
    Inspector().fit(train).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """The sample's test images, generated ones (normal and with a planted defect) and a broken file."""
    folder = tmp_path_factory.mktemp("ray-images")
    shutil.copytree(SAMPLE / "test", folder, dirs_exist_ok=True)
    for i in range(2):
        save_png(folder / "generated" / f"plain-{i}.png", texture(300 + i, size=160))
        save_png(folder / "generated" / f"defect-{i}.png", plant_defect(texture(400 + i, size=160), i)[0])
    (folder / "broken.png").write_bytes(b"not a png at all")
    return folder


def test_both_engines_are_predictors_with_the_model_file_as_identity(model):
    predictor = load_predictor(model)
    assert isinstance(predictor, Predictor)
    meta = predictor.metadata
    assert (meta.model_id, meta.model_version, meta.engine) == ("weld", sha256_file(model), "torch")
    assert Inspector().metadata.model_id == "few-shot"


def test_rows_equal_local_detect_and_go_to_the_records(cluster, model, images, tmp_path):
    out, records = tmp_path / "ray", tmp_path / "records.db"
    summary = inspect_dataset(images, model, out, records=str(records), batch_size=3, num_workers=2)
    rows = read_rows(out)
    expected = source_paths(images)
    assert sorted(r["source"] for r in rows) == sorted(map(str, expected)) and summary.inspected == len(expected)

    local_records = tmp_path / "local.db"
    local = CliRunner().invoke(
        app, ["detect", str(images), "--model", str(model), "--out", str(tmp_path / "local")]
        + ["--records", str(local_records)]
    )  # fmt: skip
    assert local.exit_code == 0, local.output
    detected = {Path(r["source"]).resolve(): r for r in json.loads((tmp_path / "local" / "results.json").read_text())}
    assert len(detected) == len(rows)
    for row in rows:
        want = detected[Path(row["source"]).resolve()]
        if not want["ok"]:
            assert row["verdict"] == "error" and "not a readable image" in row["error"], row
            continue
        assert row["verdict"] == ("anomalous" if want["anomalous"] else "normal"), row["source"]
        assert row["score"] == pytest.approx(want["score"], abs=1e-5)
        assert row["probability"] == pytest.approx(want["probability"], abs=1e-5)
        assert row["location"] == want["location"] and len(row["regions"]) == len(want["regions"])
        assert [row["width"], row["height"]] == list(want["image_size"])
        assert (row["model_id"], row["model_version"]) == ("weld", sha256_file(model))
        assert row["decision_mode"] == "per-image" and Path(row["overlay"]).is_file()
    assert summary.errors == 1 and summary.defective == sum(r["verdict"] == "anomalous" for r in rows)

    with RecordStore(records) as store, RecordStore(local_records) as local_store:
        kept, local_kept = store.list(limit=100), local_store.list(limit=100)
    assert len(kept) == len(local_kept) == len(rows)
    identities = {(k["model_id"], k["model_version"]) for k in kept}  # one model, one id and version
    assert identities == {(k["model_id"], k["model_version"]) for k in local_kept} == {("weld", sha256_file(model))}
    assert sorted(k["verdict"] for k in kept) == sorted(r["verdict"] for r in rows)


def test_a_rerun_skips_what_is_done(cluster, model, images, tmp_path):
    out = tmp_path / "ray"
    first = sorted(source_paths(images))[:4]
    listing = tmp_path / "first.txt"
    listing.write_text("# four of them\n" + "\n".join(map(str, first)) + "\n")
    assert inspect_dataset(listing, model, out, batch_size=2, num_workers=1).inspected == 4
    again = inspect_dataset(str(images / "**" / "*.png"), model, out, batch_size=4, num_workers=2)
    total = len(source_paths(images))
    assert (again.skipped, again.inspected, again.total) == (4, total - 4, total)
    sources = [r["source"] for r in read_rows(out, ["source"])]
    assert len(sources) == len(set(sources)) == total
    assert inspect_dataset(images, model, out).inspected == 0  # all done: Ray is not even asked


def test_a_killed_worker_loses_nothing(cluster, model, tmp_path):
    folder = tmp_path / "many"
    for i in range(40):
        save_png(folder / f"{i:03d}.png", texture(500 + i, size=96))
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_the_worker(done: int, todo: int) -> None:
        if not killed:  # the first batch is in: kill the actor that made it (its next batches are in flight)
            worker = read_rows(out, ["worker"])[0]["worker"]
            killed.append(int(worker.rsplit(":", 1)[1]))
            os.kill(killed[0], signal.SIGKILL)

    summary = inspect_dataset(folder, model, out, batch_size=2, num_workers=1, progress=kill_the_worker)
    rows = read_rows(out, ["source", "verdict", "worker"])
    sources = [r["source"] for r in rows]
    assert len(sources) == len(set(sources)) == 40 and summary.inspected == 40
    assert all(r["verdict"] != "error" for r in rows)
    workers = {int(r["worker"].rsplit(":", 1)[1]) for r in rows}
    assert killed[0] in workers and len(workers) >= 2  # the killed actor's batches were redone by its successor


def test_a_driver_dead_between_records_and_parquet_leaves_no_duplicate_record(cluster, model, tmp_path, monkeypatch):
    import anomalens.distributed as distributed

    folder, out, records = tmp_path / "in", tmp_path / "ray", tmp_path / "records.db"
    for i in range(6):
        save_png(folder / f"{i}.png", texture(600 + i, size=96))

    def die(out: Path, table) -> Path:  # the first batch is in the records; its Parquet file never comes
        raise RuntimeError("the driver died")

    with monkeypatch.context() as patched:
        patched.setattr(distributed, "_write_part", die)
        with pytest.raises(RuntimeError, match="driver died"):
            inspect_dataset(folder, model, out, records=str(records), batch_size=2, num_workers=1)
    with RecordStore(records) as store:
        assert store.count() == 2 and read_rows(out) == []
    summary = inspect_dataset(folder, model, out, records=str(records), batch_size=2, num_workers=1)
    assert summary.inspected == 6  # the rerun inspects the recorded batch again: it is not in the output
    with RecordStore(records) as store:
        kept = store.list(limit=100)
    assert sorted(k["image_path"] for k in kept) == sorted(str(p) for p in source_paths(folder))
    assert len({k["run"] for k in kept}) == 1 and len(read_rows(out)) == 6


def test_ray_without_a_model_says_what_it_needs(images):
    result = CliRunner().invoke(app, ["detect", str(images), "--ray"])
    assert result.exit_code != 0 and "--model" in result.output


def test_ray_without_the_extra_says_how_to_install_it(images, model, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    result = CliRunner().invoke(app, ["detect", str(images), "--model", str(model), "--ray"])
    assert result.exit_code != 0 and "pip install 'anomalens[scale]'" in result.output


def test_an_exported_model_runs_on_ray_as_it_does_locally(cluster, model, images, tmp_path):
    from anomalens.deploy import OnnxInspector
    from anomalens.export import export_onnx

    onnx = export_onnx(Inspector.load(model), tmp_path / "weld.onnx")
    paths = [p for p in source_paths(images) if Path(p).name != "broken.png"][:5]
    inspect_dataset(paths, onnx, tmp_path / "ray", batch_size=3, num_workers=1)
    rows = {r["source"]: r for r in read_rows(tmp_path / "ray")}
    local = OnnxInspector(onnx)
    for result in local.predict([str(p) for p in paths]):
        row = rows[result.source]
        assert row["verdict"] == ("anomalous" if result.anomalous else "normal")
        assert row["score"] == pytest.approx(result.score, abs=1e-5)
        assert (row["engine"], row["model_id"], row["model_version"]) == ("onnx", "weld", sha256_file(onnx))


def test_uris_name_images_on_any_file_system_pyarrow_reaches(images, tmp_path):
    local = source_paths(images)
    assert source_paths(f"file://{images}") == [f"file://{p}" for p in local]  # a folder, recursively
    assert source_paths(f"file://{local[0]}") == [f"file://{local[0]}"]
    listing = tmp_path / "mixed.txt"
    listing.write_text(f"file://{local[0]}\n{Path(local[1]).relative_to(images)}\n")
    shutil.copytree(images, tmp_path, dirs_exist_ok=True)
    assert source_paths(listing) == [f"file://{local[0]}", str(tmp_path / Path(local[1]).relative_to(images))]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        source_paths(f"file://{tmp_path}/nowhere")
    with pytest.raises(ValueError, match="cannot be opened through pyarrow"):
        source_paths("nosuch://bucket/images")


def test_remote_images_are_fetched_hashed_and_inspected_by_the_workers(cluster, model, tmp_path):
    folder = tmp_path / "remote"
    parts = [save_png(folder / f"part-{i}.png", texture(500 + i, size=160)) for i in range(3)]
    listing = tmp_path / "remote.txt"
    listing.write_text("\n".join(f"file://{p}" for p in parts) + f"\nfile://{folder}/gone.png\n")
    inspect_dataset(listing, model, tmp_path / "ray", records=str(tmp_path / "r.db"), batch_size=2, num_workers=2)
    rows = {r["source"]: r for r in read_rows(tmp_path / "ray")}
    assert set(rows) == {f"file://{p}" for p in parts} | {f"file://{folder}/gone.png"}
    gone = rows.pop(f"file://{folder}/gone.png")
    assert gone["verdict"] == "error" and gone["error"].startswith(f"file://{folder}/gone.png: cannot be read")
    for result in Inspector.load(model).predict(parts):
        row = rows[f"file://{result.source}"]
        assert row["score"] == pytest.approx(result.score, abs=1e-5) and row["image_sha256"] == sha256_file(
            result.source
        )
    with RecordStore(tmp_path / "r.db") as store:
        kept = {k["image_path"]: k["image_sha256"] for k in store.list(limit=10)}
    assert kept == {source: row["image_sha256"] for source, row in rows.items()} | {gone["source"]: None}
