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

# the tests also need the optional parts: language models (llama-cpp-python builds from source once,
# ~5 min), the service, and playwright for the browser test (which uses Debian's chromium)
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[test]"
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
