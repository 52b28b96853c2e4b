"""Migrations adopt the smart library's table, own only the sync schema, and roll back cleanly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from catalog import describe_catalog
from conftest import MIGRATIONS, ROOT, Server, load_smart_library, run_yoyo
from helpers import body, store
from processes import start_hook, stop_service, wait_for_empty_spool

from devtools.throwaway_pg import ThrowawayPostgresql, ThrowawayStandby

CATALOG_CHECKSUM = """
    select count(*), md5(string_agg(f::text, '|' order by fragrance_id))
    from public.fragrances as f
"""


def test_the_generated_catalog_has_the_contracts_shape(server: Server, bare_dbname: str) -> None:
    load_smart_library(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname)) as conn:
        stats = conn.execute("""
            select count(*), min(fragrance_id), max(fragrance_id), max(length(name)),
                   max(length(description)), bool_and(description like '%  '),
                   min(cost), max(cost), bool_or(forbidden),
                   count(*) - count(distinct name)
            from public.fragrances
        """).fetchone()
    assert stats is not None
    count, lo, hi, name_len, desc_len, two_spaces, cost_lo, cost_hi, forbidden, repeats = stats
    assert (count, lo, hi) == (5000, 0, 4999)
    assert name_len <= 25 and desc_len <= 83 and two_spaces
    assert cost_lo >= 0 and cost_hi <= 100 and not forbidden
    assert repeats > 500


def test_apply_on_an_adopted_database_changes_no_existing_row(
    server: Server, bare_dbname: str
) -> None:
    load_smart_library(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname)) as conn:
        before = conn.execute(CATALOG_CHECKSUM).fetchone()
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        assert conn.execute(CATALOG_CHECKSUM).fetchone() == before
        assert conn.execute("select count(*) from sync.fragrance_history").fetchone() == (0,)


def test_apply_on_an_empty_database_creates_the_contracts_table(
    server: Server, bare_dbname: str
) -> None:
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        columns = conn.execute("""
            select column_name, data_type, character_maximum_length, column_default
            from information_schema.columns
            where table_schema = 'public' and table_name = 'fragrances'
            order by ordinal_position
        """).fetchall()
    assert [c[:3] for c in columns] == [
        ("fragrance_id", "integer", None),
        ("name", "character varying", 150),
        ("description", "character varying", 1024),
        ("cost", "numeric", None),
        ("forbidden", "boolean", None),
    ]
    assert columns[0][3].startswith("nextval(")
    assert columns[4][3] == "false"


def test_rollback_keeps_the_smart_librarys_table_and_rows(server: Server, bare_dbname: str) -> None:
    load_smart_library(server, bare_dbname)
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        conn.execute("select sync.receive(%s)", [b'{"fragrance_id": 7, "name": "Changed"}'])
        after_sync = conn.execute(CATALOG_CHECKSUM).fetchone()
    run_yoyo(server, bare_dbname, "rollback", "--all")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        assert conn.execute(CATALOG_CHECKSUM).fetchone() == after_sync
        assert conn.execute("select to_regnamespace('sync')").fetchone() == (None,)
        triggers = conn.execute(
            "select count(*) from pg_trigger where tgrelid = 'public.fragrances'::regclass"
            " and not tgisinternal"
        ).fetchone()
        assert triggers == (0,)


def test_rollback_removes_everything_ours_while_findings_of_later_rules_are_open(
    server: Server, bare_dbname: str
) -> None:
    # Hand writes that break the rules migrations added after 0021: each opens a finding
    # that references its rule, which the rule's rollback deletes.
    load_smart_library(server, bare_dbname)
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        conn.execute(
            "update public.fragrances set name = 'Rose' || chr(8203) where fragrance_id = 1"
        )
        conn.execute(
            "update public.fragrances set description = 'a' || chr(8203) || 'b'"
            " where fragrance_id = 2"
        )
        conn.execute(
            "update public.fragrances set name = 'Rose' || chr(769) where fragrance_id = 3"
        )
        conn.execute(
            "update public.fragrances set name = 'R' || chr(1086) || 'se' where fragrance_id = 4"
        )
        conn.execute(
            "update public.fragrances set name = chr(769) || 'Rose' where fragrance_id = 5"
        )
        conn.execute(
            "update public.fragrances set name = 'Ros' || chr(65533) where fragrance_id = 6"
        )
        conn.execute(
            "update public.fragrances set description = 'Cre' || chr(768) || 'me'"
            " where fragrance_id = 7"
        )
        opened = {row[0] for row in conn.execute("select rule from sync.open_finding")}
        assert {
            "description.invisible_character",
            "name.invisible_character",
            "name.not_normalized",
            "name.mixed_script",
            "name.leading_mark",
            "name.replacement_character",
            "description.not_normalized",
        } <= opened
        after_sync = conn.execute(CATALOG_CHECKSUM).fetchone()
    run_yoyo(server, bare_dbname, "rollback", "--all")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        assert conn.execute("select to_regnamespace('sync')").fetchone() == (None,)
        assert conn.execute(CATALOG_CHECKSUM).fetchone() == after_sync


def test_apply_rollback_apply_round_trips_on_an_empty_database(
    server: Server, bare_dbname: str
) -> None:
    run_yoyo(server, bare_dbname, "apply")
    run_yoyo(server, bare_dbname, "rollback", "--all")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        assert conn.execute("select to_regnamespace('sync')").fetchone() == (None,)
        assert conn.execute("select to_regclass('public.fragrances')").fetchone() is not None
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        receipt = conn.execute(
            "select status from sync.receive(%s)",
            [
                body(
                    {
                        "fragrance_id": 1,
                        "name": "N",
                        "description": "",
                        "cost": 1,
                        "forbidden": False,
                    }
                )
            ],
        ).fetchone()
    assert receipt == ("applied",)


def test_every_object_of_ours_carries_a_comment(db: psycopg.Connection) -> None:
    missing = db.execute("""
        with ours as (
            select oid from pg_namespace where nspname in ('sync', 'sync_private', 'sync_remote')
        )
        select 'schema ' || n.nspname from pg_namespace as n join ours using (oid)
        where obj_description(n.oid, 'pg_namespace') is null
        union all
        select 'relation ' || c.oid::regclass
        from pg_class as c join ours on ours.oid = c.relnamespace
        where c.relkind in ('r', 'v', 'p') and obj_description(c.oid, 'pg_class') is null
        union all
        select 'column ' || c.oid::regclass || '.' || a.attname
        from pg_class as c join ours on ours.oid = c.relnamespace
        join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.relkind in ('r', 'v', 'p', 'c') and col_description(c.oid, a.attnum) is null
        union all
        select 'function ' || p.oid::regprocedure
        from pg_proc as p join ours on ours.oid = p.pronamespace
        where obj_description(p.oid, 'pg_proc') is null
          and not exists (select from pg_depend as d  -- postgres_fdw's own, in sync_remote
                          where d.objid = p.oid and d.classid = 'pg_proc'::regclass
                            and d.deptype = 'e')
        union all
        select 'type ' || t.oid::regtype
        from pg_type as t join ours on ours.oid = t.typnamespace
        join pg_class as c on c.oid = t.typrelid and c.relkind = 'c'
        where obj_description(t.oid, 'pg_type') is null
        union all
        select 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass
        from pg_trigger as t
        join pg_proc as p on p.oid = t.tgfoid
        join ours on ours.oid = p.pronamespace
        where not t.tgisinternal and obj_description(t.oid, 'pg_trigger') is null
        union all
        -- A sequence and a constraint are what a DBA meets in an error
        -- (nextval, a violated check or key): psql's describe says what each is for.
        select 'sequence ' || c.oid::regclass
        from pg_class as c join ours on ours.oid = c.relnamespace
        where c.relkind = 'S' and obj_description(c.oid, 'pg_class') is null
        union all
        -- An index is what a DBA meets in a plan and in psql's index list: what it is for.
        select 'index ' || c.oid::regclass
        from pg_class as c join ours on ours.oid = c.relnamespace
        where c.relkind in ('i', 'I') and obj_description(c.oid, 'pg_class') is null
        union all
        -- Not-null constraints (PostgreSQL 18 lists them) are their column's.
        select 'constraint ' || k.conname || ' on ' || k.conrelid::regclass
        from pg_constraint as k join ours on ours.oid = k.connamespace
        where k.contype <> 'n' and obj_description(k.oid, 'pg_constraint') is null
        order by 1
    """).fetchall()
    assert missing == []


def test_security_definer_functions_lock_their_search_path(db: psycopg.Connection) -> None:
    unlocked = db.execute("""
        select proname from pg_proc
        where pronamespace = 'sync'::regnamespace and prosecdef
          and not exists (select from unnest(proconfig) as c where c like 'search_path=%')
    """).fetchall()
    assert unlocked == []


# --- The database code by concern (ADR 0015) ----------------------------------------------

DATABASE_CODE = ROOT / "db"
LANDED_AT_0018 = [
    path
    for path in sorted(MIGRATIONS.iterdir())
    if re.fullmatch(r"00(0[1-9]|1[0-8])-.*\.sql|post-apply\.sql", path.name)
]


def migrate_to_0018(server: Server, dbname: str, tmp_path: Path) -> None:
    """Bring a database to the state every deployment has today: the landed 0001 to 0018."""
    landed = tmp_path / "migrations-0018"
    landed.mkdir()
    for path in LANDED_AT_0018:
        shutil.copy(path, landed / path.name)
    yoyo = Path(sys.executable).with_name("yoyo")
    done = subprocess.run(
        [str(yoyo), "apply", "--batch", "--database", server.yoyo_url(dbname), str(landed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def use_the_0018_sync(conn: psycopg.Connection) -> None:
    """Leave rows of every kind through the 0018 API.

    Applied, rejected, pending, reverted, repaired, created, and a hand edit.
    """
    conn.execute(
        "select sync.receive(%s)", [body({"fragrance_id": 7, "cost": 41, "name": "Seven"})]
    )
    conn.execute("select sync.receive(%s)", [body({"fragrance_id": 8, "cost": -1})])
    conn.execute("select sync.receive(%s)", [body({"fragrance_id": 9, "name": "Nine"})])
    conn.execute(
        "select sync.receive(%s)",
        [
            body(
                {
                    "fragrance_id": 90000,
                    "name": "New",
                    "description": "",
                    "cost": 1,
                    "forbidden": True,
                }
            )
        ],
    )
    conn.execute("select * from sync.revert(3)")
    conn.execute("update public.fragrances set description = 'by hand' where fragrance_id = 11")
    conn.execute(
        "select sync.load_snapshot(jsonb_build_array(jsonb_build_object("
        "'fragrance_id', 12, 'name', 'Twelve', 'description', '', 'cost', 3, 'forbidden', false)))"
    )
    conn.execute("select * from sync.repair()")
    conn.execute("update sync.settings set apply_on_receipt = false")
    conn.execute("select sync.receive(%s)", [body({"fragrance_id": 13, "cost": 77})])
    conn.execute("update sync.settings set apply_on_receipt = true")


ROWS = {
    "fragrances": (
        "select md5(string_agg(f::text, '|' order by fragrance_id)) from public.fragrances as f"
    ),
    "inbox": """
        select md5(string_agg(row(id, received_at, body, payload, content_type, client_addr,
                                  user_agent, fragrance_id, status, reasons, applied_fields,
                                  stale_fields, attempts, processed_at, discarded_by,
                                  discard_reason, spool_key)::text, '|' order by id))
        from sync.inbox""",
    # The columns 0018 had: the upgrade keeps each of them as it was.
    "history": """
        select md5(string_agg(row(id, fragrance_id, operation, old_values, new_values, inbox_id,
                                  db_user, changed_at, transaction_id)::text, '|' order by id))
        from sync.fragrance_history""",
}
CODE = ("function ", "aggregate ", "view ", "trigger ", "type ")


def test_a_database_at_0018_upgrades_in_place_to_the_catalog_of_a_fresh_install(
    server: Server, bare_dbname: str, empty_dbname: str, tmp_path: Path
) -> None:
    load_smart_library(server, bare_dbname)
    migrate_to_0018(server, bare_dbname, tmp_path)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        use_the_0018_sync(conn)
        before = {name: conn.execute(query).fetchone() for name, query in ROWS.items()}
        clock = conn.execute(
            "select fragrance_id, name_inbox_id, description_inbox_id, cost_inbox_id,"
            " forbidden_inbox_id from sync.field_version order by 1"
        ).fetchall()

    run_yoyo(server, bare_dbname, "apply")

    with psycopg.connect(server.url(bare_dbname), autocommit=True) as upgraded:
        assert {name: upgraded.execute(query).fetchone() for name, query in ROWS.items()} == before
        assert (
            upgraded.execute(
                "select fragrance_id, coalesce((versions->>'name')::bigint, 0),"
                " coalesce((versions->>'description')::bigint, 0),"
                " coalesce((versions->>'cost')::bigint, 0),"
                " coalesce((versions->>'forbidden')::bigint, 0) from sync.field_version order by 1"
            ).fetchall()
            == clock
        )
        origins = upgraded.execute("select origin, count(*) from sync.inbox group by 1 order by 1")
        assert origins.fetchall() == [("repair", 1), ("revert", 1), ("webhook", 5)]
        with psycopg.connect(server.url(empty_dbname)) as fresh:
            assert describe_catalog(upgraded) == describe_catalog(fresh)
        # And it works: the delivery left pending at 0018 is applied by today's code.
        assert upgraded.execute("select applied from sync.apply_pending()").fetchone() == (1,)


def test_rolling_back_the_move_to_db_restores_the_0018_code_exactly(
    server: Server, bare_dbname: str, tmp_path: Path
) -> None:
    migrate_to_0018(server, bare_dbname, tmp_path)
    with psycopg.connect(server.url(bare_dbname)) as conn:
        at_0018 = [line for line in describe_catalog(conn) if line.startswith(CODE)]
    run_yoyo(server, bare_dbname, "apply")
    run_yoyo(server, bare_dbname, "rollback", "--revision", "0022-code-by-concern")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        assert [line for line in describe_catalog(conn) if line.startswith(CODE)] == at_0018
        clock = conn.execute(
            "select string_agg(attname, ',' order by attnum) from pg_attribute"
            " where attrelid = 'sync.field_version'::regclass and attnum > 0 and not attisdropped"
        ).fetchone()
        assert clock == (
            "fragrance_id,name_inbox_id,description_inbox_id,cost_inbox_id,forbidden_inbox_id",
        )


def test_a_fresh_install_rolled_back_before_the_move_to_db_lets_public_execute_nothing(
    server: Server, bare_dbname: str
) -> None:
    """0022 keeps the 0018 code, grants included, as it finds them, and its rollback replays them.

    Installed in one run, 0018 to 0022 came before post-apply.sql's revoke:
    the kept code granted EXECUTE to PUBLIC on sync.receive_many and
    sync.receive_spooled (security definer) and left a dozen internals of
    0018 at PostgreSQL's default, so a rollback made them every login's
    with usage on sync (a DBA's, a site's monitor's) until the next apply.
    """
    run_yoyo(server, bare_dbname, "apply")
    run_yoyo(server, bare_dbname, "rollback", "--revision", "0022-code-by-concern")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        public = conn.execute("""
            select p.oid::regprocedure::text from pg_catalog.pg_proc as p
            where p.pronamespace = 'sync'::regnamespace
              and has_function_privilege('public', p.oid, 'execute')
            order by 1
        """).fetchall()
        assert conn.execute(
            "select count(*) from pg_proc where proname = 'receive_many'"
        ).fetchone()[0]
    assert public == []


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_make_migrate_takes_either_libpq_url_scheme(
    server: Server, bare_dbname: str, scheme: str
) -> None:
    url = server.url(bare_dbname).replace("postgresql://", f"{scheme}://", 1)
    done = subprocess.run(
        ["make", "-s", "migrate", f"DATABASE_URL={url}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(server.url(bare_dbname)) as conn:
        migrated = conn.execute("select to_regclass('sync.inbox') is not null").fetchone()
    assert migrated == (True,)


# The latest numbered migration that alters a table, and that table. A later one that
# only inserts rows and sets comments (0042 and 0043 add rules) takes no lock a reader's
# open transaction holds up: rolled back and applied behind a reader, it would not show
# the lock timeout. (0045 drops and builds an index of public.fragrances, which takes the
# table's strongest lock: a reader of that table holds it up, and lock_timeout lets it go.)
LATEST_MIGRATION = "0072-the-field-clock-keeps-a-repairs-position"
ALTERED_BY_IT = "sync.field_version"
# An ALTER TABLE, but to set a trigger aside for one statement (0031, 0036, 0039, 0040 do).
ALTERS_A_TABLE = re.compile(r"^\s*alter table\s+\S+\s+(?!(disable|enable) trigger)", re.MULTILINE)


def make_migrate(url: str) -> subprocess.CompletedProcess[str]:
    """The deploy pipeline's `make migrate`; a migration that waits forever fails the test."""
    try:
        return subprocess.run(
            ["make", "-s", "migrate", f"MIGRATE_DATABASE_URL={url}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
    except subprocess.TimeoutExpired as waited:
        raise AssertionError(
            "make migrate was still waiting for its lock after 120 s; every query on"
            f" {ALTERED_BY_IT} waited behind it"
        ) from waited


def test_make_migrate_behind_an_open_transaction_fails_fast_and_can_be_run_again(
    server: Server, bare_dbname: str
) -> None:
    """A migration's lock queued behind a reader stalls every query on the table: it gives up."""
    altering = sorted(
        p.stem
        for p in Path(MIGRATIONS).glob("[0-9][0-9][0-9][0-9]-*.sql")
        if not p.stem.endswith(".rollback") and ALTERS_A_TABLE.search(p.read_text())
    )
    assert altering[-1] == LATEST_MIGRATION, (
        "name the latest migration that alters a table, and the table"
    )
    run_yoyo(server, bare_dbname, "apply")
    run_yoyo(server, bare_dbname, "rollback", "--revision", LATEST_MIGRATION)
    with psycopg.connect(server.url(bare_dbname)) as reader:
        # A DBA's psql: a read of the table the migration alters, left open.
        reader.execute(f"select count(*) from {ALTERED_BY_IT}")
        done = make_migrate(server.url(bare_dbname))
        assert done.returncode != 0
        assert "canceling statement due to lock timeout" in done.stderr, done.stderr
        assert "let it end, and run make migrate again" in done.stderr
        # Nothing of it stays: run again once the reader is done.
        assert reader.execute(
            "select count(*) from _yoyo_migration where migration_id = %s", [LATEST_MIGRATION]
        ).fetchone() == (0,)
    done = make_migrate(server.url(bare_dbname))
    assert done.returncode == 0, done.stderr
    with psycopg.connect(server.url(bare_dbname)) as conn:
        applied = conn.execute(
            "select count(*) from _yoyo_migration where migration_id = %s", [LATEST_MIGRATION]
        ).fetchone()
    assert applied == (1,)


def test_the_deploy_command_keeps_a_sites_session_settings_out_of_its_way_by_itself(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """Only make migrate and compose set the deploy's PGOPTIONS; make run did not.

    Against a database read-only by default, with `search_path = sync, public`,
    `python -m hook.migrate` without them said "Database locked" after 10 s:
    the command sets them itself now, before any the caller gives.
    """
    db.execute(f"alter database {dbname} set default_transaction_read_only = on")
    db.execute(f"alter database {dbname} set search_path = sync, public")
    assert "PGOPTIONS" not in os.environ
    run_yoyo(server, dbname, "apply")
    assert db.execute(
        "select table_schema, count(*) from information_schema.tables"
        " where table_name in ('_yoyo_migration', '_yoyo_log', '_yoyo_version', 'yoyo_lock')"
        " group by 1"
    ).fetchall() == [("public", 4)]


def test_make_migrate_finds_its_record_where_the_databases_search_path_puts_sync_first(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The deploy finds yoyo's record, kept in the current schema, wherever that is.

    With a site's `search_path = sync, public` (so a DBA types `health`), the
    second deploy looked for yoyo's tables in schema sync, made new ones there,
    ran every migration again from 0001 and failed at 0002 with `relation
    "settings" already exists`, leaving yoyo's tables in our API schema.
    """
    db.execute(f"alter database {dbname} set search_path = sync, public")
    done = make_migrate(server.url(dbname))
    assert done.returncode == 0, done.stderr
    assert db.execute(
        "select table_schema, count(*) from information_schema.tables"
        " where table_name in ('_yoyo_migration', '_yoyo_log', '_yoyo_version', 'yoyo_lock')"
        " group by 1"
    ).fetchall() == [("public", 4)]


def test_make_migrate_writes_where_the_database_is_read_only_by_default(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """A site's `default_transaction_read_only = on` failed the deploy after 10 s as a lock.

    yoyo could not write its lock row and said "Database locked (run yoyo
    break-lock to remove this lock)": no lock was held, and break-lock fails the same way.
    """
    db.execute(f"alter database {dbname} set default_transaction_read_only = on")
    done = make_migrate(server.url(dbname))
    assert done.returncode == 0, done.stderr
    assert "break-lock" not in done.stderr


def test_make_migrate_against_a_standby_says_to_deploy_against_the_primary() -> None:
    """A standby (read-only, in recovery) refused yoyo's lock row: "Database locked".

    No lock was held, and break-lock fails the same way: the deploy says what the server is.
    """
    primary = ThrowawayPostgresql()
    standby: ThrowawayStandby | None = None
    try:
        load_smart_library(Server(primary), "test")
        run_yoyo(Server(primary), "test", "apply")
        standby = ThrowawayStandby(primary)
        done = make_migrate(Server(standby).url("test"))
        assert done.returncode != 0
        assert (
            "this server is a standby (read-only, in recovery): deploy against the primary"
            in done.stderr
        ), done.stderr
        assert "Database locked" not in done.stderr
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


# A login of no standing, and yoyo's lock table as it makes it, with a trigger that
# records who ran it (as test_search_path's planted objects do).
PLANTED_LOCK_TABLE = """
    create table public.ran_as (role text);
    grant insert on public.ran_as to public;
    create table public.yoyo_lock (locked int default 1 not null primary key, ctime timestamp,
                                   pid int not null);
    grant all on public.yoyo_lock to public;
    create function public.record_who() returns trigger language plpgsql as $$
    begin
        insert into public.ran_as values (current_user);
        return new;
    end $$;
    create trigger record_who before insert on public.yoyo_lock
        for each row execute function public.record_who();
"""


def _stranger_in(server: Server, dbname: str) -> None:
    with server.admin() as admin:
        admin.execute("""
            do $$ begin
                if not exists (select from pg_roles where rolname = 'mallory') then
                    create role mallory login;
                end if;
            end $$
        """)


def test_make_migrate_refuses_a_database_where_every_login_may_create_in_public(
    server: Server, bare_dbname: str
) -> None:
    """Schema public as before PostgreSQL 15: a function planted there could match better."""
    load_smart_library(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as su:
        su.execute("grant create on schema public to public")
    done = make_migrate(server.url(bare_dbname))
    assert done.returncode != 0
    assert (
        "every login may create in schema public, where this deploy looks up names:"
        " revoke create on schema public from public; then deploy"
    ) in done.stderr, done.stderr


def test_make_migrate_runs_nothing_a_stranger_planted_as_yoyos_lock_table(
    server: Server, bare_dbname: str
) -> None:
    """A login that could create in public made yoyo_lock first: the deploy ran its trigger.

    As a superuser, the trigger could make its login one (hostile review).
    """
    load_smart_library(server, bare_dbname)
    _stranger_in(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as su:
        su.execute("grant create on schema public to public")
        su.execute("set role mallory")
        su.execute(PLANTED_LOCK_TABLE)
        su.execute("reset role")
        su.execute("revoke create on schema public from public")
        done = make_migrate(server.url(bare_dbname))
        assert su.execute("select role from public.ran_as").fetchall() == []
    assert done.returncode != 0
    refusal = "public.yoyo_lock, which yoyo would write, belongs to mallory"
    assert refusal in done.stderr, done.stderr


PLANTED_OPERATOR = """
    create table public.ran_as (role text);
    grant insert on public.ran_as to public;
    create function public.varchar_eq(varchar, varchar) returns boolean language sql as $$
        insert into public.ran_as values (current_user);
        select pg_catalog.texteq($1::text, $2::text);
    $$;
    create operator public.= (function = public.varchar_eq, leftarg = varchar,
                              rightarg = varchar);
"""


def test_make_migrate_runs_no_operator_a_stranger_planted_before_create_was_revoked(
    server: Server, bare_dbname: str
) -> None:
    """Public was open, a login planted an `=` there; the site revoked CREATE as told and deployed.

    The refusal said "revoke create on schema public from public; then deploy",
    but what was planted stayed: `=` of (varchar, varchar) matches yoyo's
    varchar migration_id better than pg_catalog's, and post-apply's delete
    ran it as the deploying login (hostile review).
    """
    load_smart_library(server, bare_dbname)
    _stranger_in(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as su:
        su.execute("grant create on schema public to public")
        su.execute("set role mallory")
        su.execute(PLANTED_OPERATOR)
        su.execute("reset role")
        su.execute("revoke create on schema public from public")
        done = make_migrate(server.url(bare_dbname))
        assert su.execute("select role from public.ran_as").fetchall() == []
    assert done.returncode != 0
    refusal = (
        "operator public.=(character varying,character varying) belongs to mallory,"
        " and this deploy looks up names in public"
    )
    assert refusal in done.stderr, done.stderr


def test_make_migrate_refuses_a_database_where_a_stranger_may_create_in_public(
    server: Server, bare_dbname: str
) -> None:
    """CREATE granted to one login by name, not to PUBLIC: it could plant while the deploy runs."""
    load_smart_library(server, bare_dbname)
    _stranger_in(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as su:
        su.execute("grant create on schema public to mallory")
    done = make_migrate(server.url(bare_dbname))
    assert done.returncode != 0
    assert (
        "mallory may create in schema public, where this deploy looks up names:"
        " revoke create on schema public from mallory; then deploy"
    ) in done.stderr, done.stderr


# A trigger on the table the sync writes, and its function, in a schema of the stranger's own.
PLANTED_TRIGGER = """
    create table mallory.ran_as (role text);
    grant usage on schema mallory to public;
    grant insert on mallory.ran_as to public;
    create function mallory.record() returns trigger language plpgsql as $$
    begin insert into mallory.ran_as values (current_user); return null; end $$;
    create trigger watch after insert or update or delete on public.fragrances
        for each statement execute function mallory.record();
"""


def _mallorys_schema(server: Server, dbname: str) -> None:
    _stranger_in(server, dbname)
    with psycopg.connect(server.url(dbname), autocommit=True) as su:
        su.execute("create schema mallory authorization mallory")


def test_make_migrate_refuses_a_fragrances_table_a_stranger_owns(
    server: Server, bare_dbname: str
) -> None:
    """The sync's code runs as the deploying login and writes public.fragrances.

    Deployed by a superuser onto a table another login owned (the smart
    library's, say), every merge ran the trigger that owner added, as the
    superuser: the owner could make itself one (hostile review).
    """
    load_smart_library(server, bare_dbname)
    _mallorys_schema(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as su:
        su.execute("alter table public.fragrances owner to mallory")
        su.execute("set role mallory")
        su.execute(PLANTED_TRIGGER)
        su.execute("reset role")
        done = make_migrate(server.url(bare_dbname))
        assert su.execute("select to_regnamespace('sync')").fetchone() == (None,)
    assert done.returncode != 0
    assert (
        "public.fragrances belongs to mallory, and the sync's code writes it as postgres,"
        " who runs the triggers its owner adds there: deploy as mallory"
        ' (docs/operations.md, "What the deploying login needs"),'
        " or alter table public.fragrances owner to postgres; then deploy"
    ) in done.stderr, done.stderr


def test_make_migrate_refuses_a_trigger_a_stranger_planted_on_fragrances(
    server: Server, bare_dbname: str
) -> None:
    """TRIGGER on the table lets a login that does not own it add one; it stays once revoked."""
    load_smart_library(server, bare_dbname)
    _mallorys_schema(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as su:
        su.execute("grant trigger on public.fragrances to mallory")
        done = make_migrate(server.url(bare_dbname))
        assert done.returncode != 0
        assert (
            "mallory may create triggers on public.fragrances, which the sync's code writes:"
            " revoke trigger on public.fragrances from mallory; then deploy"
        ) in done.stderr, done.stderr
        su.execute("set role mallory")
        su.execute(PLANTED_TRIGGER)
        su.execute("reset role")
        su.execute("revoke trigger on public.fragrances from mallory")
        done = make_migrate(server.url(bare_dbname))
        assert done.returncode != 0
        assert (
            "trigger watch on public.fragrances runs function mallory.record(), which belongs to"
            " mallory: drop trigger watch on public.fragrances, or check who made it and why;"
            " then deploy"
        ) in done.stderr, done.stderr
        su.execute("drop trigger watch on public.fragrances")
        done = make_migrate(server.url(bare_dbname))
        assert done.returncode == 0, done.stderr
        assert su.execute("select * from mallory.ran_as").fetchall() == []


def test_make_migrate_refuses_a_schema_sync_a_stranger_made_before_the_first_deploy(
    server: Server, bare_dbname: str
) -> None:
    """A login that could create in the database made schema sync first; the deploy filled it.

    Its owner may drop and create functions there: it replaced
    sync.inbox_position(), which the history trigger calls as the deploying
    login, and a DBA's hand edit of a fragrance made it a superuser
    (hostile review). The deploy took the schema's owner for the sync's.
    """
    load_smart_library(server, bare_dbname)
    _stranger_in(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as su:
        su.execute(f'grant create on database "{bare_dbname}" to mallory')
        su.execute("set role mallory")
        su.execute("create schema sync")
        su.execute("reset role")
        su.execute(f'revoke create on database "{bare_dbname}" from mallory')
        done = make_migrate(server.url(bare_dbname))
        assert su.execute("select to_regclass('sync.inbox')").fetchone() == (None,)
    assert done.returncode != 0
    assert (
        "schema sync belongs to mallory, who may drop and replace what this deploy makes there:"
        " alter schema sync owner to postgres (or drop it, if the sync was never deployed"
        " here), check what it holds and who made it; then deploy"
    ) in done.stderr, done.stderr


def test_a_login_that_holds_the_deploys_advisory_lock_keeps_no_deploy_from_running(
    server: Server, dbname: str
) -> None:
    """Any login may take any advisory lock: one that held the deploy's stopped every deploy.

    yoyo's lock insert waited for it, gave up after the lock timeout and said
    "Database locked (run yoyo break-lock ...)", with no row to break (hostile review).
    """
    _stranger_in(server, dbname)
    with psycopg.connect(server.url(dbname, user="mallory"), autocommit=True) as mallory:
        mallory.execute("select pg_advisory_lock(1179014211, 1)")
        done = make_migrate(server.url(dbname))
    assert done.returncode == 0, done.stderr


def test_every_apply_loads_the_code_of_the_release_being_deployed(
    server: Server, bare_dbname: str, empty_template: str
) -> None:
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        conn.execute(
            "create or replace function sync.metrics() returns sync.metric_snapshot"
            " language sql as 'select null::sync.metric_snapshot'"
        )
        conn.execute("drop trigger _900_record_update on public.fragrances")
    run_yoyo(server, bare_dbname, "apply")
    with (
        psycopg.connect(server.url(bare_dbname), autocommit=True) as conn,
        psycopg.connect(server.url(empty_template)) as fresh,
    ):
        assert describe_catalog(conn) == describe_catalog(fresh)


def test_a_deploy_killed_after_the_code_load_committed_leaves_the_next_one_loading_it(
    server: Server, empty_dbname: str, empty_template: str
) -> None:
    """The record yoyo writes after the code load commits, post-apply deleted: a kill between.

    A deploy killed between the two (here, while the forgetting waits for a
    lock) left 9999-database-code recorded applied: every later `yoyo apply`
    skipped the code load, saying nothing, and a release's new code never ran.
    """
    with psycopg.connect(server.url(empty_dbname), autocommit=True) as conn:
        conn.execute("""
            create function public.hold() returns trigger language plpgsql
            as 'begin perform pg_advisory_xact_lock(4242); return old; end';
            create trigger hold before delete on public._yoyo_migration
            for each row execute function public.hold();
        """)
        conn.execute("select pg_advisory_lock(4242)")
        deploy = yoyo_apply(server, empty_dbname)
        try:
            for _ in range(1200):
                held = conn.execute(
                    "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                ).fetchone()
                if deploy.poll() is not None or held != (0,):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the deploy neither ended nor waited")
        finally:
            deploy.kill()
            deploy.communicate()
        conn.execute("select pg_advisory_unlock(4242)")
        conn.execute("drop trigger hold on public._yoyo_migration")
        conn.execute("delete from yoyo_lock")  # yoyo break-lock
        conn.execute(
            "create or replace function sync.metrics() returns sync.metric_snapshot"
            " language sql as 'select null::sync.metric_snapshot'"
        )
    run_yoyo(server, empty_dbname, "apply")
    with (
        psycopg.connect(server.url(empty_dbname)) as conn,
        psycopg.connect(server.url(empty_template)) as fresh,
    ):
        assert describe_catalog(conn) == describe_catalog(fresh)


def test_the_code_load_refuses_a_database_with_migrations_missing(
    server: Server, bare_dbname: str
) -> None:
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        conn.execute("delete from _yoyo_migration where migration_id = '0020-inbox-origin'")
    yoyo = Path(sys.executable).with_name("yoyo")
    argv = [str(yoyo), "apply", "--batch", "--database", server.yoyo_url(bare_dbname)]
    done = subprocess.run(
        [*argv, "--revision", "9999", str(MIGRATIONS)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "needs every migration applied first; missing: 0020-inbox-origin" in done.stderr


DEFINITION = re.compile(
    r"^create (?:or replace )?(function|procedure|aggregate|view|trigger|type)\s+([\w.]+)",
    re.MULTILINE,
)


def test_each_function_view_trigger_and_type_is_written_once_in_the_files_a_developer_edits() -> (
    None
):
    seen: dict[str, list[str]] = {}
    for path in sorted(DATABASE_CODE.glob("*.sql")):
        for kind, name in DEFINITION.findall(path.read_text()):
            seen.setdefault(f"{kind} {name}", []).append(path.name)
    assert seen, "db/ holds the code"
    assert {definition: files for definition, files in seen.items() if len(files) > 1} == {}
    # Migrations after the move carry data only: the code is in db/.
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name >= "0019" and not path.name.startswith("post-apply"):
            assert DEFINITION.findall(path.read_text()) == [], path.name


def test_each_concern_file_holds_what_its_name_says(db: psycopg.Connection) -> None:
    files = {path.name for path in DATABASE_CODE.glob("[0-9][0-9]-*.sql")}
    assert files == {
        "10-rules.sql",
        "20-merge.sql",
        "30-inbox.sql",
        "40-history.sql",
        "45-findings.sql",
        "50-dba.sql",
        "60-health.sql",
        "70-drift.sql",
        "80-retention.sql",
        "85-schedule.sql",
        "88-deploy.sql",
        "90-roles.sql",
    }


API = [
    "sync.apply_pending(integer)",
    "sync.apply_received(integer)",
    "sync.check_catalog()",
    "sync.check_delta(jsonb)",
    "sync.discard(bigint,text)",
    "sync.drift_summary_now()",
    "sync.due_jobs(timestamp with time zone)",
    "sync.fragrance_at(integer,timestamp with time zone)",
    "sync.health_at(timestamp with time zone)",
    "sync.inbox_position(timestamp with time zone)",
    "sync.load_snapshot(jsonb,text,timestamp with time zone)",
    "sync.load_snapshot_from_server(text,integer,text,text,text,text,text)",
    "sync.metrics()",
    "sync.plan_repair()",
    "sync.prepare(bytea)",
    "sync.purge_applied(interval,boolean,integer)",
    "sync.purge_inbox(integer,text)",
    "sync.purge_inbox_step(bigint,integer)",
    "sync.receive(bytea,text,text,text)",
    "sync.receive_many(bytea[],text[],text[],text[],uuid[],timestamp with time zone[])",
    "sync.receive_spooled(uuid,timestamp with time zone,bytea,text,text,text)",
    "sync.repair(boolean)",
    "sync.retry(bigint)",
    "sync.retry_all(text,integer)",
    "sync.revert(bigint)",
    "sync.run_due_jobs()",
    "sync.run_job(text)",
    "sync.schedule()",
    "sync.status_report(integer,integer)",
    "sync.store_many(bytea[],text[],text[],text[],uuid[])",
    "sync.store_spooled(bytea[],text[],text[],text[],uuid[],timestamp with time zone[])",
]


def test_schema_sync_holds_only_the_api(db: psycopg.Connection) -> None:
    functions = db.execute(
        "select p.oid::regprocedure::text from pg_proc as p"
        " where p.pronamespace = 'sync'::regnamespace order by 1"
    ).fetchall()
    assert [f[0] for f in functions] == API


def test_nobody_is_granted_anything_in_sync_private(db: psycopg.Connection) -> None:
    granted = db.execute("""
        select 'schema' from pg_namespace as n, aclexplode(n.nspacl) as a
        where n.nspname = 'sync_private' and a.grantee <> n.nspowner
        union all
        select p.proname from pg_proc as p, aclexplode(p.proacl) as a
        where p.pronamespace = 'sync_private'::regnamespace and a.grantee <> p.proowner
        union all
        select c.relname from pg_class as c, aclexplode(c.relacl) as a
        where c.relnamespace = 'sync_private'::regnamespace and a.grantee <> c.relowner
    """).fetchall()
    assert granted == []


# --- A deploy waits its turn: readers never make the hook wait behind it ---------------------


def yoyo_apply(server: Server, dbname: str, **environment: str) -> subprocess.Popen[str]:
    """Start `yoyo apply` as the deploy runs it, with extra environment variables."""
    yoyo = Path(sys.executable).with_name("yoyo")
    argv = [str(yoyo), "apply", "--batch", "--database", server.yoyo_url(dbname), str(MIGRATIONS)]
    return subprocess.Popen(
        argv,
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def a_reader_of_the_catalog(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    """The smart library's login with a transaction open that has read public.fragrances."""
    with psycopg.connect(server.url(dbname, user="smart_library_login")) as reader:
        reader.execute("select count(*) from public.fragrances")
        try:
            yield reader
        finally:
            reader.rollback()


def wait_for_a_lock_request_behind(conn: psycopg.Connection, reader_pid: int) -> None:
    """Return once another session waits for a lock the reader holds (the deploy)."""
    for _ in range(1200):
        waiting = conn.execute(
            "select count(*) from pg_stat_activity"
            " where %s = any (pg_blocking_pids(pid)) and pid <> pg_backend_pid()",
            [reader_pid],
        ).fetchone()
        if waiting != (0,):
            return
        time.sleep(0.05)
    raise AssertionError("the deploy never asked for a lock the reader holds")


def test_a_reader_in_a_transaction_does_not_make_the_hook_wait_behind_a_deploy(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    with a_reader_of_the_catalog(server, dbname) as reader:
        deploy = yoyo_apply(server, dbname)
        try:
            wait_for_a_lock_request_behind(db, reader.info.backend_pid)
            with psycopg.connect(server.url(dbname, user="sync_hook_login")) as hook:
                hook.execute("set lock_timeout = '3s'")
                receipt = store(hook, {"fragrance_id": 7, "cost": 12})
        finally:
            reader.rollback()
            out, err = deploy.communicate(timeout=300)
    assert receipt["status"] == "pending"
    assert deploy.returncode == 0, err


def test_a_deploy_kept_from_its_locks_past_its_bound_fails_naming_who_is_in_the_way(
    server: Server, dbname: str, db: psycopg.Connection, empty_template: str
) -> None:
    with a_reader_of_the_catalog(server, dbname) as reader:
        deploy = yoyo_apply(server, dbname, SYNC_DEPLOY_LOCK_WAIT="0")
        try:
            out, err = deploy.communicate(timeout=120)
        finally:
            deploy.kill()
        pid = reader.info.backend_pid
    assert deploy.returncode != 0
    assert "the database code was not loaded" in err
    assert f"pid {pid} (smart_library_login, idle in transaction" in err
    assert "on public.fragrances: select count(*) from public.fragrances" in err
    assert "SYNC_DEPLOY_LOCK_WAIT=<seconds>" in err
    assert "Nothing was changed." in err
    # And it is true: the code is the fresh install's, and works.
    with psycopg.connect(server.url(empty_template)) as fresh:
        assert describe_catalog(db) == describe_catalog(fresh)


def wait_for_a_session_behind(conn: psycopg.Connection, holder_pid: int, query: str) -> int:
    """The pid of a session running ``query`` (a fragment) that waits for holder_pid's lock."""
    for _ in range(1200):
        waiting = conn.execute(
            "select pid from pg_stat_activity"
            " where %s = any (pg_blocking_pids(pid)) and strpos(query, %s) > 0",
            [holder_pid, query],
        ).fetchone()
        if waiting is not None:
            return waiting[0]
        time.sleep(0.05)
    raise AssertionError(f"no session running {query!r} ever waited for pid {holder_pid}")


def test_a_delivery_whose_store_straddles_the_code_load_is_kept(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """A store that began on the old code and waited for the code load's locks was lost.

    It resumed after the commit in functions compiled against the composite
    types the load dropped and made again: "cache lookup failed for type"
    (XX000), which the hook answered 500, a change the CMS never sends again.
    Under 16 senders every deploy cost a few deliveries (hostile review).
    """
    delivery = body({"fragrance_id": 7, "cost": 41})
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, DB_TIMEOUT="60")
    try:
        # A DBA's open transaction that commented on a function holds the reset's
        # DROP FUNCTION back, after the load has taken its turn (sync.inbox included).
        with psycopg.connect(server.url(dbname)) as holder:
            holder.execute("comment on function sync.metrics() is 'held'")
            deploy = yoyo_apply(server, dbname)
            # The reset's DO block (its drops lie past the 1 kB of text pg_stat_activity keeps).
            loader = wait_for_a_session_behind(db, holder.info.backend_pid, "do $$")
            with ThreadPoolExecutor(1) as sender:
                answer = sender.submit(
                    httpx.post,
                    hook.url + "/notifications",
                    content=delivery,
                    timeout=120,
                )
                wait_for_a_session_behind(db, loader, "sync.store_many")
                holder.rollback()
                response = answer.result()
            out, err = deploy.communicate(timeout=300)
        assert deploy.returncode == 0, err
        assert response.status_code == 202, response.text
        wait_for_empty_spool(hook)
    finally:
        stop_service(hook)
    assert db.execute(
        "select count(*) from sync.inbox where convert_from(body, 'UTF8') like '%%\"cost\": 41%%'"
    ).fetchone() == (1,)


DEPLOY_SESSIONS = (
    "select count(*) from pg_stat_activity where application_name = 'fragrance-sync deploy'"
)


def test_a_killed_deploys_lock_is_told_from_a_running_deploys_and_broken(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """A deploy killed by SIGKILL leaves yoyo's lock row (compose's, 10 s after SIGTERM).

    Every later deploy then fails after 10 s with "Process <pid> has locked this
    database (run yoyo break-lock to remove this lock)", the pid being the deploy's
    on its own host (1 in every container), which is also what a second deploy says
    while the first is still running. The deploy's sessions carry an
    application_name, so the lock is known stale before it is broken.
    """
    with a_reader_of_the_catalog(server, dbname) as reader:
        deploy = subprocess.Popen(
            ["make", "-s", "migrate", f"MIGRATE_DATABASE_URL={server.url(dbname)}"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_a_lock_request_behind(db, reader.info.backend_pid)
            assert db.execute(DEPLOY_SESSIONS).fetchone() != (0,)
        finally:
            os.killpg(deploy.pid, signal.SIGKILL)
            deploy.wait()
    for _ in range(1200):
        if db.execute(DEPLOY_SESSIONS).fetchone() == (0,):
            break
        time.sleep(0.05)
    assert db.execute("select count(*) from yoyo_lock").fetchone() == (1,)
    run_yoyo(server, dbname, "break-lock")
    done = make_migrate(server.url(dbname))
    assert done.returncode == 0, done.stderr


def blocked_by(conn: psycopg.Connection, pid: int, holder_pid: int) -> bool | None:
    """Whether pid waits for holder_pid's lock; None once pid's session is gone."""
    row = conn.execute(
        "select %s = any (pg_blocking_pids(pid)) from pg_stat_activity where pid = %s",
        [holder_pid, pid],
    ).fetchone()
    return None if row is None else row[0]


@pytest.mark.parametrize(
    "setting",
    [
        # The load pauses a second between its attempts, inside its transaction:
        # the server ended the deploy's session in its first pause, and it failed
        # with "the connection is closed", which says nothing of the reader.
        "idle_in_transaction_session_timeout=300ms",
        # The first attempt behind a reader was cancelled as a slow statement, and
        # the deploy failed at once with "canceling statement due to statement
        # timeout": each attempt waited half a second, whatever the timeout.
        "statement_timeout=300ms",
    ],
)
def test_a_deploy_waits_its_turn_behind_a_reader_under_a_sites_short_timeout(
    server: Server, dbname: str, db: psycopg.Connection, setting: str
) -> None:
    """A site's timeouts, set for its applications, reach the deploy's session too."""
    with a_reader_of_the_catalog(server, dbname) as reader:
        holder = reader.info.backend_pid
        deploy = yoyo_apply(server, dbname, PGOPTIONS=f"-c {setting}")
        try:
            loader = wait_for_a_session_behind(db, holder, "lock table")
            for waiting in (False, True):  # its pause, then its next attempt (or its end)
                for _ in range(1200):
                    state = blocked_by(db, loader, holder)
                    if state is None or state == waiting:
                        break
                    time.sleep(0.05)
        finally:
            reader.rollback()
            out, err = deploy.communicate(timeout=300)
    assert deploy.returncode == 0, err


# --- A deploy never drops a site's objects, and keeps its grants ------------------------------


def a_site_role(conn: psycopg.Connection, name: str) -> None:
    """A role of the site's own (roles are cluster-wide: made once per server)."""
    if conn.execute("select count(*) from pg_roles where rolname = %s", [name]).fetchone() == (0,):
        conn.execute(f"create role {name}")


def test_a_deploy_refuses_to_drop_a_sites_view_of_our_views(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    db.execute("create view public.dash as select verdict, pending from sync.health")
    deploy = yoyo_apply(server, dbname)
    out, err = deploy.communicate(timeout=300)
    assert deploy.returncode != 0
    assert "view public.dash depends on view sync.health" in err
    assert "Nothing was changed" in err
    assert db.execute("select count(*) from public.dash").fetchone() == (1,)


def test_a_deploy_refuses_to_drop_a_function_a_sites_index_on_our_table_calls(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The load dropped the function and failed with PostgreSQL's bare "use DROP ... CASCADE".

    An index in schema sync passed for one of ours; the deploy now names it
    and the statements that save, drop and make it again.
    """
    db.execute("create index site_snapshot_name on sync.cms_snapshot (sync_private.name_key(name))")
    deploy = yoyo_apply(server, dbname)
    out, err = deploy.communicate(timeout=300)
    assert deploy.returncode != 0
    assert (
        "index sync.site_snapshot_name depends on function"
        " sync_private.name_key(pg_catalog.text)" in err
    )
    assert (
        "(save it: SELECT pg_get_indexdef('sync.site_snapshot_name'::regclass);"
        " then DROP INDEX sync.site_snapshot_name;)" in err
    )
    assert "CASCADE" not in err
    assert "Nothing was changed" in err
    db.execute("drop index sync.site_snapshot_name")
    run_yoyo(server, dbname, "apply")


@pytest.mark.parametrize(
    ("create", "named", "move"),
    [
        (
            "create view sync.dash as select count(*) as deliveries from sync.inbox",
            "view sync.dash",
            "ALTER VIEW sync.dash SET SCHEMA <your schema>;",
        ),
        (
            "create function sync_private.mine(integer) returns integer"
            " language sql immutable return $1 + 1",
            "function sync_private.mine(integer)",
            "ALTER FUNCTION sync_private.mine(integer) SET SCHEMA <your schema>;",
        ),
    ],
    ids=["view in sync", "function in sync_private"],
)
def test_a_deploy_refuses_to_drop_a_sites_own_object_in_our_schemas(
    server: Server, dbname: str, db: psycopg.Connection, create: str, named: str, move: str
) -> None:
    """Every deploy dropped a site's view or function made in schema sync, without a word.

    The reset drops every view and function of sync and sync_private; one
    the last code load did not make is the site's, named with what moves it.
    """
    db.execute(create)
    deploy = yoyo_apply(server, dbname)
    out, err = deploy.communicate(timeout=300)
    assert deploy.returncode != 0
    assert f"  {named} (move it: {move})" in err
    assert "Nothing was changed" in err
    assert (
        named
        in db.execute("""
        select string_agg(o.type || ' ' || o.identity, ', ')
        from (select 'pg_catalog.pg_class'::regclass as c, oid from pg_catalog.pg_class
              where relnamespace in ('sync'::regnamespace, 'sync_private'::regnamespace)
              union all
              select 'pg_catalog.pg_proc'::regclass, oid from pg_catalog.pg_proc
              where pronamespace in ('sync'::regnamespace, 'sync_private'::regnamespace)) as x
        cross join lateral pg_catalog.pg_identify_object(x.c, x.oid, 0) as o
    """).fetchone()[0]
    )


def test_a_deploy_loads_again_once_a_sites_object_is_moved_out_of_our_schemas(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    db.execute("create view sync.dash as select count(*) as deliveries from sync.inbox")
    db.execute("alter view sync.dash set schema public")
    run_yoyo(server, dbname, "apply")
    assert db.execute("select count(*) from public.dash").fetchone() == (1,)


def test_a_deploy_held_up_by_another_sessions_temporary_view_names_that_session(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The hook's login may make a temporary view over sync.metrics(): every deploy then failed.

    Its message said to drop the view, which no other session can; it lives
    as long as the session that made it, so the deploy names that session.
    """
    with psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as hook:
        hook.execute("create temporary view mine as select pending from sync.metrics()")
        deploy = yoyo_apply(server, dbname)
        out, err = deploy.communicate(timeout=300)
        assert deploy.returncode != 0
        assert "depends on function sync.metrics()" in err
        assert f"session {hook.info.backend_pid} of sync_hook_login" in err
        assert f"SELECT pg_terminate_backend({hook.info.backend_pid});" in err
    run_yoyo(server, dbname, "apply")  # the session gone, so is its view


def test_a_failed_code_load_names_the_migrations_its_run_committed(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    newest = sorted(p.stem for p in MIGRATIONS.glob("0*.sql") if ".rollback" not in p.name)[-1]
    run_yoyo(server, dbname, "rollback", "--revision", newest)
    db.execute("create view public.dash as select verdict, pending from sync.health")
    deploy = yoyo_apply(server, dbname)
    out, err = deploy.communicate(timeout=300)
    assert deploy.returncode != 0
    assert "Nothing was changed" not in err
    assert f"this run first applied and committed {newest}:" in err
    assert "SELECT * FROM sync.retry_all('internal.error');" in err


def test_a_deploy_keeps_the_grants_a_site_made_on_our_views_and_functions(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    a_site_role(db, "reporting")
    db.execute("grant usage on schema sync to reporting")
    db.execute("grant select on sync.health to reporting")
    db.execute("grant select (codes) on sync.quarantine to reporting")
    db.execute("grant execute on function sync.metrics() to reporting with grant option")
    run_yoyo(server, dbname, "apply")
    kept = db.execute("""
        select has_table_privilege('reporting', 'sync.health', 'select'),
               has_column_privilege('reporting', 'sync.quarantine', 'codes', 'select'),
               has_function_privilege('reporting', 'sync.metrics()', 'execute with grant option'),
               has_function_privilege('reporting', 'sync.receive_many(bytea[], text[], text[],'
                                      ' text[], uuid[], timestamptz[])', 'execute')
    """).fetchone()
    assert kept == (True, True, True, False)


def test_a_deploy_says_which_grants_of_a_site_it_could_not_keep(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    a_site_role(db, "reporting")
    db.execute("create function sync.gone() returns int language sql as 'select 1'")
    # A function of the last load's that this release no longer makes: recorded as that load did.
    db.execute("insert into sync_private.code_object values ('function', 'sync.gone()')")
    db.execute("grant execute on function sync.gone() to reporting")
    done = run_yoyo(server, dbname, "apply")
    assert "grants not kept" in done.stderr
    assert "EXECUTE on routine sync.gone() to reporting" in done.stderr
    assert db.execute("select to_regprocedure('sync.gone()')").fetchone() == (None,)


# --- Roles are cluster-wide: rolling back one database keeps the logins others use -------------

LOGINS = "select rolname from pg_roles where rolname like '%%_login' order by 1"


def test_rolling_back_one_database_keeps_the_logins_another_still_uses(own_server: Server) -> None:
    own_server.create_database("fdb2")
    load_smart_library(own_server, "fdb2")
    run_yoyo(own_server, "fdb2", "apply")
    run_yoyo(own_server, "fdb2", "rollback", "--all")
    with psycopg.connect(own_server.url("test"), autocommit=True) as conn:
        assert conn.execute(LOGINS).fetchall() == [("smart_library_login",), ("sync_hook_login",)]
        pinned = conn.execute(
            "select s.setconfig from pg_db_role_setting as s"
            " join pg_database as d on d.oid = s.setdatabase and d.datname = 'test'"
            " where s.setrole = 'sync_hook_login'::regrole"
        ).fetchone()
        assert pinned == (["synchronous_commit=on"],)
    # The login still logs in, with its pinned setting.
    with psycopg.connect(own_server.url("test", user="sync_hook_login")) as hook:
        assert hook.execute("show synchronous_commit").fetchone() == ("on",)


def test_rolling_back_one_database_keeps_the_hook_of_another_storing_deliveries(
    own_server: Server,
) -> None:
    """0007's rollback revoked sync_hook from sync_hook_login, and memberships are cluster-wide.

    The other database's hook still logged in, but could call nothing.
    """
    own_server.create_database("fdb2")
    load_smart_library(own_server, "fdb2")
    run_yoyo(own_server, "fdb2", "apply")
    run_yoyo(own_server, "fdb2", "rollback", "--all")
    with psycopg.connect(own_server.url("test", user="sync_hook_login")) as hook:
        receipt = hook.execute(
            "select status from sync.receive(%s, 'application/json', '10.0.0.1', 'cms/1')",
            [body({"fragrance_id": 7, "cost": 5})],
        ).fetchone()
        assert receipt == ("applied",)


def test_a_clone_of_a_database_keeps_the_logins_when_its_original_is_rolled_back(
    own_server: Server,
) -> None:
    own_server.create_database("fdb2", template="test")
    run_yoyo(own_server, "test", "rollback", "--all")
    with psycopg.connect(own_server.url("fdb2")) as conn:
        assert conn.execute(LOGINS).fetchall() == [("smart_library_login",), ("sync_hook_login",)]


def test_rolling_back_the_last_database_drops_the_logins_but_the_smart_librarys(
    own_server: Server,
) -> None:
    """The smart library read its catalog before the sync and reads it after (ADR 0037)."""
    run_yoyo(own_server, "test", "rollback", "--all")
    with psycopg.connect(own_server.url("test")) as conn:
        assert conn.execute(LOGINS).fetchall() == [("smart_library_login",)]


def test_0072_fills_the_clock_with_the_positions_of_the_repairs_still_in_the_inbox(
    server: Server, bare_dbname: str
) -> None:
    """Applied again after its rollback, it reads them back from the repairs' inbox rows."""
    load_smart_library(server, bare_dbname)
    run_yoyo(server, bare_dbname, "apply")
    positions = "select fragrance_id, positions from sync.field_version order by fragrance_id"
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as db:
        rows = db.execute(
            "select json_agg(f order by fragrance_id) from public.fragrances as f"
        ).fetchone()[0]  # type: ignore[index]
        rows[7]["cost"] = 50
        rows[8]["name"] = "Repaired name"
        db.execute("select sync.load_snapshot(%s::jsonb)", [psycopg.types.json.Jsonb(rows)])
        db.execute("select sync.repair()")
        # A hand change after it counts at its own position: no repair's.
        db.execute(
            "update public.fragrances set name = 'By hand' where fragrance_id = %s",
            [rows[8]["fragrance_id"]],
        )
        before = db.execute(positions).fetchall()
    assert [p for _, p in before] == [{"cost": 0}, {}]
    run_yoyo(server, bare_dbname, "rollback", "--revision", LATEST_MIGRATION)
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as db:
        assert db.execute(positions).fetchall() == before
