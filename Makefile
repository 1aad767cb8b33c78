.DEFAULT_GOAL := all
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
sources := services shared devstack tests bench

.PHONY: install up test test-fast test-cluster lint format typecheck mypy testcov bench demo browser-deps screenshots all clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/python -m devstack.up

# Browser tests drive Debian's chromium through Playwright (Playwright never downloads a browser of its own).
browser-deps:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: install browser-deps
	$(BIN)/pytest

# The suite without the `slow` tests (bursts of 2,000 requests, outages): a quicker loop while developing; CI and
# `make test` run everything.
test-fast: install browser-deps
	$(BIN)/pytest -m "not slow"

# The tests marked `cluster` on a 3-master Redis Cluster (each master with a replica) that the fixtures start from
# the pip-shipped redis-server, with REDIS_MODE=cluster for every service they build; CI runs it next to `test`.
test-cluster: install
	$(BIN)/pytest --topology=cluster

# Refresh docs/screenshots/ (shown in the README) from the end-to-end test of the whole desk flow.
screenshots: install browser-deps
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest tests/e2e/test_desk_flow.py

testcov: install browser-deps
	$(BIN)/pytest --cov=services --cov=shared --cov-report=term-missing

lint: install
	$(BIN)/ruff check $(sources)
	$(BIN)/ruff format --check $(sources)

format: install
	$(BIN)/ruff check --fix $(sources)
	$(BIN)/ruff format $(sources)

typecheck mypy: install
	$(BIN)/mypy services shared devstack

# Simulated customers and agents against `make up`'s stack (run it in another terminal first).
demo: install
	$(BIN)/python -m devstack.simulator --accounts-file .run/dev-accounts.json

bench: install
	@command -v wrk >/dev/null || apt-get install -y wrk || echo "bench needs wrk: apt-get install -y wrk"
	@command -v valgrind >/dev/null || apt-get install -y valgrind || echo "the scale suite's instruction counts need valgrind"
	$(BIN)/python -m bench

all: lint typecheck test

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
