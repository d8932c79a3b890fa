# Two commands for a fresh machine with python3 (3.11+) and make:
#   make run   - create .venv, install the locked dependencies, migrate, start the bot
#   make test  - the same set-up, then ruff, mypy and the whole pytest suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck pytest sandbox bench bench-update lock clean

help:
	@echo "make run           set up .venv from requirements.lock and start the bot (reads .env)"
	@echo "make test          lint, typecheck and pytest (sets up .venv from requirements-dev.lock)"
	@echo "make lint          ruff check and ruff format --check"
	@echo "make typecheck     mypy (strict)"
	@echo "make pytest        the test suite (PYTEST_ARGS=... to pass options); installs PostgreSQL if missing"
	@echo "make sandbox       run the local fake UlazAI provider on port 8080"
	@echo "make bench         run the benchmarks; figures to benchmarks/out/ (untracked), exit 1 on a missed target"
	@echo "make bench-update  the same, rewriting the committed benchmarks/results/"
	@echo "make lock          re-resolve requirements*.lock from pyproject.toml (needs network)"
	@echo "make clean         remove .venv and the tools' caches"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kling-discord-bot needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: requirements.lock | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	@touch $@

$(VENV)/.installed-dev: requirements-dev.lock | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(PY) bot.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy .

# PostgreSQL: the suite runs every storage test on PostgreSQL too. scripts/ensure-postgres.sh installs
# Debian's server binaries when they are missing; the suite starts its own throw-away cluster on 127.0.0.1.
pytest: $(VENV)/.installed-dev
	scripts/ensure-postgres.sh
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

sandbox: $(VENV)/.installed-run
	$(PY) -m sandbox --port 8080

bench: $(VENV)/.installed-dev
	$(PY) -m benchmarks

bench-update: $(VENV)/.installed-dev
	$(PY) -m benchmarks --update

lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -o requirements.lock
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements-dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis benchmarks/out
