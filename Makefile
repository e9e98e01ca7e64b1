# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates (or reuses) the virtual environment in $(VENV) and installs what it needs.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

# torch first, pinned (the CPU wheel where one is provided locally), and only where none is installed
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/anomalens demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Quality and speed on ../shared/datasets (not part of the tests); writes bench/results.md
bench: $(STAMP)
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(VENV) anomalens-out .pytest_cache
