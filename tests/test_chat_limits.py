"""Conversations never wedge: the history is trimmed to a backend's context, backend failures are
BackendErrors (the service's 502), and a question of only spaces is refused with a reason (422)."""

from __future__ import annotations

import json

import httpx
import pytest

from anomalens.language import BackendError
from anomalens.language.models import (
    IMAGE_TOKENS,
    MESSAGE_TOKENS,
    OpenAICompatibleModel,
    estimated_tokens,
    fit_context,
)


def words(message: dict) -> int:
    return len(message["content"].split())


def conversation(turns: int) -> list[dict]:
    """A system prompt of 50 words, `turns` question/answer pairs of 10 words each, and a new question."""
    messages = [{"role": "system", "content": "fact " * 50}]
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"question {i} " * 5},
            {"role": "assistant", "content": f"answer {i} " * 5},
        ]
    return messages + [{"role": "user", "content": "latest " * 10}]


def test_history_is_trimmed_oldest_turns_first_keeping_the_findings():
    messages = conversation(20)
    assert fit_context(messages, 1000, words) == messages  # all of it fits
    window = 50 + 6 * 20 + 10 + MESSAGE_TOKENS  # the system prompt, six whole turns and the question
    kept = fit_context(messages, window, words)
    assert kept == messages[:1] + messages[-9:]  # four turns: the oldest go TRIM_STEP messages at a time
    assert kept[1]["content"].startswith("question 16")
    # a window that ends inside a turn drops its answer too: the history starts at a question
    assert fit_context(messages, window + 5, words) == kept
    # the next turn's prompt starts as this one's did (a model's cache of it is reused)
    longer = messages + [{"role": "assistant", "content": "answer " * 5}, {"role": "user", "content": "next " * 10}]
    assert fit_context(longer, window, words)[: len(kept)] == kept


def test_a_question_that_cannot_fit_is_a_backend_error():
    with pytest.raises(BackendError, match=r"need about 68 tokens.*context of 60 tokens"):
        fit_context(conversation(3), 60, words)


def test_estimated_tokens_bound_any_byte_level_tokenizer():
    assert estimated_tokens({"role": "user", "content": "née"}) == MESSAGE_TOKENS + 4  # UTF-8 bytes
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:"}}]
    assert estimated_tokens({"role": "user", "content": parts}) == MESSAGE_TOKENS + 4 + IMAGE_TOKENS


def reply(text: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": text}}]})


def test_openai_backend_trims_to_the_context_it_is_given(monkeypatch):
    sent = []
    model = OpenAICompatibleModel("http://127.0.0.1:9/v1", context=1000, max_tokens=100)
    model._client = httpx.Client(
        transport=httpx.MockTransport(lambda request: sent.append(json.loads(request.content)) or reply("ok"))
    )
    assert model.complete(conversation(30)) == "ok"
    messages = sent[0]["messages"]
    assert messages[0]["content"].startswith("fact") and messages[-1]["content"].startswith("latest")
    assert 3 < len(messages) < 62 and sum(map(estimated_tokens, messages)) + MESSAGE_TOKENS <= 900
    monkeypatch.setenv("ANOMALENS_LLM_CONTEXT", "4096")
    assert OpenAICompatibleModel("http://127.0.0.1:9/v1").context == 4096
    monkeypatch.setenv("ANOMALENS_LLM_CONTEXT", "lots")
    with pytest.raises(BackendError, match="ANOMALENS_LLM_CONTEXT='lots'"):
        OpenAICompatibleModel("http://127.0.0.1:9/v1")


def test_openai_backend_failures_are_backend_errors():
    def undecodable(request):
        raise httpx.DecodingError("bad gzip stream")

    model = OpenAICompatibleModel("http://127.0.0.1:9/v1")
    model._client = httpx.Client(transport=httpx.MockTransport(undecodable))
    with pytest.raises(BackendError, match="DecodingError: bad gzip stream"):
        model.complete([{"role": "user", "content": "hi"}])


def test_a_question_of_only_spaces_is_refused_with_a_reason(tmp_path):
    testclient = pytest.importorskip("fastapi.testclient")
    from anomalens.server.app import create_app

    client = testclient.TestClient(create_app(tmp_path))
    response = client.post("/v1/chat", json={"inspection_id": "x", "question": " \t\n "})
    assert response.status_code == 422
    assert (
        response.json()["error"]
        == "invalid request: body.question: Value error, the question is empty (it holds only spaces)"
    )
    assert client.post("/v1/chat", json={"inspection_id": "x", "question": " hi "}).status_code == 404  # accepted
