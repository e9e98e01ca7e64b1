"""Inspection records (issue 31): the store on a real SQLite file and a real PostgreSQL server (Debian's
package, started here), the same rows and answers through both; hostile filters; stable pages; writers killed
mid-stream or writing together lose nothing committed; `detect --records`, `anomalens records`, and the
service's inspections and chats surviving a restart."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from anomalens.records import RecordStore, UnknownInspection, database_url, parse_time  # noqa: E402
from conftest import free_port, plant_defect, running_server, save_png, texture  # noqa: E402
from postgres_server import new_database, postgres_bin, postgres_server  # noqa: E402

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp()
HOSTILE = [
    "'",
    '"',
    "'; DROP TABLE inspections; --",
    "\"; DELETE FROM inspections WHERE '1'='1",
    "' OR '1'='1",
    "%",
    "_",
    "\\",
    "ünïcödé 🚀 部品",
    "\x00",
    "a" * 5000,
    "1e999",
    str(10**400),
    "$1",
    ":model",
    "\ud800",  # a lone surrogate: JSON may carry one, and a file name (os.fsdecode) too
    "part-\udcff.png",
]
WRITER = """
import sys
from anomalens.records import RecordStore
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = RecordStore(url, station=name)
for i in range(count):
    store.add_inspection({"id": f"{name}-{i:06d}", "source": f"part{i}.png", "verdict": "normal", "score": float(i)})
    print(f"{name}-{i:06d}", flush=True)  # after the commit
"""


@pytest.fixture(scope="module")
def postgres_base():
    if postgres_bin() is None:
        if os.environ.get("ANOMALENS_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "PostgreSQL is required (ANOMALENS_REQUIRE_POSTGRES=1) but Debian's postgresql is not installed"
            )
        pytest.skip("Debian's postgresql package is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    with postgres_server(free_port()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh records database of each kind: a SQLite file, a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "records.db")
    return new_database(request.getfixturevalue("postgres_base"))


def sample_records(n: int = 30) -> list[dict]:
    """Deterministic records: three models, three verdicts, awkward file names, two at the same instant."""
    rows = []
    for i in range(n):
        verdict = ("normal", "anomalous", "error")[i % 3]
        rows.append(
            {
                "id": f"insp-{i:04d}",
                "created": T0 + 60 * (i // 2),  # pairs share a time: the id breaks the tie
                "station": "line-1",
                "source": ["part.png", "100%_sure.png", "o'neil.png", "部品.png"][i % 4] if i < 8 else f"p{i}.png",
                "image_path": f"/data/p{i}.png",
                "image_sha256": f"{i:064x}",
                "model_id": ["bracket", "weld", "few-shot"][i % 3 == 0 and 2 or i % 2],
                "model_version": f"{i % 5:x}" * 64,
                "expert": "memory_bank",
                "verdict": verdict,
                "score": None if verdict == "error" else 0.5 + i / 100,
                "probability": None if verdict == "error" else (0.9 if verdict == "anomalous" else 0.1),
                "confidence": None if verdict == "error" else 0.9,
                "location": "top left" if verdict == "anomalous" else "",
                "defect_type": "scratch" if verdict == "anomalous" else None,
                "error": "unreadable" if verdict == "error" else None,
                "regions": [{"box": [1, 2, 30, 40], "area_fraction": 0.01, "location": "top left"}]
                if verdict == "anomalous"
                else [],
                "result": {"ok": verdict != "error", "nested": {"threshold": float("nan"), "list": [1, 2]}},
            }
        )
    return rows


# ---- the store -----------------------------------------------------------------------------------
def test_round_trip_filters_and_export(url, tmp_path):
    store = RecordStore(url, station="line-1")
    rows = sample_records()
    assert store.add_inspections(rows) == [r["id"] for r in rows]
    assert store.count() == 30
    listed = store.list(limit=100)
    assert [r["id"] for r in listed] == [r["id"] for r in rows]  # by time, then id
    first = store.get("insp-0001")
    assert first["verdict"] == "anomalous" and first["regions"][0]["box"] == [1, 2, 30, 40]
    assert first["created"] == datetime.fromtimestamp(T0, UTC)
    assert first["result"] == {"ok": True, "nested": {"threshold": None, "list": [1, 2]}}  # NaN kept as null
    assert first["chat"] == [] and store.get("nope") is None
    assert {r["verdict"] for r in store.list(verdict="anomalous")} == {"anomalous"}
    assert len(store.list(verdict="anomalous")) == 10
    assert all(r["model_id"] == "weld" for r in store.list(model="weld"))
    assert [r["id"] for r in store.list(model="1" * 64)] == [r["id"] for r in rows if r["model_version"][0] == "1"]
    assert [r["id"] for r in store.list(model="3")] == [r["id"] for r in rows if r["model_version"][0] == "3"]
    assert [r["source"] for r in store.list(source="%")] == ["100%_sure.png", "100%_sure.png"]  # % is a character
    assert [r["source"] for r in store.list(source="o'n")] == ["o'neil.png", "o'neil.png"]
    assert len(store.list(source="部品")) == 2
    since, until = T0 + 120, datetime.fromtimestamp(T0 + 300, UTC).isoformat()
    assert [r["id"] for r in store.list(since=since, until=until)] == [f"insp-{i:04d}" for i in range(4, 10)]
    assert store.list(since="2025-03-01T09:00:00+01:00", until="2025-03-01T08:01:00Z") == listed[:2]
    store.add_chat_turn("insp-0001", 1, {"question": "Where?", "answer": "Top left.", "backend": "grounded"})
    assert store.get("insp-0001")["chat"] == [{"question": "Where?", "answer": "Top left.", "backend": "grounded"}]

    assert store.export(tmp_path / "out.csv", verdict="anomalous") == 10
    with (tmp_path / "out.csv").open(encoding="utf-8") as file:
        exported = list(csv.DictReader(file))
    assert [r["id"] for r in exported] == [r["id"] for r in store.list(verdict="anomalous")]
    assert json.loads(exported[0]["regions"])[0]["box"] == [1, 2, 30, 40]
    import pyarrow.parquet as pq

    assert store.export(tmp_path / "out.parquet") == 30
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 30 and table.column("id").to_pylist() == [r["id"] for r in rows]
    assert table.column("created").to_pylist()[0] == datetime.fromtimestamp(T0, UTC)
    store.close()


def test_the_same_rows_and_answers_through_sqlite_and_postgresql(postgres_base, tmp_path):
    stores = [RecordStore(tmp_path / "same.db", station="s"), RecordStore(new_database(postgres_base), station="s")]
    queries = [
        {},
        {"verdict": "normal"},
        {"model": "weld", "since": T0 + 200},
        {"source": "_"},
        {"until": "2025-03-01T08:03:00Z", "offset": 1, "limit": 3},
        {"model": "'; DROP TABLE inspections; --"},
    ]
    for store in stores:
        store.add_inspections(sample_records())
        store.add_chat_turn("insp-0004", 1, {"question": "Why?", "answer": "Because.", "backend": "grounded"})
    answers = [
        [store.list(**q) for q in queries] + [store.get("insp-0004"), store.count(verdict="error")] for store in stores
    ]
    assert answers[0] == answers[1]
    for i, store in enumerate(stores):
        store.export(tmp_path / f"{i}.csv")
    assert (tmp_path / "0.csv").read_text() == (tmp_path / "1.csv").read_text()


def test_hostile_filters_are_only_values(url):
    store = RecordStore(url)
    rows = sample_records()
    store.add_inspections(rows)
    for value in HOSTILE:
        for name in ("model", "verdict", "station"):
            assert store.list(**{name: value}) == [], (name, value)
            assert store.count(**{name: value}) == 0
        matching = [r["id"] for r in rows if value in r["source"]]  # a substring, taken literally
        assert [r["id"] for r in store.list(source=value)] == matching, value
        assert store.get(value) is None
    for value in ("1e999", str(10**400), 10**400):  # beyond any time: valid, and nothing is that late
        assert store.list(since=value) == [] and len(store.list(until=value)) == 30
    assert len(store.list(since="-1e999")) == 30
    for value in ("'; DROP TABLE inspections; --", "nan", "\x00", "ünïcödé"):
        with pytest.raises(ValueError, match="not a time"):
            store.list(since=value)
    for paging in ({"limit": 10**30}, {"limit": -1}, {"offset": 2**63}, {"offset": -5}):
        with pytest.raises(ValueError):
            store.list(**paging)
    assert store.list(offset=2**62) == []
    assert store.count() == 30  # the table is still there, whole
    RecordStore(url).add_inspection({"source": "'; DROP TABLE inspections; --\x00", "verdict": "normal"})
    assert store.list(source="DROP TABLE")[0]["source"] == "'; DROP TABLE inspections; --\ufffd"


def test_pages_are_stable_and_never_overlap(url):
    store = RecordStore(url)
    same_instant = [{"id": f"{i:03d}-x", "created": T0, "verdict": "normal"} for i in range(47)][::-1]
    store.add_inspections(same_instant)
    pages = [store.list(limit=7, offset=o) for o in range(0, 49, 7)]
    ids = [r["id"] for page in pages for r in page]
    assert ids == sorted(r["id"] for r in same_instant)
    assert [r["id"] for r in store.list(limit=7, offset=14)] == ids[14:21]  # asked again: the same page


def test_a_run_writes_each_inspection_once(url):
    """A batch sent again by its run (a Ray driver that died between the batch's records and its Parquet file,
    then reran) is not written twice; another image content, model version or run is another inspection."""
    store = RecordStore(url)
    batch = [
        {"verdict": "normal", "run": "run-1", "image_path": f"/line/{i}.png", "image_sha256": f"{i:064x}"}
        | {"model_version": "ab" * 32, "score": float(i)}
        for i in range(20)
    ]
    first = store.add_inspections(batch)
    assert len(first) == 20 and store.add_inspections(batch) == [] and store.count() == 20
    assert store.add_inspection(batch[3] | {"id": "sent-again"}) == first[3]  # the one recorded already
    others = [
        batch[0] | {"image_sha256": "f" * 64},  # the file changed between the runs
        batch[1] | {"model_version": "cd" * 32},
        batch[2] | {"run": "run-2"},
        {"verdict": "normal", "image_path": "/line/0.png"},  # no run (the service): every one is its own
        {"verdict": "normal", "image_path": "/line/0.png"},
    ]
    assert len(store.add_inspections(others + batch[:5])) == 5
    assert store.count() == 25 and store.count(model="ab") == 22
    assert {r["run"] for r in store.list(limit=100)} == {"run-1", "run-2", None}
    for value in HOSTILE:  # a run named anything is a value, never SQL
        hostile = {"verdict": "error", "run": value[:64], "image_path": value[:4096]}
        assert len(store.add_inspections([hostile, hostile])) == 1
    assert store.count() == 25 + len(HOSTILE)
    with pytest.raises(ValueError, match="run: 65 characters, at most 64"):  # refused alike by both databases
        store.add_inspection({"verdict": "normal", "run": "r" * 65})
    with pytest.raises(ValueError, match="unknown record field.*run_key"):
        store.add_inspection({"verdict": "normal", "run_key": "forged"})


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


def test_opening_migrates_once_and_the_tables_match_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from anomalens.records.schema import Base

    path = tmp_path / "m.db"
    RecordStore(path).add_inspection({"id": "a", "verdict": "normal"})
    store = RecordStore(path)  # opened again: migrated already, nothing lost
    assert store.count() == 1
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0005",)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_older_database_is_migrated_with_its_rows_and_back(url):
    """A database of revision 0003 (series flagged `anomalous`) opened now: its series rows get verdicts;
    every migration also goes down (to the first tables) and up again, on both databases."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from anomalens.records.database import MIGRATIONS, database_url

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(database_url(url))

    def migrate(step, revision: str) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)

    migrate(command.upgrade, "0003")
    flagged = [{"id": "a", "flag": True}, {"id": "n", "flag": False}, {"id": "e", "flag": None}]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO series_inspections (id, created, station, source, anomalous, windows, result) "
                "VALUES (:id, 0, '', '', :flag, '[]', '{}')"
            ),
            flagged,
        )
    store = RecordStore(url)
    assert {r["id"]: r["verdict"] for r in store.list_series()} == {"a": "anomalous", "n": "normal", "e": "error"}
    store.close()
    migrate(command.downgrade, "0001")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, anomalous FROM series_inspections ORDER BY id")).all()
    assert [(i, None if flag is None else bool(flag)) for i, flag in rows] == [("a", True), ("e", None), ("n", False)]
    assert RecordStore(url).count_series() == 3  # and up again
    engine.dispose()


def test_urls_and_times(tmp_path, monkeypatch):
    assert database_url(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    monkeypatch.setenv("ANOMALENS_RECORDS_URL", str(tmp_path / "env.db"))
    assert RecordStore().url == f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.delenv("ANOMALENS_RECORDS_URL")
    with pytest.raises(ValueError, match="ANOMALENS_RECORDS_URL"):
        database_url()
    assert parse_time("2025-03-01T08:00:00Z") == parse_time("2025-03-01T08:00:00") == T0 == parse_time(str(T0))


# ---- processes -----------------------------------------------------------------------------------
def writer(url: str, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(count)], stdout=subprocess.PIPE, text=True)


def test_a_writer_killed_mid_stream_loses_nothing_it_committed(url):
    RecordStore(url)  # migrated before the writer starts, so that it is killed while writing
    process = writer(url, "killed", 10**6)
    assert process.stdout is not None
    committed = []
    while len(committed) < 150:
        line = process.stdout.readline()
        assert line, "the writer stopped"
        committed.append(line.strip())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    committed += [line.strip() for line in process.stdout.read().splitlines(keepends=True) if line.endswith("\n")]
    stored = {r["id"] for r in RecordStore(url).list(limit=10_000)}
    assert set(committed) <= stored and len(stored) - len(committed) <= 1  # at most the one being printed


def test_two_writers_at_once_lose_nothing(url):
    processes = [writer(url, name, 250) for name in ("station-a", "station-b")]  # migrating together too
    for process in processes:
        process.communicate(timeout=240)
        assert process.returncode == 0
    store = RecordStore(url)
    assert store.count() == 500
    for name in ("station-a", "station-b"):
        assert {r["id"] for r in store.list(station=name, limit=1000)} == {f"{name}-{i:06d}" for i in range(250)}


# ---- the command line and the service ------------------------------------------------------------
@pytest.mark.e2e
def test_detect_writes_records_and_the_records_command_lists_and_exports_them(tmp_path):
    from typer.testing import CliRunner

    from anomalens.cli import app
    from anomalens.records import sha256_file

    runner = CliRunner()
    refs, queries = tmp_path / "refs", tmp_path / "in"
    for i in range(3):
        save_png(refs / f"{i}.png", texture(i))
    save_png(queries / "bad.png", plant_defect(texture(20), 0)[0])
    save_png(queries / "good.png", texture(21))
    (queries / "broken.png").write_bytes(b"not a picture")
    db = tmp_path / "line.db"
    result = runner.invoke(
        app, ["detect", str(queries), "--refs", str(refs), "--out", str(tmp_path / "o"), "--records", str(db)]
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    rows = RecordStore(db).list()
    assert len(rows) == len(results) == 3
    by_name = {r["source"].rsplit("/", 1)[-1]: r for r in rows}
    for written in results:  # each record says what results.json says
        row = by_name[written["source"].rsplit("/", 1)[-1]]
        assert row["verdict"] == ("error" if not written["ok"] else "anomalous" if written["anomalous"] else "normal")
        assert row["score"] == written["score"] and row["image_path"] == str(Path(written["source"]).resolve())
    assert by_name["bad.png"]["verdict"] == "anomalous" and by_name["broken.png"]["verdict"] == "error"
    assert by_name["bad.png"]["image_sha256"] == sha256_file(queries / "bad.png")
    assert {r["model_id"] for r in rows} == {"few-shot"} and len(rows[0]["model_version"]) == 64
    full = RecordStore(db).get(by_name["bad.png"]["id"])
    assert full["findings"]["anomalous"] and full["result"]["score"] == by_name["bad.png"]["score"]

    listed = runner.invoke(app, ["records", "list", "--records", str(db), "--verdict", "anomalous", "--json"])
    assert listed.exit_code == 0, listed.output
    anomalous = [r["id"] for r in rows if r["verdict"] == "anomalous"]
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == anomalous
    table = runner.invoke(app, ["records", "list", "--records", str(db)])
    assert table.exit_code == 0 and "1 of 3" not in table.output and "3 of 3 inspections" in table.output
    bad = runner.invoke(app, ["records", "list", "--records", str(db), "--since", "'; DROP TABLE inspections; --"])
    assert bad.exit_code == 2 and "not a time" in bad.output
    exported = runner.invoke(app, ["records", "export", str(tmp_path / "x.parquet"), "--records", str(db)])
    assert exported.exit_code == 0 and "3 inspections written" in exported.output
    shown = runner.invoke(app, ["records", "show", by_name["good.png"]["id"], "--records", str(db)])
    assert json.loads(shown.output)["verdict"] == by_name["good.png"]["verdict"]


@pytest.mark.e2e
def test_series_inspections_are_recorded_and_listed(url, tmp_path):
    """`detect --series --records` keeps each file's inspection (the file, verdict, score, windows; a file it
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
    result = runner.invoke(
        app, ["detect", *map(str, files), "--series", "--out", str(tmp_path / "o"), "--records", url]
    )
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
    assert model_identity(Inspector(zero_shot="mutual")) == ("zero-shot", None)


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
def test_inspections_and_chats_survive_a_service_restart(tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from test_server import png_bytes

    key, port, db = "records-key", free_port(), tmp_path / "service.db"
    command = [sys.executable, "-m", "anomalens.cli", "serve", "--port", str(port), "--models", str(tmp_path / "m")]
    command += ["--records", str(db)]
    base, env = f"http://127.0.0.1:{port}", os.environ | {"ANOMALENS_API_KEY": key}
    headers = {"X-API-Key": key}
    files = [("files", ("bad.png", png_bytes(plant_defect(texture(40), 1)[0]), "image/png"))]
    files += [("references", (f"r{i}.png", png_bytes(texture(i)), "image/png")) for i in range(3)]
    with running_server(command, f"{base}/v1/health", tmp_path / "one.log", 90, env=env):
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            result = client.post("/v1/inspect", files=files).json()["results"][0]
            inspection_id = result["inspection_id"]
            first = client.post("/v1/chat", json={"inspection_id": inspection_id, "question": "Where is it?"}).json()
            before = client.get(f"/v1/inspections/{inspection_id}").json()
            listed = client.get("/v1/inspections", params={"verdict": "anomalous", "model": "few-shot"}).json()
            assert [r["id"] for r in listed["inspections"]] == [inspection_id] and listed["total"] == 1
            for value in ("'; DROP TABLE inspections; --", "' OR '1'='1", "ünïcödé"):
                assert client.get("/v1/inspections", params={"model": value}).json()["inspections"] == []
            assert client.get("/v1/inspections", params={"since": "'; DROP TABLE x"}).status_code == 422
            assert client.get("/v1/inspections", params={"limit": str(10**30)}).status_code == 422
        assert httpx.get(f"{base}/v1/inspections").status_code == 401  # behind the API key
    assert before["verdict"] == "anomalous" and before["result"]["answer"] == result["answer"]
    assert [t["answer"] for t in before["chat"]] == [first["answer"]]

    with running_server(command, f"{base}/v1/health", tmp_path / "two.log", 90, env=env):
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            after = client.get(f"/v1/inspections/{inspection_id}").json()
            assert after == before
            again = client.post("/v1/chat", json={"inspection_id": inspection_id, "question": "How sure are you?"})
            assert again.status_code == 200, again.text
            assert again.json()["turn"] == 2 and again.json()["answer"]
            assert len(client.get(f"/v1/inspections/{inspection_id}").json()["chat"]) == 2
            assert client.get("/v1/inspections").json()["total"] == 1
