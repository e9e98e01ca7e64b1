"""A language model in a worker process of its own, so that native code failing inside it — an illegal
instruction, a segfault, the out-of-memory killer — ends the worker and never the CLI or the service.

The parent (``WorkerModel``) starts a Python running ``main`` here, sends it the engine to build
(``module:factory`` and its options) and then one JSON line per request; the worker answers one JSON line
each. A worker that dies is reported as a ``WorkerDied`` (a ``BackendError``: the chat then answers from the
findings) and started again on the next request."""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from .errors import BackendError

START_SECONDS = 120.0  # loading a model file: seconds for a small GGUF, more for a large one from a slow disk
ANSWER_SECONDS = 300.0  # one answer on a busy 2-core machine; a worker silent longer is stopped


class WorkerDied(BackendError):
    """The worker process ended while it was starting or answering."""


class WorkerModel:
    """A language model whose engine (``complete(messages) -> (text, messages sent)``, ``count_tokens``,
    ``context``) runs in a worker process; one request at a time."""

    vision = False

    def __init__(
        self,
        factory: str,
        options: dict,
        *,
        name: str,
        start_seconds: float = START_SECONDS,
        answer_seconds: float = ANSWER_SECONDS,
    ):
        self.factory, self.options, self.name = factory, options, name
        self.start_seconds, self.answer_seconds = start_seconds, answer_seconds
        self.context = 0
        self.system_info = ""  # what the engine says of the CPU features it uses
        self.last_sent: list[dict] = []  # the messages the last answer was given (trimmed to the context)
        self.starts = 0
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        with self._lock:
            self._start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None

    def complete(self, messages: list[dict]) -> str:
        reply = self._call({"op": "complete", "messages": messages})
        self.last_sent = reply["sent"]
        return reply["text"]

    def count_tokens(self, message: dict) -> int:
        return self._call({"op": "count", "message": message})["tokens"]

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _call(self, request: dict) -> dict:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()  # the last one died: a fresh worker for this request
            assert self._process is not None and self._process.stdin is not None
            try:
                self._process.stdin.write((json.dumps(request) + "\n").encode())
                self._process.stdin.flush()
            except OSError:  # a worker that died since: its exit status says why
                pass
            reply = self._receive(self.answer_seconds, "answering")
        if "error" in reply:
            raise BackendError(f"{self.name} failed: {reply['error']}")
        return reply

    def _start(self) -> None:
        self._stop()
        self.starts += 1
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from anomalens.language.worker import main; sys.exit(main())"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
        assert self._process.stdin is not None
        self._process.stdin.write((json.dumps({"factory": self.factory, "options": self.options}) + "\n").encode())
        self._process.stdin.flush()
        ready = self._receive(self.start_seconds, "starting")
        if "error" in ready:
            self._stop()
            raise BackendError(ready["error"])
        self.context, self.system_info = ready["context"], ready.get("system_info", "")

    def _receive(self, seconds: float, doing: str) -> dict:
        process = self._process
        assert process is not None and process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            line = process.stdout.readline() if selector.select(seconds) else None
        if line is None:
            self._stop()
            raise BackendError(f"{self.name} did not answer within {seconds:.0f} s while {doing}; it was stopped")
        if not line:
            status = process.wait()
            self._process = None
            raise WorkerDied(f"{self.name}'s worker process died while {doing} ({exit_reason(status)})")
        return json.loads(line)

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def exit_reason(status: int) -> str:
    """A process's exit status in words: 'SIGILL, illegal instruction', 'exit code 3'."""
    if status < 0:
        try:
            number = signal.Signals(-status)
        except ValueError:
            return f"signal {-status}"
        return f"{number.name}, {(signal.strsignal(number) or '').lower()}".rstrip(", ")
    return f"exit code {status}"


def serve(requests: IO[bytes], replies: IO[bytes]) -> int:
    """The worker's loop: build the engine named on the first line, then answer each request line."""

    def reply(message: dict) -> None:
        replies.write((json.dumps(message) + "\n").encode())
        replies.flush()

    spec = json.loads(requests.readline() or "{}")
    module, _, attribute = spec.get("factory", "").partition(":")
    try:
        engine = getattr(importlib.import_module(module), attribute)(**spec.get("options", {}))
    except BackendError as error:
        reply({"error": str(error)})
        return 1
    except Exception as error:  # noqa: BLE001 — an engine that cannot be built says why, not only "it died"
        reply({"error": f"cannot start {spec.get('factory')}: {error.__class__.__name__}: {error}"})
        return 1
    reply({"context": engine.context, "system_info": getattr(engine, "system_info", "")})
    for line in requests:
        request = json.loads(line)
        try:
            reply(_answer(engine, request))
        except BackendError as error:
            reply({"error": str(error)})
        except Exception as error:  # noqa: BLE001 — one bad request must not end the worker; its reason goes back
            reply({"error": f"{error.__class__.__name__}: {error}"})
    return 0


def _answer(engine: Any, request: dict) -> dict:
    if request["op"] == "complete":
        text, sent = engine.complete(request["messages"])
        return {"text": text, "sent": sent}
    return {"tokens": engine.count_tokens(request["message"])}


def main() -> int:
    # the replies get a descriptor of their own: native code printing to standard output must not garble them
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return serve(sys.stdin.buffer, replies)
