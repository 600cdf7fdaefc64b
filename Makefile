# ElectroDB: one entry point. `make demo` runs the main job, `make test` the test suite.
# Both bootstrap a local virtualenv (.venv) first; every install is pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export OMP_NUM_THREADS ?= 2
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD := 1

.PHONY: venv demo test test-all test-deps lint bench clean-data

venv: $(STAMP)

# System packages the tests need: Debian's chromium for the explorer's headless-browser tests. Installed when
# missing (root, as on a fresh machine and in CI); elsewhere the command says what to install.
test-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (explorer browser tests) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "error: the explorer tests need chromium: run 'sudo apt-get install chromium' (Debian/Ubuntu)"; exit 1; \
	  fi; }

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, alone: the exact local CPU build (other specs pull CUDA wheels).
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,teacher,gpu,fireworks,remote]"
	touch $(STAMP)

demo: venv
	$(BIN)/electrodb demo

test: venv test-deps
	$(BIN)/python -m pytest -q -m "not slow" tests

test-all: venv test-deps
	$(BIN)/python -m pytest -q tests

lint: venv
	$(BIN)/ruff check electrodb tests benchmarks
	$(BIN)/ruff format --check electrodb tests benchmarks

bench: venv
	$(BIN)/python benchmarks/analysis.py
