"""The smart library's login reads the catalog and nothing else (migration 0019)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from conftest import ROOT, Server, load_smart_library, run_yoyo

from devtools.throwaway_pg import ThrowawayPostgresql

#: docker-compose's init scripts for the fragrance database (docker-entrypoint-initdb.d).
INIT_SCRIPTS = ROOT / "deploy" / "initdb"

ROLES = (
    "select rolname, rolcanlogin from pg_roles where rolname like 'smart\\_library\\_%' order by 1"
)


def _run_init_scripts(own: Server, dbname: str) -> None:
    """The logins' init scripts, run as the postgres image runs them on a new database."""
    environment = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(own.pg.settings["port"]),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": dbname,
        "HOOK_DB_PASSWORD": "hook_password",
        "SMART_LIBRARY_DB_PASSWORD": "smart_library_password",
    }
    for script in ("30-hook-login.sh", "31-smart-library-login.sh"):
        subprocess.run(
            ["bash", str(INIT_SCRIPTS / script)], env=environment, check=True, capture_output=True
        )


@pytest.fixture
def reader(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    url = server.url(dbname, user="smart_library_login")
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def test_the_smart_library_login_reads_every_fragrance(reader: psycopg.Connection) -> None:
    assert reader.execute("select count(*) from public.fragrances").fetchone() == (5000,)


@pytest.mark.parametrize(
    "statement",
    [
        "update public.fragrances set cost = 0",
        "insert into public.fragrances values (9999, 'x', 'y', 1, false)",
        "delete from public.fragrances",
        "truncate public.fragrances",
        # Row or table locks beyond reading: held open, each would stall the merge's writes.
        "select 1 from public.fragrances where fragrance_id = 1 for key share",
        "select 1 from public.fragrances where fragrance_id = 1 for share",
        "lock table public.fragrances in row share mode",
        "lock table public.fragrances in share mode",
        "select nextval('public.fragrances_fragrance_id_seq')",
        "create table public.intruder (id int)",
        "select * from sync.inbox",
        "select * from sync.fragrance_history",
        "select * from sync.cms_snapshot",
        "select * from sync.settings",
        "select * from sync.metrics()",
        "select sync.status_report()",
        "select sync.receive('\\x7b7d')",
        "select sync.repair()",
        "select sync.apply_pending(10)",
        "select sync.load_snapshot('[]')",
    ],
)
def test_the_smart_library_login_cannot(reader: psycopg.Connection, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), reader.transaction():
        reader.execute(statement)


def test_the_smart_library_login_can_reach_nothing_in_the_sync_schema(
    db: psycopg.Connection,
) -> None:
    reachable = db.execute("""
        select 'schema sync' where has_schema_privilege('smart_library_login', 'sync', 'usage')
        union all
        select 'table ' || c.relname from pg_class as c
        where c.relnamespace = 'sync'::regnamespace
          and has_table_privilege('smart_library_login', c.oid, 'select, insert, update, delete')
        union all
        select 'function ' || p.proname from pg_proc as p
        where p.pronamespace = 'sync'::regnamespace
          and has_function_privilege('smart_library_login', p.oid, 'execute')
    """).fetchall()
    assert reachable == []


def test_the_migration_creates_a_nologin_reader_and_its_login(db: psycopg.Connection) -> None:
    assert db.execute(ROLES).fetchall() == [
        ("smart_library_login", True),
        ("smart_library_reader", False),
    ]
    member = db.execute(
        "select pg_has_role('smart_library_login', 'smart_library_reader', 'member')"
    ).fetchone()
    assert member == (True,)


def test_the_reader_and_its_login_hold_select_on_the_catalog_and_no_other_grant(
    db: psycopg.Connection,
) -> None:
    """The login holds its own select too (0063), which no rollback revokes (ADR 0037)."""
    grants = db.execute("""
        select grantee, table_schema, table_name, privilege_type
        from information_schema.role_table_grants
        where grantee in ('smart_library_reader', 'smart_library_login')
        order by 1, 2, 3, 4
    """).fetchall()
    assert grants == [
        ("smart_library_login", "public", "fragrances", "SELECT"),
        ("smart_library_reader", "public", "fragrances", "SELECT"),
    ]


def test_both_roles_say_what_they_are_for(db: psycopg.Connection) -> None:
    comments = db.execute("""
        select rolname, shobj_description(oid, 'pg_authid') from pg_roles
        where rolname like 'smart\\_library\\_%' order by 1
    """).fetchall()
    assert [name for name, comment in comments if comment] == [
        "smart_library_login",
        "smart_library_reader",
    ]


def test_rollback_revokes_the_readers_select_and_keeps_roles_other_databases_use(
    server: Server, bare_dbname: str, adopted_template: str
) -> None:
    load_smart_library(server, bare_dbname)
    run_yoyo(server, bare_dbname, "apply")
    # 0019 alone: rolling back 0007 too would revoke sync_hook from sync_hook_login for the
    # whole cluster (role membership is not per database), and so from other tests' hooks.
    run_yoyo(server, bare_dbname, "rollback", "--revision", "0019-smart-library-reader")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        assert conn.execute("select to_regnamespace('sync')").fetchone() != (None,)
        assert conn.execute("select count(*) from public.fragrances").fetchone() == (5000,)
        can_read = conn.execute(
            "select has_table_privilege('smart_library_reader', 'public.fragrances', 'select'),"
            " has_table_privilege('smart_library_login', 'public.fragrances', 'select')"
        ).fetchone()
        # The login keeps its own select (0063, ADR 0037).
        assert can_read == (False, True)
        # The session's template databases still grant the reader: the roles stay.
        assert conn.execute(ROLES).fetchall() == [
            ("smart_library_login", True),
            ("smart_library_reader", False),
        ]


def test_rollback_drops_the_reader_and_keeps_the_login_when_no_other_database_uses_them() -> None:
    """The login keeps its own select on the catalog (ADR 0037); the reader role goes."""
    own = Server(ThrowawayPostgresql())  # a cluster of its own: no template grants the reader
    try:
        own.create_database("library")
        load_smart_library(own, "library")
        run_yoyo(own, "library", "apply")
        run_yoyo(own, "library", "rollback", "--all")
        with psycopg.connect(own.url("library")) as conn:
            assert conn.execute(ROLES).fetchall() == [("smart_library_login", True)]
            assert conn.execute("select count(*) from public.fragrances").fetchone() == (5000,)
    finally:
        own.pg.stop()


def test_the_smart_library_reads_the_catalog_before_the_sync_is_migrated() -> None:
    """Compose starts the platform's core on its database alone, not after our deploy.

    The init scripts run as the postgres image runs them, on a new database:
    the smart library's login reads the catalog at once, and a failed
    migration cannot keep the application from its fragrances. Migration
    0019 then finds the roles and the grant as it would have made them.
    """
    own = Server(ThrowawayPostgresql())  # roles are the cluster's: one of its own
    try:
        own.create_database("fragrancedb")
        load_smart_library(own, "fragrancedb")
        _run_init_scripts(own, "fragrancedb")
        library = own.url("fragrancedb", user="smart_library_login")
        with psycopg.connect(library) as conn:
            assert conn.execute("select count(*) from public.fragrances").fetchone() == (5000,)

        run_yoyo(own, "fragrancedb", "apply")
        with psycopg.connect(own.url("fragrancedb")) as conn:
            assert conn.execute(ROLES).fetchall() == [
                ("smart_library_login", True),
                ("smart_library_reader", False),
            ]
            grants = conn.execute("""
                select grantee, table_schema, table_name, privilege_type
                from information_schema.role_table_grants
                where grantee in ('smart_library_reader', 'smart_library_login')
            """).fetchall()
            assert sorted(grants) == [
                ("smart_library_login", "public", "fragrances", "SELECT"),
                ("smart_library_reader", "public", "fragrances", "SELECT"),
            ]
        with psycopg.connect(library) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from sync.inbox")
    finally:
        own.pg.stop()


def test_rolling_the_sync_back_leaves_the_smart_library_its_login_and_catalog() -> None:
    """Compose's init script made the login and its grant before the sync; a rollback keeps them.

    The landed rollback of 0019 revoked the reader's select and dropped both
    roles once no other database used them: after `yoyo rollback --all` the
    smart library could no longer log in (hostile review, ADR 0037).
    """
    own = Server(ThrowawayPostgresql())  # roles are the cluster's: one of its own
    try:
        own.create_database("fragrancedb")
        load_smart_library(own, "fragrancedb")
        _run_init_scripts(own, "fragrancedb")
        run_yoyo(own, "fragrancedb", "apply")
        run_yoyo(own, "fragrancedb", "rollback", "--all")
        library = own.url("fragrancedb", user="smart_library_login")
        with psycopg.connect(library) as conn:
            assert conn.execute("select count(*) from public.fragrances").fetchone() == (5000,)
        run_yoyo(own, "fragrancedb", "apply")
        with psycopg.connect(library) as conn:
            assert conn.execute("select count(*) from public.fragrances").fetchone() == (5000,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select count(*) from sync.inbox")
    finally:
        own.pg.stop()
