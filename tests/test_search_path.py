"""Code that runs with its caller's search_path: nobody else's objects on it run instead.

A function that is not SECURITY DEFINER, and every trigger function, runs in
the session that called it or wrote the row, with that session's
search_path. pg_catalog is searched first, but an object later on the path
whose argument types match better still wins: a count(integer) over
count("any"), an operator = (text[], text[]) over the polymorphic one. A
database created before PostgreSQL 15 (kept by pg_upgrade) lets every login
create in schema public, which a DBA's default search_path holds; a login of
no standing planted such objects there, and a DBA who read
sync.drift_summary or tuned a rule ran them with the DBA's privileges
(hostile review). So such code pins its search_path too.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from conftest import Server

# A login with no grants at all, as any application of a shared server has.
STRANGER = "mallory"

# What the stranger plants in schema public: each object records who ran it
# (and then does what the built-in does), so a test reads who it ran as.
PLANTED = {
    "count(integer)": """
        create function public.count_step(bigint, integer) returns bigint
            language plpgsql as $$
        begin
            insert into public.ran_as values (current_user, 'count(integer)');
            return $1 + 1;
        end $$;
        create aggregate public.count(integer)
            (sfunc = public.count_step, stype = bigint, initcond = '0');
    """,
    "= (text[], text[])": """
        create function public.same_texts(text[], text[]) returns boolean
            language plpgsql as $$
        begin
            insert into public.ran_as values (current_user, '= (text[], text[])');
            return pg_catalog.array_eq($1, $2);
        end $$;
        create operator public.=
            (leftarg = text[], rightarg = text[], function = public.same_texts);
    """,
}

ONE_ROW_SNAPSHOT = (
    'select sync.load_snapshot(\'[{"fragrance_id": 1, "name": "x", "description": "",'
    ' "cost": 1, "forbidden": false}]\')'
)


@pytest.fixture
def planted(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Schema public open to every login (as before PostgreSQL 15), the stranger's objects in it."""
    db.execute(f"""
        do $$ begin
            if not exists (select from pg_roles where rolname = '{STRANGER}') then
                create role {STRANGER} login;
            end if;
        end $$
    """)
    db.execute("grant create on schema public to public")
    db.execute(f"set role {STRANGER}")
    db.execute("create table public.ran_as (role text, object text)")
    db.execute("grant insert on public.ran_as to public")
    for definition in PLANTED.values():
        db.execute(definition)
    db.execute("reset role")
    yield db


def _ran_as(db: psycopg.Connection) -> list[tuple[str, str]]:
    return db.execute("select distinct role, object from public.ran_as order by 1, 2").fetchall()


def test_a_dba_reading_the_drift_summary_runs_nothing_of_the_stranger(
    planted: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """sync.drift_summary reads sync.drift_summary_now(), which counts with count(distinct ...)."""
    planted.execute(ONE_ROW_SNAPSHOT)
    assert dba.execute("show search_path").fetchone() == ('"$user", public',)
    assert dba.execute("select count(*) from sync.drift_summary").fetchone()[0] > 0
    assert _ran_as(planted) == []


def test_a_dba_tuning_a_rule_runs_nothing_of_the_stranger(
    planted: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """The rule's trigger compares its columns, a text[] among them, on every UPDATE."""
    dba.execute("update sync.rule set severity = 'warning' where code = 'name.duplicate'")
    assert _ran_as(planted) == []


def test_code_that_runs_as_its_caller_pins_its_search_path(db: psycopg.Connection) -> None:
    """Every trigger function of ours, and every function of the API that is not SECURITY DEFINER.

    (Those that are, and the internals they call, run with the path their
    SECURITY DEFINER function set.) The exceptions are the procedures
    sync.purge_inbox and sync.run_due_jobs: a procedure that commits may
    carry no SET (PostgreSQL), so each names every function it calls with
    its schema.
    """
    unpinned = db.execute("""
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace in ('sync'::regnamespace, 'sync_private'::regnamespace)
          and (p.prorettype = 'trigger'::regtype
               or (p.pronamespace = 'sync'::regnamespace and not p.prosecdef))
          and not coalesce('search_path=pg_catalog, pg_temp' = any (p.proconfig), false)
        order by 1
    """).fetchall()
    assert unpinned == [("sync.purge_inbox(integer,text)",), ("sync.run_due_jobs()",)]


def test_the_stranger_is_refused_the_api_even_with_schema_public_open(
    planted: psycopg.Connection, server: Server, dbname: str
) -> None:
    """Planting objects is all schema public gives: nothing of the sync is reachable."""
    with (
        psycopg.connect(server.url(dbname, user=STRANGER), autocommit=True) as stranger,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        stranger.execute("select * from sync.drift_summary")


def test_security_definer_code_searches_pg_temp_last(db: psycopg.Connection) -> None:
    """In sync and sync_private alike: a path that leaves pg_temp out searches it first.

    Any login may create temporary tables, so a security definer function whose
    path named only pg_catalog would read the caller's pg_temp.inbox for an
    unqualified inbox; test_migrations checks only that sync's set some path.
    """
    loose = db.execute("""
        select p.oid::regprocedure::text, p.proconfig::text from pg_catalog.pg_proc as p
        where p.pronamespace in ('sync'::regnamespace, 'sync_private'::regnamespace)
          and p.prosecdef
          and not coalesce('search_path=pg_catalog, pg_temp' = any (p.proconfig), false)
        order by 1
    """).fetchall()
    assert loose == []
