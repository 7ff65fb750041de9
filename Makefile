# Set-up is part of every target: a fresh machine needs only python3, pip and make.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= config.toml

.PHONY: run test lint check clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# An editable install writes no bytecode (a normal one does); without it, and with
	# PYTHONDONTWRITEBYTECODE set, every command would compile pqwatch from source first.
	$(PY) -m compileall -q pqwatch
	touch $(STAMP)

## Run the main job once with ./config.toml: migrate, poll, match, digests due, feeds.
run: $(STAMP)
	$(VENV)/bin/pqwatch --config $(CONFIG) run --once

## Run the whole test suite.
test: $(STAMP)
	$(PY) -m pytest -q

## Lint, format check and strict typing.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

check: test lint

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
