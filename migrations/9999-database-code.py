"""Load the database code from db/*.sql, on every apply.

The current text of every function, view and trigger lives in one file per
concern under db/ (ADR 0015). This step drops every trigger, view, function,
aggregate and composite type of schemas sync and sync_private, then runs the
files in name order, in one transaction: a deploy switches from the old code
to the new at its commit. Tables, columns, indexes and roles are data and
belong to the numbered migrations, which run before this one.

yoyo runs a migration once; post-apply-forget-code-load.sql marks this one
unapplied again after every apply, so `yoyo apply` always loads the code of
the release being deployed (``yoyo list`` shows it as not applied: it never
stays applied). A rollback does not touch it.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from yoyo import step

HERE = Path(__file__).resolve().parent
DATABASE_CODE = HERE.parent / "db"

RESET = """
do $$
declare
    v_schemas constant regnamespace[] :=
        array[to_regnamespace('sync'), to_regnamespace('sync_private')];
    v_object record;
begin
    for v_object in
        select t.tgname, t.tgrelid::regclass as relation
        from pg_catalog.pg_trigger as t
        join pg_catalog.pg_proc as p on p.oid = t.tgfoid
        where not t.tgisinternal and p.pronamespace = any (v_schemas)
    loop
        execute format('drop trigger %I on %s', v_object.tgname, v_object.relation);
    end loop;
    for v_object in
        select format('%I.%I', c.relnamespace::regnamespace, c.relname) as name
        from pg_catalog.pg_class as c
        where c.relkind = 'v' and c.relnamespace = any (v_schemas)
    loop
        execute format('drop view if exists %s cascade', v_object.name);
    end loop;
    for v_object in
        select p.oid::regprocedure as name, p.prokind from pg_catalog.pg_proc as p
        where p.pronamespace = any (v_schemas)
    loop
        execute format('drop %s %s',
            case v_object.prokind when 'a' then 'aggregate' when 'p' then 'procedure'
                                  else 'function' end,
            v_object.name);
    end loop;
    for v_object in
        select t.oid::regtype as name from pg_catalog.pg_type as t
        join pg_catalog.pg_class as c on c.oid = t.typrelid and c.relkind = 'c'
        where t.typnamespace = any (v_schemas)
    loop
        execute format('drop type %s', v_object.name);
    end loop;
end;
$$;
"""


def _unapplied_migrations(conn: Any) -> list[str]:
    """Numbered migrations of this directory that the database has not applied."""
    wanted = sorted(
        path.stem
        for path in HERE.glob("[0-9][0-9][0-9][0-9]-*.sql")
        if not path.name.endswith(".rollback.sql")
    )
    with conn.cursor() as cursor:
        cursor.execute("select migration_id from _yoyo_migration")
        applied = {row[0] for row in cursor.fetchall()}
    return [migration for migration in wanted if migration not in applied]


# The deploy waits its turn (ADR 0015, addendum): it takes the locks the reset
# needs in short attempts, each given up after ATTEMPT_SECONDS (at most half of
# deadlock_timeout), and pauses PAUSE_SECONDS between them, holding nothing,
# until SYNC_DEPLOY_LOCK_WAIT seconds have passed; then it fails and names the
# sessions in its way. A reader of public.fragrances never makes the hook wait
# behind the deploy for longer than one attempt.
LOCK_WAIT_VARIABLE = "SYNC_DEPLOY_LOCK_WAIT"
DEFAULT_LOCK_WAIT_SECONDS = 120.0
ATTEMPT_SECONDS = 0.5
PAUSE_SECONDS = 1.0
LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"
TRIGGER_TABLE = re.compile(
    r"^create trigger\s+\w+\s+(?:before|after|instead\s+of)\b[^;]*?\bon\s+([\w.]+)",
    re.MULTILINE,
)

# The tables whose triggers the reset drops or the files create: the smart
# library's table first (its readers are the likeliest to be in the way), the
# inbox last (while it is not locked, the hook stores deliveries).
TURN_TABLES = """
select format('%%I.%%I', c.relnamespace::regnamespace, c.relname) from (
    select distinct t.tgrelid as relation from pg_catalog.pg_trigger as t
    join pg_catalog.pg_proc as p on p.oid = t.tgfoid
    where not t.tgisinternal
      and p.pronamespace in (to_regnamespace('sync'), to_regnamespace('sync_private'))
    union
    select to_regclass(name) from unnest(%s::text[]) as name
) as t
join pg_catalog.pg_class as c on c.oid = t.relation
order by t.relation = to_regclass('public.fragrances') desc nulls last,
         t.relation = to_regclass('sync.inbox'), t.relation::text
"""

OUR_VIEWS = """
select format('%I.%I', c.relnamespace::regnamespace, c.relname) from pg_catalog.pg_class as c
where c.relkind = 'v'
  and c.relnamespace in (to_regnamespace('sync'), to_regnamespace('sync_private'))
order by 1
"""

# Who holds a lock on what the reset needs, for the message of a deploy that gave up.
BLOCKERS = r"""
select distinct l.pid, coalesce(a.usename, '?'), coalesce(a.state, '?'),
       coalesce(to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '?'),
       coalesce(left(regexp_replace(a.query, '\s+', ' ', 'g'), 200), '?'),
       format('%%I.%%I', c.relnamespace::regnamespace, c.relname), l.mode
from pg_catalog.pg_locks as l
join pg_catalog.pg_class as c on c.oid = l.relation
left join pg_catalog.pg_stat_activity as a on a.pid = l.pid
where l.locktype = 'relation' and l.granted and l.pid <> pg_catalog.pg_backend_pid()
  and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
  and l.relation = any (%s::regclass[])
order by 1, 6
"""


class DeployLockTimeoutError(RuntimeError):
    """The deploy could not take its locks within SYNC_DEPLOY_LOCK_WAIT seconds."""


def _lock_wait_seconds() -> float:
    """The deploy's bound on waiting for its locks, from the environment."""
    raw = os.environ.get(LOCK_WAIT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_LOCK_WAIT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise RuntimeError(
            f"{LOCK_WAIT_VARIABLE} must be a number of seconds, not {raw!r}"
        ) from None
    if seconds < 0:
        raise RuntimeError(f"{LOCK_WAIT_VARIABLE} must not be negative, not {raw!r}")
    return seconds


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver's error (psycopg 3 or psycopg2), or None."""
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


def _take_turn_once(cursor: Any, tables: list[str], views: list[str], budget_ms: int) -> None:
    """Lock the trigger tables and drop our views, waiting budget_ms in all.

    A view is dropped rather than locked: LOCK TABLE on a view also locks every
    table it reads, the inbox among them, out of turn. Raises the driver's lock
    timeout when the budget is spent.
    """
    deadline = time.monotonic() + budget_ms / 1000
    statements = [f"lock table {table} in access exclusive mode" for table in tables[:-1]]
    statements += [f"drop view if exists {view} cascade" for view in views]
    statements += [f"lock table {table} in access exclusive mode" for table in tables[-1:]]
    for statement in statements:
        remaining = max(1, int((deadline - time.monotonic()) * 1000))
        cursor.execute(f"set local lock_timeout = {remaining}")
        cursor.execute(statement)


def _blockers(cursor: Any, relations: list[str]) -> str:
    """The sessions holding locks on relations, one line each."""
    cursor.execute(BLOCKERS, [relations])
    lines = [
        f"  pid {pid} ({user}, {state}, transaction since {since})"
        f" holds {mode} on {relation}: {query}"
        for pid, user, state, since, query, relation, mode in cursor.fetchall()
    ]
    return "\n".join(lines) or "  (none any more: they ended just now)"


def take_turn(cursor: Any, files: list[Path]) -> None:
    """Take the locks of the reset without making the hook wait behind a reader.

    Locks every table whose triggers are ours (public.fragrances first,
    sync.inbox last) and drops our views, in a savepoint, each attempt given up
    after a moment; between attempts it holds nothing and pauses. Raises
    DeployLockTimeoutError, naming the sessions in the way, after
    SYNC_DEPLOY_LOCK_WAIT seconds.
    """
    bound = _lock_wait_seconds()
    named = sorted({name for path in files for name in TRIGGER_TABLE.findall(path.read_text())})
    cursor.execute(TURN_TABLES, [named])
    tables = [row[0] for row in cursor.fetchall()]
    cursor.execute(OUR_VIEWS)
    views = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "select current_setting('lock_timeout'),"
        " extract(epoch from current_setting('deadlock_timeout')::interval) * 1000"
    )
    lock_timeout, deadlock_ms = cursor.fetchone()
    budget_ms = max(1, min(int(ATTEMPT_SECONDS * 1000), int(deadlock_ms) // 2))
    started = time.monotonic()
    while True:
        cursor.execute("savepoint sync_code_turn")
        try:
            _take_turn_once(cursor, tables, views, budget_ms)
        except Exception as error:
            if _sqlstate(error) not in (LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED):
                raise
            cursor.execute("rollback to savepoint sync_code_turn")
            waited = time.monotonic() - started
            if waited + PAUSE_SECONDS > bound:
                raise DeployLockTimeoutError(
                    f"the database code was not loaded: for {waited:.1f}s"
                    f" ({LOCK_WAIT_VARIABLE}={bound:g}) other sessions held locks on tables"
                    " or views it replaces, and a deploy that waited for them would make"
                    " the hook wait too:\n"
                    f"{_blockers(cursor, tables + views)}\n"
                    "Nothing was changed. Let those transactions end (or end them:"
                    " select pg_terminate_backend(<pid>);) and run yoyo apply again, or"
                    f" give the deploy longer with {LOCK_WAIT_VARIABLE}=<seconds>."
                ) from error
            time.sleep(PAUSE_SECONDS)
            continue
        cursor.execute("release savepoint sync_code_turn")
        cursor.execute("select set_config('lock_timeout', %s, true)", [lock_timeout])
        return


def load_database_code(conn: Any) -> None:
    """Drop our code objects and create them again from db/*.sql."""
    missing = _unapplied_migrations(conn)
    if missing:
        raise RuntimeError(
            f"the database code needs every migration applied first; missing: {', '.join(missing)}"
        )
    files = sorted(DATABASE_CODE.glob("[0-9][0-9]-*.sql"))
    if not files:
        raise RuntimeError(f"no database code found in {DATABASE_CODE}")
    with conn.cursor() as cursor:
        take_turn(cursor, files)
        cursor.execute(RESET)
        for path in files:
            cursor.execute(path.read_text())


steps = [step(load_database_code)]
