"""Tokens per second of the embedded language model (SmolLM2-135M GGUF, greedy, 2 threads) for each CPU
backend level the portable llama-cpp-python build holds, and for a native build (`-march=native`, what
`make test` built before) when one is given: `python bench/llm_speed.py [--native-site DIR]`, DIR a folder
that a native build was installed into (`pip install --target DIR ...`). Each level runs in a process of
its own (a level this CPU lacks dies there, and is reported so). Writes bench/llm_speed.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
PROMPT = "Describe, in detail, how a weld seam is inspected for porosity, cracks and spatter."
LEVELS = ("auto", "x64", "sse42", "haswell", "skylakex", "icelake", "zen4")

# Runs in a child process: loads one CPU backend (or lets ggml choose), then times prompt and generation.
CHILD = """
import ctypes, json, sys, time
from pathlib import Path
import llama_cpp
from anomalens.language.llama_engine import loaded_ggml
from anomalens.language.models import default_gguf
level, tokens = sys.argv[1], int(sys.argv[2])
lib = Path(llama_cpp.__file__).parent / "lib"
ggml = loaded_ggml()
ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
ggml.ggml_backend_load.restype = ctypes.c_void_p
ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
if ggml.ggml_backend_reg_count() == 0:
    if level == "auto":
        ggml.ggml_backend_load_all_from_path(str(lib).encode())
    elif not ggml.ggml_backend_load(str(lib / f"libggml-cpu-{level}.so").encode()):
        sys.exit(3)
llm = llama_cpp.Llama(model_path=str(default_gguf()), n_ctx=1024, n_threads=2, verbose=False)
best = {}
for _ in range(3):
    llm.reset()
    started = time.perf_counter()
    out = llm.create_completion(sys.argv[3], max_tokens=tokens, temperature=0.0)
    seconds = time.perf_counter() - started
    n = out["usage"]["completion_tokens"]
    rate = n / seconds
    if rate > best.get("tokens_per_s", 0):
        best = {"tokens_per_s": rate, "tokens": n, "prompt_tokens": out["usage"]["prompt_tokens"]}
best["system_info"] = llama_cpp.llama_print_system_info().decode().strip()
print(json.dumps(best))
"""


def run_level(level: str, tokens: int, site: str | None) -> dict:
    environment = os.environ | ({"PYTHONPATH": site + os.pathsep + os.environ.get("PYTHONPATH", "")} if site else {})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, level, str(tokens), PROMPT], capture_output=True, text=True, env=environment
    )
    if done.returncode:
        return {"failed": f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--native-site", help="a folder holding a native llama-cpp-python build")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=HERE / "llm_speed.md")
    args = parser.parse_args()
    rows = [("portable, " + level, run_level(level, args.tokens, None)) for level in LEVELS]
    if args.native_site:
        rows.append(("native (-march=native)", run_level("auto", args.tokens, args.native_site)))
    lines = [
        "# Embedded language model: tokens per second by CPU backend",
        "",
        f"`python bench/llm_speed.py{' --native-site DIR' if args.native_site else ''}` on {cpu_model()} "
        f"({os.cpu_count()} cores); SmolLM2-135M-Instruct GGUF, greedy, 2 threads, best of 3 runs of "
        f"{args.tokens} tokens. `auto` is what the chat runs: ggml's choice among the levels built. Each row is "
        "a process of its own, in turn: on this shared machine the same code (`auto` and the level it picks) "
        "has differed by up to 20 % between rows.",
        "",
        "| build, CPU backend | generation tokens/s | llama.cpp's CPU features |",
        "|---|---|---|",
    ]
    for name, row in rows:
        if "failed" in row:
            lines.append(f"| {name} | not run ({row['failed']}: this CPU lacks the level) | |")
        else:
            features = row["system_info"].split("CPU :", 1)[-1].split("|")
            used = ", ".join(f.split("=")[0].strip() for f in features if f.strip().endswith("= 1"))
            lines.append(f"| {name} | {row['tokens_per_s']:.1f} | {used} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
