"""Shared fixtures: one throwaway PostgreSQL per test session, a database per test.

The session starts its own server (never the one on 127.0.0.1:5432), builds
two migrated template databases (one empty, one holding the adopted
5,000-row catalog) and gives each test a fresh clone, so tests are isolated
and do not re-run migrations.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from devtools.throwaway_pg import ThrowawayPostgresql
from hook.migrate import command_line

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
CATALOG_SQL = ROOT / "sql" / "catalog.sql"

# The contract's DDL, to the letter: what production already has (compose loads it too).
SMART_LIBRARY_DDL = (ROOT / "deploy" / "initdb" / "10-smart-library.sql").read_text()


@dataclass(frozen=True)
class Server:
    """The session's PostgreSQL server and how to reach its databases."""

    pg: ThrowawayPostgresql

    def url(self, dbname: str, user: str = "postgres") -> str:
        """A libpq URL for one database as one user."""
        port = self.pg.settings["port"]
        return f"postgresql://{user}@127.0.0.1:{port}/{dbname}"

    def yoyo_url(self, dbname: str, user: str = "postgres") -> str:
        """The same database as a yoyo URL (psycopg 3 driver)."""
        return self.url(dbname, user).replace("postgresql://", "postgresql+psycopg://", 1)

    def admin(self) -> psycopg.Connection:
        """An autocommit superuser connection to the maintenance database."""
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def create_database(self, name: str, template: str = "template0") -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def run_yoyo(
    server: Server, dbname: str, *command: str, user: str = "postgres"
) -> subprocess.CompletedProcess[str]:
    """Run yoyo's command line exactly as the deploy pipeline does (hook.migrate, as `user`)."""
    argv = command_line(server.url(dbname, user), MIGRATIONS, *command)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def load_smart_library(server: Server, dbname: str) -> None:
    """Create the production table by its DDL and load the generated catalog."""
    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        conn.execute(SMART_LIBRARY_DDL)
        conn.execute(CATALOG_SQL.read_text())


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    pg = ThrowawayPostgresql()
    try:
        yield Server(pg)
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def empty_template(server: Server) -> str:
    """A database migrated from nothing."""
    server.create_database("tpl_empty")
    run_yoyo(server, "tpl_empty", "apply")
    return "tpl_empty"


@pytest.fixture(scope="session")
def adopted_template(server: Server) -> str:
    """A database that had the smart library's table and catalog before migrating."""
    server.create_database("tpl_adopted")
    load_smart_library(server, "tpl_adopted")
    run_yoyo(server, "tpl_adopted", "apply")
    return "tpl_adopted"


_clone_numbers = itertools.count()


def _clone(server: Server, template: str, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    name = f"t{next(_clone_numbers)}_{slug}"
    server.create_database(name, template)
    try:
        yield name
    finally:
        server.drop_database(name)


@pytest.fixture
def dbname(server: Server, adopted_template: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh clone of the adopted, migrated database for one test."""
    yield from _clone(server, adopted_template, request)


@pytest.fixture
def empty_dbname(
    server: Server, empty_template: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh clone of the migrated empty database for one test."""
    yield from _clone(server, empty_template, request)


@pytest.fixture
def bare_dbname(server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with nothing in it, not even migrations."""
    yield from _clone(server, "template0", request)


@pytest.fixture(scope="session")
def cms_template(server: Server) -> str:
    """The CMS's own database: its table and the 5,000-row catalog, no migrations."""
    server.create_database("tpl_cms")
    load_smart_library(server, "tpl_cms")
    return "tpl_cms"


@pytest.fixture
def cms_url(server: Server, cms_template: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh clone of the CMS's database for one test (for the CMS simulator), as a URL."""
    for name in _clone(server, cms_template, request):
        yield server.url(name)


@pytest.fixture
def db(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    """A superuser autocommit connection to this test's adopted database."""
    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def shared_dbname(
    server: Server, adopted_template: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """One clone of the adopted database for a whole module of rolled-back tests."""
    yield from _clone(server, adopted_template, request)


@pytest.fixture
def tx(server: Server, shared_dbname: str) -> Iterator[psycopg.Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with psycopg.connect(server.url(shared_dbname)) as conn:
        try:
            yield conn
        finally:
            conn.rollback()


@pytest.fixture
def dba(server: Server, dbname: str, db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An autocommit connection as alice, a login granted sync_dba, to this test's database."""
    db.execute("""
        do $$ begin
            if not exists (select from pg_roles where rolname = 'alice') then
                create role alice login;
            end if;
        end $$
    """)
    db.execute("grant sync_dba to alice")
    with psycopg.connect(server.url(dbname, user="alice"), autocommit=True) as conn:
        yield conn


@pytest.fixture
def own_server() -> Iterator[Server]:
    """A PostgreSQL server of this test's own (to stop and start), with database ``test``.

    ``test`` holds the smart library's catalog and every migration.
    """
    pg = ThrowawayPostgresql()
    own = Server(pg)
    try:
        load_smart_library(own, "test")
        run_yoyo(own, "test", "apply")
        yield own
    finally:
        pg.stop()
