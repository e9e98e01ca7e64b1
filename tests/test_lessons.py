"""Feedback that teaches (issue 32), through the API as the page sends it: a false alarm marked normal teaches
the stored model that made the inspection — its next version serves under the same id, the image is decided
again, the image taught is kept beside the model with its correction — and feedback that cannot teach is kept
all the same, saying why."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from anomalens import Inspector  # noqa: E402
from anomalens.records import RecordStore  # noqa: E402
from anomalens.server import create_app  # noqa: E402
from conftest import texture  # noqa: E402
from test_server import png_bytes  # noqa: E402
from test_teaching import turned  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A service with records and one stored model, "tile", fitted on eight parts that all lie one way."""
    folder = tmp_path_factory.mktemp("lessons")
    Inspector(image_size=128, synthetic_images=16).fit([texture(i) for i in range(8)]).save(folder / "tile.safetensors")
    return folder, TestClient(create_app(folder, records=RecordStore(f"sqlite:///{folder / 'records.db'}")))


def inspected(client, image, references=(), model: str = "tile") -> dict:
    """The image inspected by the stored `model`, or (given `references`) few-shot on them."""
    files = [("files", ("part.png", png_bytes(image), "image/png"))]
    files += [("references", (f"r{i}.png", png_bytes(r), "image/png")) for i, r in enumerate(references)]
    answer = client.post("/v1/inspect", files=files, data={} if references else {"model_id": model})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"][0]


def test_a_false_alarm_marked_normal_teaches_the_model_and_the_verdict_changes(served):
    folder, client = served
    before = inspected(client, turned(100))  # a part turned a quarter: new to references that all lie one way
    assert before["anomalous"]
    kept = client.post(f"/v1/inspections/{before['inspection_id']}/feedback", json={"verdict": "normal"})
    assert kept.status_code == 201, kept.text
    lesson = kept.json()["lesson"]
    assert lesson["not_taught"] is None and lesson["taught"]["model_id"] == "tile"
    assert lesson["taught"]["version"] == 2 and lesson["taught"]["file"] == "tile.v2.safetensors"
    assert lesson["reinspected"]["anomalous"] is False
    assert any("taken whole" in flag for flag in lesson["taught"]["flags"])  # against strong evidence: flagged
    again = inspected(client, turned(100))
    assert not again["anomalous"] and again["probability"] < before["probability"]
    assert [m["id"] for m in client.get("/v1/models").json()["models"]] == ["tile"]  # the id serves version 2
    described = client.get("/v1/models/tile").json()
    assert described["version"] == 2 and described["file"] == "tile.v2.safetensors"
    assert described["lineage"][0].startswith("v2 from v1") and "1 normal, 0 defective" in described["lineage"][0]
    kept_image = folder / "tile.taught" / f"{before['inspection_id']}.png"
    assert kept_image.is_file()
    [logged] = [json.loads(line) for line in (folder / "tile.corrections.jsonl").read_text().splitlines()]
    assert logged["inspection"] == before["inspection_id"] and logged["version"] == 2
    assert logged["image"] == str(kept_image) and logged["verdict"] == "normal"


def test_feedback_that_cannot_teach_is_kept_and_says_why(served):
    _, client = served
    part = inspected(client, texture(300))
    path = f"/v1/inspections/{part['inspection_id']}/feedback"
    noted = client.post(path, json={"note": "seen at the line"}).json()
    assert noted["lesson"]["taught"] is None and "nothing to teach" in noted["lesson"]["not_taught"]
    only_kept = client.post(path, json={"verdict": "normal", "teach": False}).json()
    assert only_kept["lesson"] is None and only_kept["verdict"] == "normal"
    few_shot = inspected(client, turned(101), references=[texture(i) for i in range(3)])
    taught = client.post(f"/v1/inspections/{few_shot['inspection_id']}/feedback", json={"verdict": "normal"}).json()
    assert taught["verdict"] == "normal" and "not a model this service stores" in taught["lesson"]["not_taught"]


def test_a_taught_version_id_is_refused_for_a_new_fit(served):
    _, client = served
    files = [("files", (f"n{i}.png", png_bytes(texture(i)), "image/png")) for i in range(2)]
    refused = client.post("/v1/models", files=files, data={"model_id": "tile.v7"})
    assert refused.status_code == 400 and "taught version" in refused.json()["error"]


def test_teach_from_records_takes_the_feedback_on_image_files_once(served, tmp_path):
    from conftest import save_png
    from test_teaching_cli import run

    folder, _ = served
    model = tmp_path / "line.safetensors"
    model.write_bytes((folder / "tile.safetensors").read_bytes())  # version 1, as fitted
    records = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    part = save_png(tmp_path / "parts" / "p1.png", turned(100))
    for inspection, path, model_id in [
        ("on-file", str(part), "line"),
        ("upload", None, "line"),
        ("other", str(part), "x"),
    ]:
        records.add_inspection({"id": inspection, "verdict": "anomalous", "model_id": model_id, "image_path": path,
                                "result": {"image_size": [128, 128]}})  # fmt: skip
        records.add_feedback(inspection, verdict="normal", source="page")
    records.add_feedback("on-file", note="only a note")
    taught = run("teach", str(model), "--from-records", str(tmp_path / "records.db"))
    assert taught.exit_code == 0, taught.output
    said = " ".join(taught.output.split())  # as wrapped to the terminal's width
    assert "1 of 3 feedback rows on line's inspections to teach (1 with no image file, 1 with no verdict)" in said
    assert (tmp_path / "line.v2.safetensors").is_file()
    again = run("teach", str(tmp_path / "line.v2.safetensors"), "--from-records", str(tmp_path / "records.db"))
    said = " ".join(again.output.split())
    assert again.exit_code != 0 and "1 with taught before" in said and "nothing to teach" in said


def test_a_correction_said_in_the_chat_is_kept_and_taught(served):
    _, client = served
    part = inspected(client, turned(103))
    assert part["anomalous"]
    asked = client.post("/v1/chat", json={"inspection_id": part["inspection_id"], "question": "is it fine?"}).json()
    assert asked["correction"] is None and "Taught" not in asked["answer"]  # a question changes nothing
    said = client.post("/v1/chat", json={"inspection_id": part["inspection_id"], "question": "this one is fine"})
    answer = said.json()
    assert answer["correction"] == {"verdict": "normal", "cell": None, "defect_type": None}
    assert answer["answer"].startswith("Noted") and "Taught: model tile is now version" in answer["answer"]
    shown = client.get(f"/v1/inspections/{part['inspection_id']}").json()
    assert [(f["verdict"], f["source"], f["note"]) for f in shown["feedback"]] == [
        ("normal", "chat", "this one is fine")
    ]
    assert shown["chat"][-1]["answer"] == answer["answer"]  # the answer on record says what became of it


def test_parts_the_model_passed_and_no_one_corrected_teach_its_normal_side(tmp_path):
    """Feedback teaches the model with the parts it passed that no one gave feedback on (the pictures the service
    still holds, the latest MAX_PASSED): scored by the taught version, they place its line."""
    Inspector(image_size=128, synthetic_images=16).fit([texture(i) for i in range(3)]).save(tmp_path / "t.safetensors")
    client = TestClient(create_app(tmp_path, records=RecordStore(f"sqlite:///{tmp_path / 'records.db'}")))
    parts = [inspected(client, texture(700 + i), model="t") for i in range(14)]
    passed = [r for r in parts if not r["anomalous"]]
    assert len(passed) >= 9
    noted = passed[0]["inspection_id"]  # feedback given on it: not a part let stand
    client.post(f"/v1/inspections/{noted}/feedback", json={"note": "looked at it", "teach": False})
    alarm = inspected(client, turned(100), model="t")
    lesson = client.post(f"/v1/inspections/{alarm['inspection_id']}/feedback", json={"verdict": "normal"}).json()
    assert lesson["lesson"]["taught"]["rule"] == "passed-parts", lesson
    assert f"{len(passed) - 1} passed parts scored" in lesson["lesson"]["taught"]["summary"]


def test_teach_from_records_scores_the_parts_passed_and_let_stand(served, tmp_path):
    from conftest import save_png
    from test_teaching_cli import run

    folder, _ = served
    model = tmp_path / "line.safetensors"
    model.write_bytes((folder / "tile.safetensors").read_bytes())
    records = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    for i in range(12):
        path = save_png(tmp_path / "parts" / f"ok{i}.png", texture(720 + i))
        records.add_inspection({"id": f"ok{i}", "verdict": "normal", "model_id": "line.v1" if i % 2 else "line",
                                "image_path": str(path), "created": 1000.0 + i})  # fmt: skip
    records.add_inspection({"id": "other", "verdict": "normal", "model_id": "x", "image_path": str(path)})
    records.add_feedback("ok4", note="a scratch? no")  # looked at: not let stand
    alarm = save_png(tmp_path / "parts" / "alarm.png", turned(100))
    records.add_inspection({"id": "alarm", "verdict": "anomalous", "model_id": "line", "image_path": str(alarm),
                            "result": {"image_size": [128, 128]}})  # fmt: skip
    records.add_feedback("alarm", verdict="normal", source="page")
    latest = records.passed_uncorrected(5, model="line")
    assert [r["id"] for r in latest] == ["ok0", "ok2", "ok6", "ok8", "ok10"]  # oldest first, of the latest
    taught = run("teach", str(model), "--from-records", str(tmp_path / "records.db"))
    assert taught.exit_code == 0, taught.output
    said = " ".join(taught.output.split())
    assert "11 passed parts scored" in said and "passed-parts" in said and "11 passed parts)" in said
