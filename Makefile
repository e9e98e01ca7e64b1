# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates (or reuses) the virtual environment in $(VENV) and installs what it needs.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test unit lint bench clean

# torch first, pinned (the CPU wheel where one is provided locally), and only where none is installed
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

# the tests also need the optional parts: language models, the service, and playwright for the browser
# test (which uses Debian's chromium). llama-cpp-python builds from source (once, 7–20 min) for any x86-64
# CPU, never for only this one: its CPU backend once per instruction-set level (plain x86-64 … AVX-512),
# the best loaded at run time (language/llama_engine.py). The AMX level is left out: CPUs that advertise AMX
# have faulted on its first tile instruction under some hypervisors. --no-cache-dir: never reuse a wheel built
# with other flags; an earlier native build is replaced.
LLAMA := llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON \
	-DCMAKE_INSTALL_BINDIR=llama_cpp/lib -DLLAVA_BUILD=OFF
LLAMA_LIB = $$($(BIN)/python -c "import importlib.util as u; print(u.find_spec('llama_cpp').submodule_search_locations[0])" 2>/dev/null)/lib
$(TEST_STAMP): $(STAMP)
	test -f "$(LLAMA_LIB)/libggml-cpu-x64.so" || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(BIN)/python -m pip install -q --force-reinstall --no-deps --no-cache-dir "$(LLAMA)"
	rm -f "$(LLAMA_LIB)/libggml-cpu-sapphirerapids.so"
	$(BIN)/python -m pip install -q -e ".[test]" "$(LLAMA)"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/anomalens demo

# lint first (seconds): formatting, lint rules, types, and the layers of docs/architecture.md; then every test
test: $(TEST_STAMP) lint
	$(BIN)/python -m pytest -q

# the fast unit tests alone (no CLI processes, servers, browser or language model)
unit: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m "not e2e"

lint: $(TEST_STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Quality and speed on ../shared/datasets (not part of the tests); writes bench/results.md
bench: $(TEST_STAMP)
	$(BIN)/python bench/run_bench.py
	$(BIN)/python bench/qa_bench.py

clean:
	rm -rf $(VENV) anomalens-out .pytest_cache
