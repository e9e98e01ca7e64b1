"""The records through every interface (issue 31): `series detect --records` and the service's series;
one model identity from `detect`, the service and both engines; a new app on the same records (the service
restarted, in process) finds the inspections, their chat and the fit jobs; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from anomalens.records import RecordStore  # noqa: E402
from conftest import plant_defect, save_png, texture  # noqa: E402


@pytest.mark.e2e
def test_series_inspections_are_recorded_and_listed(url, tmp_path):
    """`series detect --records` keeps each file's inspection (the file, verdict, score, windows; a file it
    could not read, with why), as the service does; `records list --series` and `records show` find them."""
    from typer.testing import CliRunner

    from anomalens.cli import app
    from test_series import periodic, planted

    def csv_file(name: str, values) -> Path:
        path = tmp_path / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("t,pressure\n" + "\n".join(f"{i},{x:.4f}" for i, x in enumerate(values)) + "\n")
        return path

    files = [csv_file("drop.csv", planted("drop")), csv_file("calm.csv", periodic(seed=3))]
    files.append(csv_file("bad'; DROP TABLE series_inspections; --.csv", [1.0]))
    runner = CliRunner()
    result = runner.invoke(app, ["series", "detect", *map(str, files), "--out", str(tmp_path / "o"), "--records", url])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "o" / "results.json").read_text())

    store = RecordStore(url)
    rows = store.list_series()
    assert [r["source"] for r in rows] == [str(f.resolve()) for f in files] and store.count() == 0
    assert [r["verdict"] for r in rows] == ["anomalous", "normal", "error"]
    assert rows[0]["windows"] == written[0]["windows"] and rows[0]["windows"][0]["kind"] == "drop"
    assert rows[0]["score"] == written[0]["peak_score"] and rows[0]["probability"] == written[0]["probability"]
    assert rows[2]["error"] == written[2]["error"] and rows[2]["score"] is None
    assert store.get_series(rows[0]["id"])["result"]["answers"] == written[0]["answers"]
    assert [r["id"] for r in store.list_series(verdict="normal")] == [rows[1]["id"]]
    assert store.list_series(source="DROP TABLE")[0]["id"] == rows[2]["id"] and store.count_series(since=10**400) == 0
    with pytest.raises(ValueError, match="no model"):
        store.list_series(model="weld")

    listed = runner.invoke(app, ["records", "list", "--series", "--records", url, "--verdict", "anomalous", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [rows[0]["id"]]
    table = runner.invoke(app, ["records", "list", "--series", "--records", url])
    assert table.exit_code == 0 and "3 of 3 series inspections" in table.output and "anomalous" in table.output
    shown = runner.invoke(app, ["records", "show", rows[1]["id"], "--records", url])
    assert shown.exit_code == 0 and json.loads(shown.output)["verdict"] == "normal"
    with_model = runner.invoke(app, ["records", "list", "--series", "--records", url, "--model", "weld"])
    assert with_model.exit_code == 2 and "no model" in with_model.output

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalens.server import create_app

    client = TestClient(create_app(tmp_path / "models", records=RecordStore(url)))
    sent = client.post("/v1/series/inspect", files={"file": ("line.csv", files[0].read_bytes(), "text/csv")}).json()
    (kept,) = store.list_series(source="line.csv")
    assert (kept["id"], kept["verdict"], kept["windows"]) == (sent["series_id"], "anomalous", sent["windows"])


@pytest.mark.e2e
def test_the_cli_and_the_service_record_one_model_identity(tmp_path):
    """`detect --records` and the service name a model alike (`predictor.model_identity`): a model file, on
    either engine, by its stem and the hash of its bytes; few-shot references by the hash of their hashes, in
    the order fitted, whether they were files or uploads."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from anomalens.cli import app
    from anomalens.export import export_onnx
    from anomalens.inspector import Inspector
    from anomalens.predictor import load_predictor, model_identity
    from anomalens.records import sha256_file
    from anomalens.server import create_app

    refs, models = tmp_path / "refs", tmp_path / "models"
    references = [save_png(refs / f"{i}.png", texture(i, size=64)) for i in range(3)]
    query = save_png(tmp_path / "in" / "part.png", plant_defect(texture(30, size=64), 0)[0])
    fitted = Inspector(image_size=64).fit(references)
    model = fitted.save(models / "bracket.safetensors")
    onnx = export_onnx(fitted, tmp_path / "bracket.onnx")

    runs = iter(range(10))

    def detected(*route: str) -> tuple[str, str]:
        run = next(runs)
        db, out = tmp_path / f"cli-{run}.db", tmp_path / f"out-{run}"
        result = CliRunner().invoke(app, ["detect", str(query), *route, "--out", str(out), "--records", str(db)])
        assert result.exit_code == 0, result.output
        (row,) = RecordStore(db).list()
        return row["model_id"], row["model_version"]

    records = RecordStore(tmp_path / "service.db")
    client = TestClient(create_app(models, records=records))
    uploads = [("references", (p.name, p.read_bytes(), "image/png")) for p in references]
    for route in ({"data": {"model_id": "bracket"}}, {"files": uploads}):
        files = [("files", ("part.png", query.read_bytes(), "image/png"))] + route.pop("files", [])
        assert client.post("/v1/inspect", files=files, **route).status_code == 200
    by_model, few_shot = [(r["model_id"], r["model_version"]) for r in records.list()]

    assert detected("--model", str(model)) == by_model == ("bracket", sha256_file(model))
    assert detected("--model", str(onnx), "--engine", "onnx") == ("bracket", sha256_file(onnx))
    assert model_identity(load_predictor(onnx)) == ("bracket", sha256_file(onnx))
    assert detected("--refs", str(refs)) == few_shot == model_identity(fitted, references)
    assert few_shot[0] == "few-shot" and len(few_shot[1]) == 64
    assert model_identity(fitted, [p.read_bytes() for p in references]) == few_shot  # bytes or files: alike
    assert model_identity(fitted, references[::-1]) != few_shot and model_identity(fitted) == ("few-shot", None)
    assert model_identity(Inspector.zero_shot("mutual")) == ("zero-shot", None)


@pytest.mark.e2e
def test_inspections_chats_and_fit_jobs_are_there_for_a_new_app_on_the_same_records(url, tmp_path):
    """The service restarted (a new app on the same database): GET /v1/inspections/{id} gives the inspection
    and its chat as they were, the listing pages through them, and the fit job answers as it ended; the job
    was kept in the database, not in files beside the models."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalens.server import create_app
    from test_server import png_bytes

    key, models = "records-key", tmp_path / "models"

    def started() -> TestClient:
        app = create_app(models, api_key=key, records=RecordStore(url))
        return TestClient(app, headers={"X-API-Key": key})

    first = started()
    defective = [png_bytes(plant_defect(texture(40 + i, size=64), i)[0]) for i in range(2)]
    files = [("files", (f"part{i}.png", data, "image/png")) for i, data in enumerate(defective)]
    files += [("references", (f"r{i}.png", png_bytes(texture(i, size=64)), "image/png")) for i in range(3)]
    ids = [r["inspection_id"] for r in first.post("/v1/inspect", files=files).json()["results"]]
    asked = first.post("/v1/chat", json={"inspection_id": ids[1], "question": "Where is it?"}).json()
    normal = [("files", (f"good{i}.png", png_bytes(texture(i, size=64)), "image/png")) for i in range(3)]
    job = first.post("/v1/models", files=normal, data={"model_id": "weld"}).json()
    deadline = time.time() + 120
    while job["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.2)
        job = first.get(f"/v1/jobs/{job['job_id']}").json()
    assert job["status"] == "done", job
    before = [first.get(f"/v1/inspections/{i}").json() for i in ids]
    assert [t["answer"] for t in before[1]["chat"]] == [asked["answer"]]

    again = started()
    assert [again.get(f"/v1/inspections/{i}").json() for i in ids] == before
    assert again.get(f"/v1/jobs/{job['job_id']}").json() == job
    pages = [again.get("/v1/inspections", params={"limit": 1, "offset": o}).json() for o in range(3)]
    assert [[r["id"] for r in p["inspections"]] for p in pages] == [[ids[0]], [ids[1]], []]
    assert {p["total"] for p in pages} == {2}
    more = again.post("/v1/chat", json={"inspection_id": ids[1], "question": "How sure are you?"}).json()
    assert more["turn"] == 2 and len(again.get(f"/v1/inspections/{ids[1]}").json()["chat"]) == 2
    assert list((models / ".jobs").glob("*")) == []  # the job in the database; its images gone with the fit
    assert TestClient(again.app).get("/v1/inspections").status_code == 401  # behind the API key


@pytest.mark.e2e
def test_the_listing_as_csv_and_a_result_where_the_normal_scores_are(tmp_path):
    """GET /v1/inspections.csv: the listing's columns, filtered as the listing is; a result's decision says
    where the normal scores lie (median, predictive spread and degrees of freedom), for the page's plot."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalens.inspector import Inspector
    from anomalens.server import create_app
    from test_server import png_bytes

    models = tmp_path / "models"
    Inspector(image_size=64).fit([texture(i, size=64) for i in range(4)]).save(models / "cloth.safetensors")
    client = TestClient(create_app(models, records=RecordStore(tmp_path / "records.db")))
    images = [
        ("files", (f"{name}.png", png_bytes(texture(seed, size=64)), "image/png"))
        for name, seed in [("a", 9), ("b", 10)]
    ]
    (result, _) = client.post("/v1/inspect", files=images, data={"model_id": "cloth"}).json()["results"]
    decision = result["decision"]
    assert decision["normal_dof"] == 3 and decision["normal_spread"] > 0
    assert decision["normal_median"] < decision["threshold"]

    exported = client.get("/v1/inspections.csv", params={"source": "a.png"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    header, *rows = exported.text.splitlines()
    assert header.startswith("id,created,") and len(rows) == 1 and rows[0].startswith(result["inspection_id"])
    assert len(client.get("/v1/inspections.csv").text.splitlines()) == 3
    assert client.get("/v1/inspections.csv", params={"since": "yesterday"}).status_code == 422
    without = TestClient(create_app(models)).get("/v1/inspections.csv")
    assert without.status_code == 404 and "--records" in without.json()["error"]
