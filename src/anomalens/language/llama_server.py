"""llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``, the same options) with
llama.cpp's CPU backends loaded first, as the portable build needs: ``python -m
anomalens.language.llama_server --model M.gguf --port 8080``, then ``--llm openai --base-url ...``."""

import runpy

from .llama_engine import load_cpu_backends

if __name__ == "__main__":
    load_cpu_backends()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
