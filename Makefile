# The two commands a user needs: `make serve` and `make test`. Each creates the virtualenv and
# installs the project first, so both work on a fresh machine with Python 3.11.
#
# Installs come from hashed lock files (pip --require-hashes), not from pyproject.toml's ranges,
# so a fresh clone gets the versions the tests passed with. pyproject.toml keeps the ranges for
# people who use the library in their own environment. `make lock` refreshes the lock files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
# NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

# requirements.lock: the service's dependencies plus the build backend (the Docker image);
# requirements-dev.lock: the same pins plus the `dev` extra (make serve/test, CI).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock

# The lock tool lives in its own virtualenv under build/, installed on first `make lock` only.
UV_VERSION := 0.13.9
LOCK_TOOLS := build/lock-tools
UV := $(LOCK_TOOLS)/bin/uv
# The platform the lock is resolved for; the hashes cover every file of each pinned release.
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
# Extra flags for `uv pip compile`: `make lock LOCK_FLAGS=--upgrade` moves every pin to the
# newest release the ranges allow, `LOCK_FLAGS='--upgrade-package jax'` just one. Without them
# the existing pins are kept and only what pyproject.toml changed is resolved.
LOCK_FLAGS ?=

.PHONY: install serve test docs lint format bench lock clean

# --no-build-isolation: the editable install uses the locked setuptools instead of fetching
# whatever is newest into a temporary build environment.
$(STAMP): pyproject.toml $(LOCK) $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r $(DEV_LOCK)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	@$(PIP) check || { echo "pyproject.toml and $(DEV_LOCK) disagree: run make lock" >&2; exit 1; }
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/forecaster serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MKDOCS) build --strict --quiet
	$(BIN)/python -m pytest

# The documentation site (mkdocs.yml, docs/) into build/site. --strict: a broken link, a page
# left out of the nav or a docstring the API reference cannot read is an error, not a warning.
docs: $(STAMP)
	$(MKDOCS) build --strict

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# torch (the `bench` extra) is not in the lock files: it is pinned in pyproject.toml, and the
# lock's pins hold for everything it shares with the service (constraints without hashes).
bench: $(STAMP)
	@mkdir -p build
	sed -e '/--hash=/d' -e 's/ \\$$//' $(DEV_LOCK) > build/lock-constraints.txt
	$(PIP) install --quiet -c build/lock-constraints.txt -e '.[bench]'
	$(BIN)/python -m benchmarks.train_throughput --cell lstm --compare torch
	$(BIN)/python -m benchmarks.train_throughput --cell gru --compare torch
	$(BIN)/python -m benchmarks.m4_hourly

$(UV):
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The build backend (pyproject's [build-system] requires) is locked too, for the editable
# install above and the Docker build. The dev lock is resolved under the runtime lock's pins,
# so the two never disagree.
lock: $(UV)
	$(PYTHON) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))\
		['build-system']['requires'], sep='\n')" > $(LOCK_TOOLS)/build-requirements.in
	$(UV) pip compile --quiet --generate-hashes $(LOCK_TARGET) --custom-compile-command 'make lock' \
		$(LOCK_FLAGS) pyproject.toml $(LOCK_TOOLS)/build-requirements.in -o $(LOCK)
	$(UV) pip compile --quiet --generate-hashes $(LOCK_TARGET) --custom-compile-command 'make lock' \
		$(LOCK_FLAGS) pyproject.toml $(LOCK_TOOLS)/build-requirements.in --extra dev -c $(LOCK) \
		-o $(DEV_LOCK)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
