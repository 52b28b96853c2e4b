"""Migrations adopt the smart library's table, own only the sync schema, and roll back cleanly."""

from __future__ import annotations

import psycopg
from conftest import Server, load_smart_library, run_yoyo
from helpers import body

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


def test_every_sync_object_carries_a_comment(db: psycopg.Connection) -> None:
    missing = db.execute("""
        select 'table ' || c.relname
        from pg_class as c
        where c.relnamespace = 'sync'::regnamespace and c.relkind in ('r', 'v')
          and obj_description(c.oid, 'pg_class') is null
        union all
        select 'function ' || p.proname
        from pg_proc as p
        where p.pronamespace = 'sync'::regnamespace
          and obj_description(p.oid, 'pg_proc') is null
        union all
        select 'type ' || t.typname
        from pg_type as t
        join pg_class as c on c.oid = t.typrelid and c.relkind = 'c'
        where t.typnamespace = 'sync'::regnamespace
          and obj_description(t.oid, 'pg_type') is null
    """).fetchall()
    assert missing == []


def test_security_definer_functions_lock_their_search_path(db: psycopg.Connection) -> None:
    unlocked = db.execute("""
        select proname from pg_proc
        where pronamespace = 'sync'::regnamespace and prosecdef
          and not exists (select from unnest(proconfig) as c where c like 'search_path=%')
    """).fetchall()
    assert unlocked == []
