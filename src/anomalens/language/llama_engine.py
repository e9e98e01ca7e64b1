"""The GGUF model itself, run by llama-cpp-python inside a worker process (``worker.py``): a crash in native
code — an illegal instruction, a segfault — ends the worker, never the process that asked.

llama-cpp-python is installed portably (Makefile: ``GGML_BACKEND_DL``, ``GGML_CPU_ALL_VARIANTS``): its CPU
backend is built once per instruction-set level, from plain x86-64 to AVX-512 and AMX, and ggml picks the
best one this CPU supports when it loads them. ggml looks for them beside the Python executable; they sit
beside llama-cpp-python's own libraries, so ``load_cpu_backends`` points it there first."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import cast

from .models import MAX_TOKENS, MESSAGE_TOKENS, BackendError, fit_context, text_only


def load_cpu_backends() -> str:
    """Load llama.cpp's backends from llama-cpp-python's library folder where a portable build left them
    there, before the first model; a build with its backend linked in already has one and is left as it is.
    Returns llama.cpp's own line of the CPU features it uses."""
    import llama_cpp

    ggml = loaded_ggml()
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    if ggml.ggml_backend_reg_count() == 0:
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        ggml.ggml_backend_load_all_from_path(str(Path(llama_cpp.__file__).parent / "lib").encode())
    return llama_cpp.llama_print_system_info().decode(errors="replace").strip()


def loaded_ggml() -> ctypes.CDLL:
    """The ggml library that llama.cpp itself loaded. A wheel holds copies, not links, of libggml.so and
    libggml.so.0: backends registered in the copy llama.cpp does not use would be invisible to it."""
    with open("/proc/self/maps") as maps:  # read before llama_cpp._ggml loads its own copy
        loaded = {line.split()[-1] for line in maps if "/libggml.so" in line}
    if loaded:  # the one llama.cpp names (libggml.so.0) before a plain libggml.so
        return ctypes.CDLL(min(loaded, key=lambda path: (path.endswith(".so"), path)))
    from llama_cpp import _ggml

    return _ggml.libggml


class LlamaEngine:
    """A GGUF chat model, greedy decoding (answers are reproducible); trims each conversation to its context."""

    def __init__(self, model_path: str, *, context: int = 2048, threads: int = 1, max_tokens: int = MAX_TOKENS):
        self.system_info = load_cpu_backends()
        from llama_cpp import Llama

        try:
            self._llama = Llama(model_path=model_path, n_ctx=context, n_threads=threads, verbose=False)
        except ValueError as error:  # llama.cpp's word for a file it cannot load
            raise BackendError(f"{model_path}: cannot load as a GGUF model ({error})") from None
        self.max_tokens = max_tokens
        self.context = self._llama.n_ctx()

    def complete(self, messages: list[dict]) -> tuple[str, list[dict]]:
        """The answer and the messages sent for it (the conversation trimmed to the context)."""
        fitted = fit_context(text_only(messages), self.context - self.max_tokens, self.count_tokens)
        try:  # plain dicts, and not streamed: llama-cpp's TypedDicts and response union do not apply
            reply = cast(
                dict,
                self._llama.create_chat_completion(
                    messages=cast(list, fitted), temperature=0.0, max_tokens=self.max_tokens
                ),
            )
        except (ValueError, RuntimeError) as error:  # llama.cpp's words for a prompt or a decode it cannot do
            raise BackendError(f"{error}") from None
        return reply["choices"][0]["message"]["content"].strip(), fitted

    def count_tokens(self, message: dict) -> int:
        """A text message's tokens by the model's own tokenizer, and its chat template's around them."""
        return MESSAGE_TOKENS + len(self._llama.tokenize(message["content"].encode(), add_bos=False, special=True))
