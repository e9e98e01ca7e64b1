"""llama-cpp-python as `make test` installs it runs on any x86-64 CPU: its libraries hold no AMX instruction
(a CPU can advertise AMX and still fault on it), and AVX-512 only in the CPU backends that ggml loads at run
time on a CPU that has it. Read from the machine code itself (objdump). Skipped without the llm extra,
unless ANOMALENS_REQUIRE_LLM=1 (as in CI)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.llm
AMX = re.compile(r"\b(?:ldtilecfg|sttilecfg|tilerelease|tilezero|tileloadd\w*|tilestored|tdp\w+)\b")
AVX512 = re.compile(r"%zmm|%k[1-7]\b")
AVX512_LEVELS = ("skylakex", "cannonlake", "cascadelake", "icelake", "cooperlake", "zen4")


@pytest.fixture(scope="module")
def libraries() -> Path:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("ANOMALENS_REQUIRE_LLM") == "1":
            pytest.fail("the LLM extra is required here: llama-cpp-python is not installed")
        pytest.skip("needs the llm extra (pip install 'anomalens[llm]')")
    return Path(spec.submodule_search_locations[0]) / "lib"


def instructions(library: Path) -> str:
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils) reads the libraries' machine code"
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    return listing.stdout


def test_the_cpu_backend_is_built_for_every_level_and_chosen_at_run_time(libraries):
    levels = {p.name.removeprefix("libggml-cpu-").removesuffix(".so") for p in libraries.glob("libggml-cpu-*.so")}
    assert {"x64", "sse42", "haswell", "skylakex", "zen4"} <= levels, (
        f"{libraries}: not the portable build (make test installs it): {sorted(levels)}"
    )
    assert "sapphirerapids" not in levels  # the AMX level


def test_no_library_holds_amx_and_only_run_time_choices_hold_avx512(libraries):
    for library in sorted(libraries.glob("*.so")):
        code = instructions(library)
        assert not AMX.search(code), f"{library.name}: AMX instructions"
        if not library.name.startswith(tuple(f"libggml-cpu-{level}" for level in AVX512_LEVELS)):
            assert not AVX512.search(code), f"{library.name}: AVX-512 outside the CPU backends chosen at run time"
