"""Operators' feedback on recorded inspections (for issue 32's "Teach it"), on a real SQLite file and a real
PostgreSQL server: every value checked (hostile ones refused or kept as values), feedback listed by model,
time, verdict and source; `POST /v1/inspections/{id}/feedback` behind the API key, 404 and 422 named."""

from __future__ import annotations

from datetime import UTC

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from anomalens.records import RecordStore, UnknownInspection  # noqa: E402
from conftest import plant_defect, texture  # noqa: E402
from test_records import HOSTILE, sample_records  # noqa: E402

BAD_BOXES = [
    [1, 2, 3],
    [1, 2, 3, 4, 5],
    ["1", 2, 3, 4],
    [1.5, 2, 3, 4],
    [True, 0, 1, 1],
    [5, 5, 1, 1],
    [3, 3, 3, 4],
    [-1, 0, 2, 2],
    [0, 0, 257, 10],  # wider than the image
    [0, 0, 10**30, 10**30],
    "0,0,1,1",
    {"x0": 0, "y0": 0, "x1": 1, "y1": 1},
    [None, 0, 1, 1],
]


def test_feedback_is_checked_kept_and_listed(url):
    store = RecordStore(url)
    store.add_inspections(sample_records(6))
    store.add_inspection(
        {"id": "sized", "verdict": "anomalous", "model_id": "weld", "result": {"image_size": [256, 128]}}
    )
    given = store.add_feedback(
        "sized",
        verdict="defective",
        defect_type="scratch",
        box=[0, 0, 256, 128],
        note=" seen at the line ",
        author="ana",
    )
    assert given | {"id": None, "created": None} == {
        "id": None, "created": None, "inspection_id": "sized", "verdict": "defective", "defect_type": "scratch",
        "box": [0, 0, 256, 128], "mask_path": None, "note": "seen at the line", "source": "api", "author": "ana",
    }  # fmt: skip
    assert isinstance(given["id"], int) and given["created"].tzinfo is UTC
    hostile = store.add_feedback("insp-0001", note="'; DROP TABLE feedback; --\x00 ünïcödé 🚀 \ud800", source="page")
    assert hostile["note"] == "'; DROP TABLE feedback; --\ufffd ünïcödé 🚀 \ufffd"
    masked = store.add_feedback("insp-0002", verdict="defective", mask_path="/masks/p2.png", source="cli")
    assert store.feedback_for("sized") == [given] and store.get("sized")["feedback"] == [given]
    assert store.get("insp-0003")["feedback"] == [] and store.feedback_for("\x00") == []

    for box in BAD_BOXES:
        with pytest.raises(ValueError, match="box"):
            store.add_feedback("sized", verdict="defective", box=box)
    for bad, message in [
        ({"verdict": "anomalous"}, "verdict is normal or defective"),
        ({"verdict": "defective", "source": "'; DROP TABLE x"}, "source is one of chat, page, api, cli"),
        ({}, "says nothing"),
        ({"note": "   "}, "says nothing"),
        ({"verdict": "normal", "box": [0, 0, 1, 1]}, "not with the verdict normal"),
        ({"verdict": "normal", "defect_type": "scratch"}, "not with the verdict normal"),
        ({"mask_path": "/masks/a\x00.png"}, "NUL"),
        ({"note": "x" * 10_001}, "note: 10001 characters"),
        ({"defect_type": "d" * 201}, "defect_type: 201 characters, at most 200"),
        ({"note": 5}, "note is text"),
    ]:
        with pytest.raises(ValueError, match=message):
            store.add_feedback("sized", **bad)
    for unknown in ("nope", "'; DROP TABLE feedback; --", "\x00", "ünïcödé"):
        with pytest.raises(UnknownInspection):
            store.add_feedback(unknown, verdict="normal")

    assert store.list_feedback() == [
        {**f, **{k: inspected[k] for k in ("image_path", "image_sha256", "model_id", "model_version")}}
        | {"inspection_verdict": inspected["verdict"]}
        for f, inspected in (
            (given, store.get("sized")),
            (hostile, store.get("insp-0001")),
            (masked, store.get("insp-0002")),
        )
    ]
    assert [f["id"] for f in store.list_feedback(model="weld")] == [given["id"], hostile["id"]]
    assert [f["id"] for f in store.list_feedback(model="2" * 64)] == [masked["id"]]  # by version
    assert [f["id"] for f in store.list_feedback(verdict="defective", source="cli")] == [masked["id"]]
    assert [f["id"] for f in store.list_feedback(limit=1, offset=1)] == [hostile["id"]]
    assert store.list_feedback(since=given["created"].timestamp() + 3600) == []
    for value in HOSTILE:
        assert store.list_feedback(model=value) == store.list_feedback(source=value) == [], value
    with pytest.raises(ValueError, match="not a time"):
        store.list_feedback(until="'; DROP TABLE feedback")
    with pytest.raises(ValueError, match="limit"):
        store.list_feedback(limit=10**30)


@pytest.mark.e2e
def test_feedback_through_the_api(url, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalens.server import create_app
    from test_server import png_bytes

    key = "feedback-key"
    client = TestClient(create_app(tmp_path / "m", api_key=key, records=RecordStore(url)), headers={"X-API-Key": key})
    files = [("files", ("part.png", png_bytes(plant_defect(texture(40, size=96), 1)[0]), "image/png"))]
    files += [("references", (f"r{i}.png", png_bytes(texture(i, size=96)), "image/png")) for i in range(3)]
    inspection_id = client.post("/v1/inspect", files=files).json()["results"][0]["inspection_id"]
    path = f"/v1/inspections/{inspection_id}/feedback"

    sent = {
        "verdict": "defective",
        "defect_type": "dent",
        "box": [10, 12, 96, 96],
        "note": "'; DROP TABLE feedback; --",
    }
    answer = client.post(path, json=sent | {"source": "page", "author": "ana"})
    assert answer.status_code == 201, answer.text
    given = answer.json()
    assert {k: given[k] for k in sent} == sent and given["source"] == "page" and given["inspection_id"] == inspection_id
    shown = client.get(f"/v1/inspections/{inspection_id}").json()["feedback"]
    assert [f["id"] for f in shown] == [given["id"]] and shown[0]["box"] == [10, 12, 96, 96]

    for box in BAD_BOXES + [[0, 0, 97, 10]]:  # the image is 96 × 96
        refused = client.post(path, json={"verdict": "defective", "box": box})
        assert refused.status_code == 422 and "box" in refused.json()["error"], (box, refused.text)
    for bad in ({}, {"verdict": "anomalous"}, {"verdict": "defective", "source": "mail"}, {"note": "x", "extra": 1}):
        refused = client.post(path, json=bad)
        assert refused.status_code == 422 and refused.json()["error"], (bad, refused.text)
    raw = b'{"note": "lone \\ud800 surrogate", "source": "api"}'
    surrogate = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert surrogate.status_code == 422 and "body.note" in surrogate.json()["error"]  # a lone surrogate: named
    for unknown in ("nope", "%27%3B%20DROP%20TABLE%20feedback", "%C3%BC", "%ED%A0%80"):
        missing = client.post(f"/v1/inspections/{unknown}/feedback", json={"verdict": "normal"})
        assert missing.status_code == 404 and "no inspection" in missing.json()["error"]
    assert TestClient(client.app).post(path, json={"verdict": "normal"}).status_code == 401  # behind the API key
    assert len(client.get(f"/v1/inspections/{inspection_id}").json()["feedback"]) == 1
    without = TestClient(create_app(tmp_path / "m2")).post(path, json={"verdict": "normal"})
    assert without.status_code == 404 and "--records" in without.json()["error"]
