"""Inspection records (issue 31): the store on a real SQLite file and a real PostgreSQL server (Debian's
package, started here: conftest's `url`), the same rows and answers through both; hostile filters; stable
pages; a run writing each inspection once; migrations up and down; writers killed mid-stream or writing
together lose nothing committed; `detect --records`, `anomalens records`, and the service's inspections and
chats surviving a restart. Feedback: test_feedback.py; series, the service's restart in process and the model
identity: test_records_interfaces.py."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from anomalens.records import RecordStore, database_url, parse_time  # noqa: E402
from conftest import free_port, plant_defect, running_server, save_png, texture  # noqa: E402
from postgres_server import new_database  # noqa: E402

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


def test_a_restored_chat_keeps_each_turns_correction_and_what_it_taught():
    from anomalens.language import ChatSession
    from anomalens.records.chats import findings_json, restored_session
    from test_claims import DEFECTIVE

    session = ChatSession(DEFECTIVE)
    session.ask("Where is the defect?")
    corrected = session.ask("That's not a defect, this part is fine.")
    corrected.taught = {"model": "line.safetensors", "version": 2, "flags": []}
    record = {"findings": findings_json(DEFECTIVE), "chat": [t.to_dict() for t in session.turns]}
    record["chat"].append({"question": "It's a scratch.", "answer": "…", "correction": {"verdict": "maybe"}})
    restored = restored_session(record)
    assert restored is not None
    assert [t.to_dict() for t in restored.turns[:2]] == [t.to_dict() for t in session.turns]
    assert restored.turns[1].correction is not None and restored.turns[1].correction.verdict == "normal"
    assert restored.turns[2].correction is None  # a kept value that is no correction is not made one
