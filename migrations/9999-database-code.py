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
        cursor.execute(RESET)
        for path in files:
            cursor.execute(path.read_text())


steps = [step(load_database_code)]
