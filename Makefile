# Two commands matter (see README): `make demo` and `make test`.
# Both create .venv on first use, pinned by requirements/constraints.txt (one lock for
# everything; a constraint only pins what an install asks for, so the demo's smaller
# install gets the same versions as the dev one).
#  - `make demo` installs the runtime and the local stack only: `.[local]`.
#  - everything else installs the dev set on top: `.[dev]` (tests, linters, mypy, ...).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCAL_STAMP := $(VENV)/.local-stamp
STAMP := $(VENV)/.installed-stamp
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c requirements/constraints.txt

# The AWS SDK for JavaScript v3, pinned by tests/clients/package-lock.json, for the
# emulator's real-client suite (tests/clients/test_js_sdk.py; the AWS CLI comes with .venv).
NODE_STAMP := tests/clients/node_modules/.installed-stamp

.PHONY: demo test lint typecheck unit soak chaos bench audit docs lock clean node-deps

# A new venv gets a current pip first; an existing one (from the other stamp) is reused.
NEW_VENV := test -x $(BIN)/python || { $(PYTHON) -m venv $(VENV) \
	&& $(BIN)/python -m pip install --quiet --upgrade "pip>=24"; }

$(LOCAL_STAMP): pyproject.toml requirements/constraints.txt
	$(NEW_VENV)
	$(PIP_INSTALL) -e '.[local]'
	touch $(LOCAL_STAMP)

# The dev set includes the local stack: one install makes both stamps current.
$(STAMP): pyproject.toml requirements/constraints.txt
	$(NEW_VENV)
	$(PIP_INSTALL) -e '.[dev]'
	touch $(LOCAL_STAMP) $(STAMP)

$(NODE_STAMP): tests/clients/package.json tests/clients/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/clients && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error && touch node_modules/.installed-stamp; \
	else \
		echo "npm not found: the JavaScript SDK suite in tests/clients will be skipped" >&2; \
	fi

node-deps: $(NODE_STAMP)

## The README's first command: embedded local stack + worker + a demo workload.
demo: $(LOCAL_STAMP)
	$(BIN)/a2i-worker local --demo

## The README's second command (and exactly what CI runs): lint, format check, types, tests.
## The suite mostly waits (long polls, reviewers, worker processes): two pytest-xdist
## workers halve it on 2 cores. Work goes out by file; tests that run worker processes go
## one at a time on one of them, started first (tests/xdist_schedule.py). mypy (12 s of
## one core on a fresh clone) runs beside pytest and reports after it; either failing
## fails the target.
PYTEST_WORKERS ?= 2
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(BIN)/mypy > .venv/mypy.out 2>&1 & mypy=$$!; \
	echo "$(BIN)/mypy (beside pytest)"; \
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder; tests=$$?; \
	wait $$mypy; types=$$?; echo "$(BIN)/mypy:"; cat .venv/mypy.out; \
	test $$tests -eq 0 && test $$types -eq 0

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## Long variants (excluded from `make test`): the soak-marked tests, and every property
## test with Hypothesis' long profile (1,000 examples instead of 100).
soak: $(STAMP)
	$(BIN)/pytest -q -m "soak or hypothesis" --hypothesis-profile=soak \
		-o addopts="--strict-markers -p no:cacheprovider"

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
	rm -rf $(VENV) .mypy_cache .ruff_cache build *.egg-info tests/clients/node_modules
