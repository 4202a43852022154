# The two commands a user needs: `make serve` and `make test`. Each creates the virtualenv and
# installs the project first, so both work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/forecaster serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.train_throughput --cell lstm --compare torch
	$(BIN)/python -m benchmarks.train_throughput --cell gru --compare torch
	$(BIN)/python -m benchmarks.m4_hourly

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
