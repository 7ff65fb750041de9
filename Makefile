# Set-up is part of every target: a fresh machine needs only python3, pip and make.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= config.toml

.PHONY: run test lint check clean bench bench-generate bench-ingest bench-ingest-floor bench-search bench-matching \
	bench-digests bench-polling bench-memory bench-startup bench-scottish bench-watchpage bench-web \
	bench-postgres bench-senders

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

## Run the whole test suite, on SQLite and then again on PostgreSQL (a throw-away server the
## tests start: PostgreSQL must be installed, as .ci/run does; without it, and outside CI, the
## second run is left out and says so). The browser tests need axe-core, fetched once into the
## venv from the npm registry (offline, they are skipped; under CI they fail) and Chromium.
test: $(STAMP)
	-$(PY) -m tests.test_browser --fetch-axe
	$(PY) -m pytest -q
	@if [ -n "$$CI" ] || command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; \
	then $(PY) -m pytest -q --database postgresql; \
	else echo "PostgreSQL is not installed: the suite did not run on it (apt-get install postgresql)"; fi

## Lint, format check and strict typing.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

check: test lint

## Benchmarks (issue 8; figures in docs/PERFORMANCE.md). Each installs what it needs first.
## Results also go to $(BENCH_OUT)/NAME.json. `make bench` runs them all (about 30 minutes).
BENCH_OUT ?= /tmp/pqwatch-bench/results
bench-generate: $(STAMP)
	$(PY) -m bench.generate --n 600000 --out /tmp/pqwatch-bench/archive
bench-ingest: $(STAMP)
	$(PY) -m bench.ingest --n 100000 --repeat 2 --json $(BENCH_OUT)/ingest.json
bench-ingest-floor: $(STAMP)
	$(PY) -m bench.ingest --n 100000 --repeat 2 --floor --json $(BENCH_OUT)/ingest-floor.json
bench-search: $(STAMP)
	$(PY) -m bench.search --n 600000 --json $(BENCH_OUT)/search.json
bench-matching: $(STAMP)
	$(PY) -m bench.matching --events 10000 --watches 200 --archive 20000 \
		--json $(BENCH_OUT)/matching.json
bench-digests: $(STAMP)
	$(PY) -m bench.digests --subscribers 1000 --items 50 --json $(BENCH_OUT)/digests.json
bench-polling: $(STAMP)
	$(PY) -m bench.polling --json $(BENCH_OUT)/polling.json
bench-memory: $(STAMP)
	$(PY) -m bench.memory --n 100000 --json $(BENCH_OUT)/memory.json
bench-startup: $(STAMP)
	$(PY) -m bench.startup --runs 7 --json $(BENCH_OUT)/startup.json
bench-scottish: $(STAMP)
	$(PY) -m bench.scottish --n 5000 --json $(BENCH_OUT)/scottish.json
bench-watchpage: $(STAMP)
	$(PY) -m bench.watchpage --n 600000 --json $(BENCH_OUT)/watchpage.json
## The web app (issue 18): search and watch pages in process, then 50 clients for 60 s against
## `pqwatch serve`. On the watchpage archive (it builds it first when it is not there).
bench-web: $(STAMP)
	$(PY) -m bench.web --n 600000 --clients 50 --seconds 60 --json $(BENCH_OUT)/web.json
## PostgreSQL beside SQLite (issue 19): search on the bench-search archive and ingest of 100,000
## items, both databases in one run, on a throw-away server (PostgreSQL 15 installed; it is
## started with operator settings and stopped at the end).
bench-postgres: $(STAMP)
	$(PY) -m bench.postgres --n 600000 --ingest-n 100000 --parts search,ingest \
		--json $(BENCH_OUT)/postgres.json
## Two digest senders against one (issue 19): 1,000 x 50-item digests to a local SMTP server
## taking 10 ms a message, by one `pqwatch digest` and then two at once, each on a fresh copy
## of the same PostgreSQL database (a throw-away server, as bench-postgres's).
bench-senders: $(STAMP)
	$(PY) -m bench.senders --subscribers 1000 --items 50 --repeat 3 --json $(BENCH_OUT)/senders.json
bench: bench-startup bench-matching bench-digests bench-search bench-memory bench-polling \
	bench-ingest bench-scottish bench-watchpage bench-web

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
