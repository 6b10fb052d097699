# medfusion: `make demo` runs the platform, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo serve test lint bench bench-ml bench-explain bench-scheduling clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first: the pinned CPU wheel lies on this machine's disk; a bare `torch`
# requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/medfusion demo

serve: install
	$(BIN)/medfusion serve

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: install
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python benchmarks/run.py

# Tabular models against published results; writes bench-out/ml_published.md.
bench-ml: install
	$(BIN)/python benchmarks/ml_published.py

# Explanation speed, local accuracy and deletion faithfulness; writes bench-out/explain.md.
bench-explain: install
	$(BIN)/python benchmarks/bench_explain.py

# Appointments: $find latency and $book throughput on SQLite; writes bench-out/scheduling.md.
bench-scheduling: install
	$(BIN)/python benchmarks/bench_scheduling.py

clean:
	rm -rf $(VENV) .medfusion .pytest_cache .mypy_cache .ruff_cache
