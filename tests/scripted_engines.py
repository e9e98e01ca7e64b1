"""Language engines for the worker tests, run inside the worker process: they answer, fail, hang or kill
their own process when the question asks them to."""

from __future__ import annotations

import os
import signal
import time


class ScriptedEngine:
    context = 2048
    system_info = "scripted"

    def complete(self, messages: list[dict]) -> tuple[str, list[dict]]:
        question = messages[-1]["content"]
        if "SIGILL" in question:  # as native code built for another CPU would
            os.kill(os.getpid(), signal.SIGILL)
        if "HANG" in question:
            time.sleep(60)
        if "RAISE" in question:
            raise ValueError("the scripted engine was asked to fail")
        return "Yes, there is an anomaly in the image.", messages

    def count_tokens(self, message: dict) -> int:
        return len(message["content"].split())


def crash_at_start() -> ScriptedEngine:
    os.kill(os.getpid(), signal.SIGILL)
    raise AssertionError("unreachable")
