# fragrance sync: the two commands are `make run` and `make test`.
# Both set up what they need on a fresh Debian machine (PostgreSQL server
# binaries, a Python 3.11 virtualenv) and work as root or as a normal user.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export DEBIAN_FRONTEND := noninteractive

.PHONY: help run test lint migrate postgres-binaries chromium bench bench-tools

help:
	@echo "make run    the whole system: PostgreSQL, migrations, CMS simulator, hook"
	@echo "make test   lint, then run every test against a throwaway PostgreSQL"
	@echo "make bench  ingest, merge, lag and memory benchmarks (bench/README.md)"

# PostgreSQL server binaries (initdb, postgres) for the throwaway test server.
postgres-binaries:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing PostgreSQL server binaries with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi

# Headless Chromium, for the status page test that renders it as a person sees it.
chromium:
	@if ! command -v chromium >/dev/null; then \
		echo "Installing chromium and chromium-driver with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

$(STAMP): requirements.txt requirements-dev.txt
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
		echo "Installing python3-venv with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv >/dev/null; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: postgres-binaries chromium $(STAMP) lint
	$(BIN)/pytest

# Migrations need the owner's login; the hook then runs as DATABASE_URL's login.
MIGRATE_DATABASE_URL ?= $(DATABASE_URL)

migrate: $(STAMP)
	@if [ -z "$(MIGRATE_DATABASE_URL)" ]; then \
		echo "Set DATABASE_URL (and MIGRATE_DATABASE_URL if migrations need another login)," \
		     "e.g. DATABASE_URL=postgresql://sync_hook_login@localhost/fragrancedb"; exit 2; fi
	$(BIN)/yoyo apply --batch --database "$$(echo '$(MIGRATE_DATABASE_URL)' | sed 's|^postgresql://|postgresql+psycopg://|')" migrations

# Embedded PostgreSQL under .local/ unless DATABASE_URL points elsewhere.
run: postgres-binaries $(STAMP)
	$(BIN)/python -m devtools.local_stack

# Load tools for the benchmark: Debian's wrk and valgrind (bench/instructions.py), and
# pgbench (in the PostgreSQL server package).
bench-tools: postgres-binaries
	@if ! command -v wrk >/dev/null || ! command -v valgrind >/dev/null; then \
		echo "Installing wrk and valgrind with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk valgrind >/dev/null; \
	fi
	@if ! command -v pgbench >/dev/null && ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then \
		echo "Installing pgbench (PostgreSQL server package) with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi

# Its own durable throwaway PostgreSQL, never the one on 5432; results in bench/results/.
BENCH_ARGS ?=
bench: bench-tools $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
