#!/usr/bin/env python3
"""Stress the inspection service with hostile but legal input, on loopback only, and write bench/stress.md.

Starts `anomalens serve` (API key on, one fitted model), samples the service's resident memory every 50 ms
from /proc, and runs, in order:
  1. 4 concurrent requests × 4 files of a 6000 × 6000 (36-megapixel) PNG;
  2. 8 more such requests, one after another (does memory come back down?);
  3. a 7000 × 7000 float32 TIFF (Pillow cannot read its header);
  4. a 1.5 GB body sent chunked, without a Content-Length (stops at the first answer);
  5. mixed load: 60 small inspections and chat turns at 8 concurrent.
Every request is bounded in time; the script stops the service itself.

    python bench/stress.py            # ~2 minutes on 2 cores
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import tifffile
from PIL import Image

HERE = Path(__file__).resolve().parent
KEY = "stress-key"
HEADERS = {"X-API-Key": KEY}


def big_png(side: int = 6000) -> bytes:
    """A legal 36-megapixel PNG that compresses to a few hundred KB (smooth gradients)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    image = np.stack(
        [
            np.broadcast_to(ramp, (side, side)),
            np.broadcast_to(ramp[:, None], (side, side)),
            np.full((side, side), 128, np.float32),
        ],
        axis=-1,
    ).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def small_png(seed: int, side: int = 128) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    image = 0.5 + 0.15 * np.sin(0.3 * xx + rng.uniform(0, 6)) + rng.normal(0, 0.03, (side, side))
    buffer = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class Memory:
    """Samples a process's resident memory (VmRSS) in the background; `peak` since the last reset."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def now(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.now())
            except FileNotFoundError:
                return
            time.sleep(0.05)

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def stop(self) -> None:
        self._stop.set()


def timed(call) -> tuple[float, httpx.Response | Exception]:
    started = time.perf_counter()
    try:
        outcome: httpx.Response | Exception = call()
    except Exception as error:  # noqa: BLE001 - reported as an error row
        outcome = error
    return time.perf_counter() - started, outcome


def summary(name: str, outcomes: list, memory: Memory, before: int) -> dict:
    seconds = sorted(t for t, _ in outcomes)
    statuses = [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for _, r in outcomes]
    errors = sum(1 for s in statuses if not isinstance(s, int) or s >= 500)
    bodies = [r.json() for _, r in outcomes if isinstance(r, httpx.Response) and 400 <= r.status_code < 500]
    refused = [b.get("error", "") for b in bodies] + [f.get("error", "") for b in bodies for f in b.get("results", [])]
    files = [
        f
        for _, r in outcomes
        if isinstance(r, httpx.Response) and r.status_code == 200
        for f in r.json().get("results", [])
    ]
    return {
        "load": name,
        "requests": len(outcomes),
        "statuses": dict(sorted((str(s), statuses.count(s)) for s in set(statuses))),
        "errors (5xx/transport)": errors,
        "files inspected": sum(1 for f in files if f.get("ok")),
        "files refused": sum(1 for f in files if not f.get("ok")),
        "reasons": sorted({f.get("error") for f in files if not f.get("ok")} | set(refused))[:3],
        "p50 s": statistics.median(seconds),
        "p99 s": seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))],
        "RSS before MB": before / 2**20,
        "peak RSS MB": memory.peak / 2**20,
        "RSS after MB": memory.now() / 2**20,
    }


def chunked(total: int, chunk: int = 1 << 20):
    """A multipart body whose one file part runs on for `total` bytes, sent in chunks (no Content-Length)."""
    yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    sent = 0
    while sent < total:
        yield b"\0" * chunk
        sent += chunk
    yield b"\r\n--x--\r\n"


def main() -> None:
    port = 8765
    with tempfile.TemporaryDirectory() as models:
        log = open(Path(models) / "serve.log", "wb")
        service = subprocess.Popen(
            [sys.executable, "-m", "anomalens.cli", "serve", "--port", str(port), "--models", models, "--api-key", KEY],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        rows = []
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            client = httpx.Client(base_url=base, headers=HEADERS, timeout=300)
            normal = [("files", (f"n{i}.png", small_png(i), "image/png")) for i in range(8)]
            job = client.post("/v1/models", files=normal, data={"model_id": "stress"}).json()
            while client.get(f"/v1/jobs/{job['job_id']}").json()["status"] in ("queued", "running"):
                time.sleep(0.5)
            memory = Memory(service.pid)
            png = big_png()

            def four_big():
                return client.post(
                    "/v1/inspect",
                    data={"model_id": "stress"},
                    files=[("files", (f"big{i}.png", png, "image/png")) for i in range(4)],
                )

            before = memory.reset()
            with ThreadPoolExecutor(4) as pool:
                outcomes = list(pool.map(lambda _: timed(four_big), range(4)))
            rows.append(
                summary(
                    f"4 concurrent × 4 files of a 36-megapixel PNG ({len(png) // 1024} KB each)",
                    outcomes,
                    memory,
                    before,
                )
            )
            before = memory.reset()
            outcomes = [timed(four_big) for _ in range(8)]
            rows.append(summary("8 more such requests, one after another", outcomes, memory, before))

            buffer = io.BytesIO()
            tifffile.imwrite(buffer, np.zeros((7000, 7000, 3), np.float32), photometric="rgb", compression="zlib")
            before = memory.reset()
            outcomes = [
                timed(
                    lambda: client.post(
                        "/v1/inspect",
                        data={"model_id": "stress"},
                        files=[("files", ("huge.tif", buffer.getvalue(), "image/tiff"))],
                    )
                )
            ]
            rows.append(
                summary(f"a 7000 × 7000 float32 TIFF ({len(buffer.getvalue()) // 1024} KB)", outcomes, memory, before)
            )

            before = memory.reset()
            outcomes = [
                timed(
                    lambda: client.post(
                        "/v1/inspect",
                        content=chunked(1536 << 20),
                        headers={"Content-Type": "multipart/form-data; boundary=x"},
                    )
                )
            ]
            rows.append(summary("a 1.5 GB body sent chunked (no Content-Length)", outcomes, memory, before))

            def small_and_chat(i: int):
                response = client.post(
                    "/v1/inspect",
                    data={"model_id": "stress"},
                    files=[("files", (f"s{i}.png", small_png(100 + i), "image/png"))],
                )
                if response.status_code == 200 and i % 2:
                    inspection = response.json()["results"][0]["inspection_id"]
                    return client.post("/v1/chat", json={"inspection_id": inspection, "question": "where is it?"})
                return response

            before = memory.reset()
            with ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(lambda i: timed(lambda: small_and_chat(i)), range(60)))
            rows.append(summary("mixed: 60 small inspections and chat turns at 8 concurrent", outcomes, memory, before))
            memory.stop()
        finally:
            service.terminate()
            service.wait(timeout=30)
    write(rows)


def write(rows: list[dict]) -> None:
    lines = [
        "# Service stress results",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (loopback, API key on, one fitted model). "
        "Command: `python bench/stress.py`. RSS is the service process's resident memory, sampled every 50 ms.",
        "",
        "| load | requests | statuses | 5xx / transport errors | files inspected | files refused | reasons | p50 s | p99 s "
        "| RSS before MB | peak RSS MB | RSS after MB |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v).replace("|", "/") for v in r.values())
            + " |"
        )
    (HERE / "stress.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
