# `make run` and `make test` are the whole set-up on a fresh machine: each creates or
# refreshes .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dask,dev]'
	touch $(STAMP)

# A server on http://127.0.0.1:$(PORT) with a process worker and the example deployments,
# until Ctrl-C (examples/demo.py; `make run PORT=4300` if 4200 is taken).
PORT = 4200
run: $(STAMP)
	$(BIN)/python examples/demo.py --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/sdk_overhead.py

clean:
	rm -rf $(VENV)
