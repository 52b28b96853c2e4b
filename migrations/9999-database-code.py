"""Load the database code from db/*.sql, on every apply.

The current text of every function, view and trigger lives in one file per
concern under db/ (ADR 0015). This step drops every trigger, view, function,
aggregate and composite type of schemas sync and sync_private, then runs the
files in name order, in one transaction: a deploy switches from the old code
to the new at its commit. Tables, columns, indexes and roles are data and
belong to the numbered migrations, which run before this one.

Before it drops anything it refuses to load when an object outside sync and
sync_private depends on what it drops (a site's view of sync.health), or when
those schemas hold an object the last load did not make (a site's own view
made in schema sync; the load records what it made in
sync_private.code_object), records
the grants the site made on our views, functions and types to roles of its
own (made again after the files are loaded), and waits its turn for the locks
it needs without holding what the hook needs (take_turn; ADR 0015, addendum).

yoyo runs a migration once, and records it after its commit in a transaction
of its own: the trigger db/88-deploy.sql creates on yoyo's _yoyo_migration
keeps that record from being written, so `yoyo apply` always loads the code
of the release being deployed (``yoyo list`` shows it as not applied: it
never is). post-apply-forget-code-load.sql, which deleted the record after
every apply, stays for a database whose code predates the trigger: a deploy
killed between the record and the delete left it recorded, and every later
apply skipped this step. A rollback does not touch it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from yoyo import step

HERE = Path(__file__).resolve().parent
DATABASE_CODE = HERE.parent / "db"

# The code a load owns, as pg_identify_object names it: the views, functions,
# procedures, aggregates and composite types of sync and sync_private, and the
# triggers that call a function there (on any table). The reset drops these,
# the load records them (sync_private.code_object), and the next load refuses
# any there it did not record: one list, so the three cannot disagree.
CODE_OBJECTS = """
select o.type, o.identity
from (select 'pg_catalog.pg_class'::regclass as classid, c.oid as objid
      from pg_catalog.pg_class as c
      where c.relkind in ('v', 'c')
        and c.relnamespace in (select oid from pg_catalog.pg_namespace
                               where nspname in ('sync', 'sync_private'))
      union all
      select 'pg_catalog.pg_proc'::regclass, p.oid from pg_catalog.pg_proc as p
      where p.pronamespace in (select oid from pg_catalog.pg_namespace
                               where nspname in ('sync', 'sync_private'))
      union all
      select 'pg_catalog.pg_trigger'::regclass, t.oid from pg_catalog.pg_trigger as t
      join pg_catalog.pg_proc as f on f.oid = t.tgfoid
      where not t.tgisinternal
        and f.pronamespace in (select oid from pg_catalog.pg_namespace
                               where nspname in ('sync', 'sync_private'))) as x
cross join lateral pg_catalog.pg_identify_object(x.classid, x.objid, 0) as o
"""

# Drops our code: triggers first (they call our functions), then views (with
# cascade, so one may already have gone with another), routines, then types.
# The sort reads every identity before the first drop.
RESET = f"""
do $$
declare
    v_object record;
begin
    for v_object in
        select o.type, o.identity
        from ({CODE_OBJECTS}) as o
        order by array_position(array['trigger', 'view', 'function', 'procedure', 'aggregate',
                                      'composite type'], o.type)
    loop
        execute format(case v_object.type when 'view' then 'drop view if exists %s cascade'
                                          when 'composite type' then 'drop type %s'
                                          else 'drop ' || v_object.type || ' %s' end,
                       v_object.identity);
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
# deadlock_timeout, and of statement_timeout when one is set), and pauses
# PAUSE_SECONDS between them, holding nothing, until SYNC_DEPLOY_LOCK_WAIT
# seconds have passed; then it fails and names the
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


# Objects the reset does not drop that depend on what it drops (views,
# functions, aggregates, composite types and their row and array types): a
# site's view of sync.health, a function taking sync.metric_snapshot, a
# site's index on sync.cms_snapshot over sync_private.name_key. The triggers
# the reset drops itself, our views' own rules and what it drops are ours.
# The reset would drop such an object (views are dropped with cascade) or
# fail on it: the load refuses instead, before it changes anything. An
# object in schema sync passed once for one of ours: a site's index on a
# table of ours failed the load with PostgreSQL's bare "use DROP ...
# CASCADE" (review); nothing of ours that the reset leaves depends on what
# it drops, or every load would fail on it.
OUTSIDE_DEPENDENTS = """
with ours as (
    select oid from pg_catalog.pg_namespace where nspname in ('sync', 'sync_private')
), dropped (classid, objid) as (
    select 'pg_catalog.pg_class'::regclass, c.oid from pg_catalog.pg_class as c
    where c.relkind in ('v', 'c') and c.relnamespace in (select oid from ours)
    union all
    select 'pg_catalog.pg_proc'::regclass, p.oid from pg_catalog.pg_proc as p
    where p.pronamespace in (select oid from ours)
    union all
    select 'pg_catalog.pg_type'::regclass, t.oid from pg_catalog.pg_type as t
    join pg_catalog.pg_class as c on c.oid = t.typrelid
    where c.relkind in ('v', 'c') and t.typnamespace in (select oid from ours)
    union all
    select 'pg_catalog.pg_type'::regclass, t.typarray from pg_catalog.pg_type as t
    join pg_catalog.pg_class as c on c.oid = t.typrelid
    where c.relkind in ('v', 'c') and t.typnamespace in (select oid from ours) and t.typarray <> 0
)
select distinct coalesce(v.type || ' ' || v.identity, o.type || ' ' || o.identity),
       theirs.type || ' ' || theirs.identity,
       -- A temporary object (pg_temp_<backend>) is another session's: it
       -- lives as long as that session, which no one but it can drop it in.
       (select format('a temporary object of session %s of %s: it goes when that session ends;'
                      ' SELECT pg_terminate_backend(%s); ends it', a.pid, a.usename, a.pid)
        from pg_catalog.pg_stat_activity as a
        where coalesce(v.schema, o.schema) ~ '^pg_temp_[0-9]+$'
          and a.pid = pg_catalog.pg_stat_get_backend_pid(
                          substring(coalesce(v.schema, o.schema) from 9)::integer)),
       -- A site's index (on a table of ours, too): what saves it and drops it.
       case when o.type = 'index'
            then format('save it: SELECT pg_get_indexdef(%L::regclass); then DROP INDEX %s;',
                        o.identity, o.identity) end
from pg_catalog.pg_depend as d
join dropped on dropped.classid = d.refclassid and dropped.objid = d.refobjid
cross join lateral pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) as o
cross join lateral pg_catalog.pg_identify_object(d.refclassid, d.refobjid, 0) as theirs
left join pg_catalog.pg_rewrite as rule
       on d.classid = 'pg_catalog.pg_rewrite'::regclass and rule.oid = d.objid
left join lateral pg_catalog.pg_identify_object('pg_catalog.pg_class'::regclass, rule.ev_class, 0)
       as v on rule.oid is not null
where d.deptype in ('n', 'a')
  and not exists (select from dropped as self
                  where self.classid = d.classid and self.objid = d.objid)
  and not exists (select from pg_catalog.pg_rewrite as r
                  join pg_catalog.pg_class as v on v.oid = r.ev_class
                  where d.classid = 'pg_catalog.pg_rewrite'::regclass and r.oid = d.objid
                    and v.relnamespace in (select oid from ours))
  and not exists (select from pg_catalog.pg_trigger as t
                  join pg_catalog.pg_proc as f on f.oid = t.tgfoid
                  where d.classid = 'pg_catalog.pg_trigger'::regclass and t.oid = d.objid
                    and f.pronamespace in (select oid from ours))
order by 1, 2
"""

# The objects the reset would drop that the last load did not make
# (sync_private.code_object): a site's own view or function made in schema
# sync went with every deploy, without a word (hostile review).
FOREIGN_OBJECTS = f"""
select d.type, d.identity
from ({CODE_OBJECTS}) as d
where not exists (select from sync_private.code_object as r
                  where r.type = d.type and r.identity = d.identity)
order by 1, 2
"""

RECORD_CODE_OBJECTS = f"""
delete from sync_private.code_object;
insert into sync_private.code_object (type, identity) {CODE_OBJECTS};
"""

#: How each type of object is moved out of our schemas, to keep it.
MOVE = {
    "view": "ALTER VIEW {} SET SCHEMA <your schema>;",
    "function": "ALTER FUNCTION {} SET SCHEMA <your schema>;",
    "procedure": "ALTER PROCEDURE {} SET SCHEMA <your schema>;",
    "aggregate": "ALTER AGGREGATE {} SET SCHEMA <your schema>;",
    "composite type": "ALTER TYPE {} SET SCHEMA <your schema>;",
}


# Grants a site made on the views, functions and types of schema sync to roles
# that are not ours (nor PUBLIC, nor the owner): the reset drops the objects
# and with them their grants; the load makes them again where the object
# still exists under the same name (ADR 0015, addendum). Our own roles get
# exactly what db/90-roles.sql grants.
SITE_GRANTS = """
with acl (kind, object, columns, acl, owner) as (
    select 'table', format('%I.%I', c.relnamespace::regnamespace, c.relname), null::text,
           c.relacl, c.relowner
    from pg_catalog.pg_class as c
    where c.relkind = 'v' and c.relnamespace = to_regnamespace('sync')
    union all
    select 'table', format('%I.%I', c.relnamespace::regnamespace, c.relname),
           format('%I', a.attname), a.attacl, c.relowner
    from pg_catalog.pg_class as c
    join pg_catalog.pg_attribute as a on a.attrelid = c.oid and a.attnum > 0
    where c.relkind = 'v' and c.relnamespace = to_regnamespace('sync') and a.attacl is not null
    union all
    select 'routine', format('%I.%I(%s)', p.pronamespace::regnamespace, p.proname,
                             pg_catalog.pg_get_function_identity_arguments(p.oid)),
           null, p.proacl, p.proowner
    from pg_catalog.pg_proc as p
    where p.pronamespace = to_regnamespace('sync')
    union all
    select 'type', format('%I.%I', t.typnamespace::regnamespace, t.typname), null,
           t.typacl, t.typowner
    from pg_catalog.pg_type as t
    join pg_catalog.pg_class as c on c.oid = t.typrelid
    where c.relkind = 'c' and t.typnamespace = to_regnamespace('sync')
)
select acl.kind, acl.object, acl.columns, g.privilege_type, format('%I', r.rolname),
       g.is_grantable
from acl
cross join lateral pg_catalog.aclexplode(acl.acl) as g
join pg_catalog.pg_roles as r on r.oid = g.grantee
where g.grantee <> acl.owner
  and r.rolname not in ('sync_hook', 'sync_hook_login', 'sync_dba',
                        'smart_library_reader', 'smart_library_login')
order by 2, 3, 4, 5
"""

COLUMN_EXISTS = """
select exists (select from pg_catalog.pg_attribute
               where attrelid = to_regclass(%s) and format('%%I', attname) = %s
                 and attnum > 0 and not attisdropped)
"""
EXISTS = {
    "table": "select to_regclass(%s) is not null",
    "routine": "select to_regprocedure(%s) is not null",
    "type": "select to_regtype(%s) is not null",
}


# yoyo holds its lock row from before the first migration of a run to after
# the last, stamped by the same clock that stamps each migration applied.
APPLIED_THIS_RUN = """
select m.migration_id
from _yoyo_migration as m
join yoyo_lock as l on l.pid = %s and m.applied_at_utc >= l.ctime
order by m.migration_id
"""


def what_was_changed(cursor: Any) -> str:
    """What a failed code load leaves behind: nothing, or this run's numbered migrations."""
    cursor.execute(APPLIED_THIS_RUN, [os.getpid()])
    applied = [row[0] for row in cursor.fetchall()]
    if not applied:
        return "Nothing was changed."
    # Each numbered migration commits on its own: a hostile review found the
    # deploy saying "Nothing was changed" over committed tables, with the old
    # code quarantining every delivery it could not merge on them.
    return (
        "The code load changed nothing, but this run first applied and committed"
        f" {', '.join(applied)}: until the code loads, the previous release's code runs"
        " on their tables, and a delivery it cannot merge is quarantined as"
        " internal.error (stored, not lost). Run yoyo apply again as soon as you can,"
        " then SELECT * FROM sync.retry_all('internal.error');"
    )


def refuse_outside_dependents(cursor: Any) -> None:
    """Refuse the load when objects outside sync and sync_private depend on what it drops."""
    cursor.execute(OUTSIDE_DEPENDENTS)
    dependents = cursor.fetchall()
    if dependents:
        lines = "\n".join(
            f"  {dependent} depends on {ours}"
            + (f" ({session})" if session else "")
            + (f" ({fix})" if fix else "")
            for dependent, ours, session, fix in dependents
        )
        # Any login granted a function or type of ours (the hook's) can make a
        # temporary view over it, which held up every deploy for as long as its
        # session lived, under a message to drop it that no other session can
        # follow (hostile review): such a line names the session to end.
        temporary = (
            " A temporary object goes only with its session: end it as its line says."
            if any(session for _, _, session, _ in dependents)
            else ""
        )
        raise RuntimeError(
            "the database code was not loaded: it drops and creates again every view,"
            " function and type of schemas sync and sync_private, and these objects of"
            f" the site's (in those schemas or not) depend on one:\n{lines}\n"
            f"{what_was_changed(cursor)} Save their definitions (pg_dump --schema-only, or"
            " pg_get_viewdef, pg_get_indexdef), drop them, run yoyo apply again, then create"
            " them again."
            f"{temporary}"
        )


def refuse_foreign_objects(cursor: Any) -> None:
    """Refuse the load when sync or sync_private holds an object the last load did not make.

    Nothing is recorded before the first load after migration 0064: that
    load takes what is there as the sync's (nothing tells a site's objects
    apart before a load has recorded its own) and records it.
    """
    cursor.execute("select exists (select from sync_private.code_object)")
    if not cursor.fetchone()[0]:
        return
    cursor.execute(FOREIGN_OBJECTS)
    foreign = cursor.fetchall()
    if not foreign:
        return
    lines = "\n".join(
        f"  {kind} {identity} (move it: {MOVE[kind].format(identity)})"
        if kind in MOVE
        else f"  {kind} {identity} (it calls a function of ours, which every deploy drops and"
        " makes again: save it, drop it, and have it call a function of your own)"
        for kind, identity in foreign
    )
    raise RuntimeError(
        "the database code was not loaded: schemas sync and sync_private hold the sync's code,"
        " which every deploy drops and creates again, and these objects there are not the"
        f" sync's (a deploy would drop them):\n{lines}\n{what_was_changed(cursor)} Move each"
        " to a schema of your own as its line says (and what calls it by name: a view or"
        " index over it follows it), then run yoyo apply again."
    )


def record_code_objects(cursor: Any) -> None:
    """Record what this load made, so the next one tells a site's objects in our schemas."""
    cursor.execute(RECORD_CODE_OBJECTS)


def site_grants(cursor: Any) -> list[tuple[str, str, str | None, str, str, bool]]:
    """The grants on our views, functions and types to roles that are not ours."""
    cursor.execute(SITE_GRANTS)
    return cursor.fetchall()


def _still_there(cursor: Any, kind: str, name: str, column: str | None) -> bool:
    """Whether an object (and column) a grant was on exists again under its name."""
    cursor.execute(EXISTS[kind], [name])
    if not cursor.fetchone()[0]:
        return False
    if column is None:
        return True
    cursor.execute(COLUMN_EXISTS, [name, column])
    return bool(cursor.fetchone()[0])


def grant_again(cursor: Any, grants: list[tuple[str, str, str | None, str, str, bool]]) -> None:
    """Make the site's grants again where the object exists; say which could not be."""
    lost = []
    for kind, name, column, privilege, grantee, grantable in grants:
        columns = f" ({column})" if column else ""
        if not _still_there(cursor, kind, name, column):
            lost.append(f"{privilege}{columns} on {kind} {name} to {grantee}")
            continue
        option = " with grant option" if grantable else ""
        cursor.execute(f"grant {privilege}{columns} on {kind} {name} to {grantee}{option}")
    if lost:
        message = (
            "grants not kept (their object is gone, or its name or arguments changed): "
            + "; ".join(lost)
        )
        cursor.execute("select set_config('sync.lost_grants', %s, true)", [message])
        cursor.execute("do $$ begin raise notice '%', current_setting('sync.lost_grants'); end $$")
        print(f"NOTICE: {message}", file=sys.stderr)


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
        " extract(epoch from current_setting('deadlock_timeout')::interval) * 1000,"
        " extract(epoch from current_setting('statement_timeout')::interval) * 1000"
    )
    lock_timeout, deadlock_ms, statement_ms = cursor.fetchone()
    budget_ms = max(1, min(int(ATTEMPT_SECONDS * 1000), int(deadlock_ms) // 2))
    # A site's statement_timeout under the attempt cancelled the attempt as a slow
    # statement (57014), which is no lock timeout: the deploy failed at once instead of
    # waiting its turn (hostile review). An attempt stays under half of it.
    if statement_ms > 0:
        budget_ms = max(1, min(budget_ms, int(statement_ms) // 2))
    # It pauses between attempts inside its transaction, holding nothing: a site's
    # idle_in_transaction_session_timeout under PAUSE_SECONDS ended its session in
    # the first pause, and the deploy failed with "the connection is closed" (hostile
    # review). SYNC_DEPLOY_LOCK_WAIT bounds the pauses instead.
    cursor.execute("set local idle_in_transaction_session_timeout = 0")
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
                    f"{what_was_changed(cursor)} Let those transactions end (or end them:"
                    " select pg_terminate_backend(<pid>);) and run yoyo apply again, or"
                    f" give the deploy longer with {LOCK_WAIT_VARIABLE}=<seconds>."
                ) from error
            time.sleep(PAUSE_SECONDS)
            continue
        cursor.execute("release savepoint sync_code_turn")
        cursor.execute("select set_config('lock_timeout', %s, true)", [lock_timeout])
        return


def say_why_pg_cron_is_not_used(cursor: Any) -> None:
    """Print on stderr why pg_cron, installed here, runs none of our jobs (if it does not).

    yoyo shows no NOTICE of the database: without this line the deploy said
    nothing, and only sync.schedule() (or health, a day later) told anyone
    that the cron lines must run the jobs.
    """
    cursor.execute("select sync_private.pg_cron_refusal()")
    (refusal,) = cursor.fetchone()
    if refusal:
        print(f"NOTICE: {refusal}", file=sys.stderr)


def say_what_our_roles_hold_beyond_their_rights(cursor: Any) -> None:
    """Print on stderr each right one of our roles holds beyond what the sync gives it.

    The migrations make a role only where it is missing: one that existed
    (another database, compose's init scripts, a site's smart library login)
    kept what it had, and the deploy said nothing of it.
    """
    cursor.execute("select sync_private.rights_beyond_roles()")
    for (line,) in cursor.fetchall():
        print(f"NOTICE: {line}", file=sys.stderr)


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
        refuse_outside_dependents(cursor)
        refuse_foreign_objects(cursor)
        grants = site_grants(cursor)
        take_turn(cursor, files)
        cursor.execute(RESET)
        for path in files:
            cursor.execute(path.read_text())
        grant_again(cursor, grants)
        record_code_objects(cursor)
        say_why_pg_cron_is_not_used(cursor)
        say_what_our_roles_hold_beyond_their_rights(cursor)


steps = [step(load_database_code)]
