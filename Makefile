# Two commands matter (see README): `make demo` and `make test`.
# Both create .venv from pyproject.toml + requirements/constraints.txt on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit soak chaos bench audit docs lock clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

## The README's first command: embedded local stack + worker + a demo workload.
demo: $(STAMP)
	$(BIN)/a2i-worker local --demo

## The README's second command (and exactly what CI runs): lint, format check, types, tests.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

soak: $(STAMP)
	$(BIN)/pytest -q -m soak -o addopts="--strict-markers -p no:cacheprovider"

chaos: $(STAMP)
	$(BIN)/pytest -q -m chaos -o addopts="--strict-markers -p no:cacheprovider"

## Regenerate the tables in README.md and docs/ from the code (a test fails when they are stale).
docs: $(STAMP)
	$(BIN)/python -m a2i_worker.docgen

audit: $(STAMP)
	$(BIN)/pip-audit -r requirements/constraints.txt --no-deps --disable-pip

## Re-resolve the pinned versions (run by hand, commit the result).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet --upgrade "pip>=24"
	.lockvenv/bin/python -m pip install --quiet '.[dev]'
	.lockvenv/bin/python -m pip freeze --exclude a2i-worker > requirements/constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache build *.egg-info
