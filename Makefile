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

.PHONY: help run test lint migrate postgres-binaries pg-cron chromium docker-compose promtool bench bench-tools bench-profile

help:
	@echo "make run    the whole system: PostgreSQL, migrations, CMS simulator, sync, smart library"
	@echo "make test   lint, then run every test against a throwaway PostgreSQL"
	@echo "make migrate  apply the migrations to MIGRATE_DATABASE_URL (the owner's login; docs/operations.md)"
	@echo "make bench  ingest, merge, lag, memory and catalog check benchmarks (bench/README.md)"
	@echo "make bench-profile  the merge's time per statement, beside BENCH_ARGS=\"--baseline REF\""

# PostgreSQL server binaries (initdb, postgres) for the throwaway test server.
postgres-binaries:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing PostgreSQL server binaries with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi

# pg_cron, for the test that the scheduled jobs are registered with it (Debian's build for PostgreSQL 15).
pg-cron: postgres-binaries
	@if ! ls /usr/share/postgresql/*/extension/pg_cron.control >/dev/null 2>&1; then \
		echo "Installing pg_cron (postgresql-15-cron) with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends postgresql-15-cron >/dev/null; \
	fi

# Headless Chromium, for the status page test that renders it as a person sees it.
chromium:
	@if ! command -v chromium >/dev/null; then \
		echo "Installing chromium and chromium-driver with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

# Debian's docker-compose (v1), for the test that parses and resolves docker-compose.yaml
# with `docker-compose config`: no Docker engine needed, so none is installed (no recommends).
docker-compose:
	@if ! command -v docker-compose >/dev/null; then \
		echo "Installing docker-compose with apt-get..."; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; \
	fi

# promtool, for the tests of the alerting rules in deploy/prometheus/ (tests/test_alerts.py).
# It ships in Debian's prometheus package, but installing that package would also start a
# Prometheus server on port 9090 (the CMS simulator's port in `make run`) and enable it at
# boot, with a dozen JavaScript packages for its UI. So only the one binary is taken out of
# the package (apt-get download, no install) into .tools/bin; a promtool on PATH is used as is.
PROMTOOL := .tools/bin/promtool
promtool:
	@if ! command -v promtool >/dev/null && [ ! -x $(PROMTOOL) ]; then \
		echo "Extracting promtool from Debian's prometheus package (apt-get download)..."; \
		tmp=$$(mktemp -d) && \
		{ (cd "$$tmp" && apt-get download -qq prometheus 2>/dev/null) || \
		  { $(SUDO) apt-get update -qq && (cd "$$tmp" && apt-get download -qq prometheus); }; } && \
		dpkg-deb --fsys-tarfile "$$tmp"/prometheus_*.deb | tar -x -C "$$tmp" ./usr/bin/promtool && \
		mkdir -p $(dir $(PROMTOOL)) && install -m 755 "$$tmp/usr/bin/promtool" $(PROMTOOL) && \
		rm -rf "$$tmp"; \
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

test: postgres-binaries pg-cron chromium docker-compose promtool $(STAMP) lint
	$(BIN)/pytest

# Migrations need the owner's login; the hook then runs as DATABASE_URL's login.
MIGRATE_DATABASE_URL ?= $(DATABASE_URL)
# How long a migration may wait for a lock before the deploy fails (docs/operations.md,
# "Deploying"): a lock it waits for holds up every query on that table behind it.
# libpq reads PGOPTIONS; options already in it come after, so they win.
MIGRATE_LOCK_TIMEOUT ?= 2s
# What a site's role or database settings must not change for the deploy: yoyo keeps
# its record in the current schema (a search_path that puts sync first made it run
# every migration again), and writes it (read-only by default read as "Database locked").
MIGRATE_SESSION = -c search_path=public -c default_transaction_read_only=off
# The deploy's sessions, by name in pg_stat_activity: a yoyo_lock row with none of
# them is a killed deploy's (docs/operations.md, "Two deploys, and a killed one").
MIGRATE_APPLICATION_NAME = fragrance-sync deploy

migrate: $(STAMP)
	@if [ -z "$(MIGRATE_DATABASE_URL)" ]; then \
		echo "Set MIGRATE_DATABASE_URL to the database owner's login (CREATEROLE, not the hook's)," \
		     "e.g. make migrate MIGRATE_DATABASE_URL=postgresql://owner@localhost/fragrancedb"; exit 2; fi
	@PGOPTIONS="-c lock_timeout=$(MIGRATE_LOCK_TIMEOUT) $(MIGRATE_SESSION) $$PGOPTIONS" \
	PGAPPNAME="$(MIGRATE_APPLICATION_NAME)" \
	$(BIN)/python -m hook.migrate apply --batch --database "$$(echo '$(MIGRATE_DATABASE_URL)' | sed -E 's|^postgres(ql)?://|postgresql+psycopg://|')" migrations \
	|| { status=$$?; echo "make migrate failed. If the error above is 'canceling statement due to lock timeout'," \
	     "a session holds a table a migration changes, and the deploy gave up after MIGRATE_LOCK_TIMEOUT=$(MIGRATE_LOCK_TIMEOUT)" \
	     "rather than hold up every query on it: the migration that gave up changed nothing (those before it are in)." \
	     "Find the session (docs/operations.md, \"Deploying, and undoing a release\"), let it end, and run make migrate again." >&2; \
	     exit $$status; }

# Embedded PostgreSQL under .local/ unless DATABASE_URL points elsewhere.
run: postgres-binaries pg-cron $(STAMP)
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

# Where the merge's time goes, per statement, beside --baseline REF (bench/README.md).
bench-profile: postgres-binaries $(STAMP)
	$(BIN)/python bench/profile.py $(BENCH_ARGS)
