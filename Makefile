# The few verbs people expect. Everything runs from a project-local virtualenv (.venv), created
# on first use with pip's normal cache (so a second run installs from the cache, not the net).
#
#   make demo   install fsql, generate the example data, plan/apply/ls on sql_features/
#   make test   install fsql[test] and the system services the tests start, run every test
#   make lint   ruff + mypy on fsql/ and server/, and the layer contracts (import-linter)
#   make bench  run the benchmarks under bench/ (results: docs/benchmarks.md)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Per-test limit (pytest-timeout), in seconds: a hung server or deadlock fails one test, not CI.
TEST_TIMEOUT ?= 600
# Two pytest-xdist workers: most of the suite waits on JVMs, servers and subprocesses, so two
# workers nearly halve the wall time on 2 cores. Each test file stays on one worker (its fixtures
# are set up once), and so do all Spark-session tests and the benchmark smoke tests (see
# tests/conftest.py). TEST_WORKERS=0 runs everything in this one process, in file order.
TEST_WORKERS ?= 2
PYTEST_ARGS ?= -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=25
BENCH_ARGS ?=

.PHONY: demo test lint bench venv install-demo install-test system-deps clean

venv: $(PY)

# Debian's own python3 needs the python3-venv package for `-m venv`; install it when missing.
$(PY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); bash scripts/system-deps.sh python3-venv && \
	  $(PYTHON) -m venv $(VENV); }

install-demo: $(PY)
	$(PIP) install --quiet --disable-pip-version-check .

install-test: $(PY)
	$(PIP) install --quiet --disable-pip-version-check -e '.[test]'
	@# node-postgres and postgres.js for tests/server/test_clients_node.py (npm's cache is reused)
	cd tests/server/node && npm ci --no-audit --no-fund --prefer-offline --loglevel=error
	@# DuckDB's postgres extension is built for DuckDB 1.4.4 (fsql uses 2.0): a folder of its own
	@# for tests/server/test_clients_duckdb.py
	@[ -d build/duckdb-postgres/duckdb_ext ] || $(PIP) install --quiet --disable-pip-version-check \
	  --no-deps --target build/duckdb-postgres duckdb==1.4.4 duckdb-ext-postgres==1.4.4.20260205

demo: install-demo
	VENV=$(VENV) bash scripts/demo.sh

system-deps:
	bash scripts/system-deps.sh

test: system-deps install-test
	$(PY) -m pytest --timeout=$(TEST_TIMEOUT) $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check fsql server tests sql_features
	$(VENV)/bin/mypy fsql server
	$(VENV)/bin/lint-imports --no-logo

# BENCH_ARGS="--scale 0.01" gives a quick smoke run of every benchmark.
bench: install-test
	@if [ -f bench/setup.sh ]; then bash bench/setup.sh; fi
	@set -e; found=0; for script in bench/[!_]*.py; do \
	  [ -e "$$script" ] || continue; found=1; \
	  echo "==> $$script $(BENCH_ARGS)"; $(PY) "$$script" $(BENCH_ARGS); \
	done; [ $$found = 1 ] || echo "no benchmarks under bench/ yet"

clean:
	rm -rf $(VENV) sql_features/data sql_features/.fsql build dist *.egg-info
