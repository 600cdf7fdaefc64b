# ElectroDB: one entry point. `make demo` runs the main job, `make test` the test suite.
# Both bootstrap a local virtualenv (.venv) first; every install is pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export OMP_NUM_THREADS ?= 2
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD := 1

.PHONY: venv demo test test-fast lint bench clean-data

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, alone: the exact local CPU build (other specs pull CUDA wheels).
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,teacher,gpu,fireworks]"
	touch $(STAMP)

demo: venv
	$(BIN)/electrodb demo

test: venv
	$(BIN)/python -m pytest -q -m "not slow" tests

test-all: venv
	$(BIN)/python -m pytest -q tests

lint: venv
	$(BIN)/ruff check electrodb tests benchmarks
	$(BIN)/ruff format --check electrodb tests benchmarks

bench: venv
	$(BIN)/python benchmarks/analysis.py
