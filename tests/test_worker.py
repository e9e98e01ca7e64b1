"""The language model runs in a worker process: when it dies mid-answer — an illegal instruction, a kill —
the chat answers from the findings and says the model failed, the service keeps inspecting, and the next
turn starts a fresh worker and is answered by the model again."""

from __future__ import annotations

import io
import os
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image

from anomalens.language import BackendError, ChatSession
from anomalens.language.worker import WorkerDied, WorkerModel, exit_reason, serve
from conftest import texture
from test_language import findings

ENGINE = "scripted_engines:ScriptedEngine"


@pytest.fixture
def model():
    worker = WorkerModel(ENGINE, {}, name="scripted", answer_seconds=20)
    yield worker
    worker.close()


def test_a_worker_killed_by_an_illegal_instruction_leaves_the_grounded_answer(model):
    session = ChatSession(findings([(50, 250, 20)]), model)
    turn = session.ask("Is there a defect? SIGILL")
    assert turn.backend == "grounded" and turn.answer == turn.grounded_answer and turn.model_answer is None
    assert "died while answering (SIGILL, illegal instruction)" in turn.model_error
    assert turn.to_dict()["model_error"] == turn.model_error
    started = time.perf_counter()
    again = session.ask("Where is the defect?")
    assert time.perf_counter() - started < 10
    assert again.backend == "scripted" and again.model_answer and again.model_error is None
    assert model.starts == 2


def killed_mid_answer(model: WorkerModel, question: str, after: float) -> None:
    """The worker killed from outside `after` seconds into answering `question`: that turn answers from the
    findings and names the signal; the next is the model's again, from a new worker, within 10 s."""
    session = ChatSession(findings([(50, 250, 20)]), model)
    pid = model.pid
    threading.Timer(after, os.kill, (pid, signal.SIGKILL)).start()
    turn = session.ask(question)
    assert "SIGKILL" in turn.model_error and turn.answer == turn.grounded_answer
    started = time.perf_counter()
    again = session.ask("Where is the defect?")
    assert again.model_answer and again.model_error is None and model.pid != pid
    assert time.perf_counter() - started < 10


def test_a_worker_killed_from_outside_mid_answer(model):
    killed_mid_answer(model, "Is there a defect? HANG", after=0.5)


def test_a_failed_answer_keeps_the_worker(model):
    pid = model.pid
    with pytest.raises(BackendError, match="scripted failed: ValueError: the scripted engine was asked to fail"):
        model.complete([{"role": "user", "content": "RAISE"}])
    assert model.complete([{"role": "user", "content": "hello"}]) and model.pid == pid and model.starts == 1


def test_a_worker_that_stops_answering_is_stopped_and_replaced():
    model = WorkerModel(ENGINE, {}, name="scripted", answer_seconds=1)
    try:
        with pytest.raises(BackendError, match="did not answer within 1 s"):
            model.complete([{"role": "user", "content": "HANG"}])
        assert model.complete([{"role": "user", "content": "hello"}]) and model.starts == 2
    finally:
        model.close()


def test_a_worker_that_dies_while_starting_is_a_clear_error():
    with pytest.raises(WorkerDied, match="died while starting .SIGILL"):
        WorkerModel("scripted_engines:crash_at_start", {}, name="crashing")


def test_an_engine_that_cannot_be_built_says_why():
    with pytest.raises(BackendError, match="cannot start scripted_engines:missing: AttributeError"):
        WorkerModel("scripted_engines:missing", {}, name="missing")


def test_exit_reasons_in_words():
    assert exit_reason(-signal.SIGSEGV) == "SIGSEGV, segmentation fault"
    assert exit_reason(3) == "exit code 3"


def test_the_worker_loop_answers_line_by_line():
    requests = io.BytesIO(
        b'{"factory": "scripted_engines:ScriptedEngine", "options": {}}\n'
        b'{"op": "count", "message": {"content": "two words"}}\n'
        b'{"op": "complete", "messages": [{"role": "user", "content": "RAISE"}]}\n'
    )
    replies = io.BytesIO()
    assert serve(requests, replies) == 0
    lines = replies.getvalue().decode().splitlines()
    assert lines[0] == '{"context": 2048, "system_info": "scripted"}' and lines[1] == '{"tokens": 2}'
    assert "ValueError" in lines[2]


@pytest.mark.e2e
def test_the_service_keeps_inspecting_after_the_model_dies(model, tmp_path):
    testclient = pytest.importorskip("fastapi.testclient")
    from anomalens.server.app import create_app

    def png(seed: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray((texture(seed) * 255).astype(np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    client = testclient.TestClient(create_app(tmp_path, language_model=model))
    refs = [("references", (f"ref{i}.png", png(i), "image/png")) for i in range(3)]

    def inspect() -> str:
        response = client.post("/v1/inspect", files=[("files", ("part.png", png(9), "image/png")), *refs])
        assert response.status_code == 200, response.text
        return response.json()["results"][0]["inspection_id"]

    inspection = inspect()
    died = client.post("/v1/chat", json={"inspection_id": inspection, "question": "Any defect? SIGILL"})
    assert died.status_code == 200 and "SIGILL" in died.json()["model_error"]
    assert died.json()["answer"] == died.json()["grounded_answer"]
    inspection = inspect()  # the service still inspects
    answered = client.post("/v1/chat", json={"inspection_id": inspection, "question": "Any defect?"})
    assert answered.json()["backend"] == "scripted" and answered.json()["model_error"] is None
