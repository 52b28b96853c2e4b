"""The catalog of our objects as sorted lines of text, to compare two databases.

Covers what a migration or the code load can change: our schemas, their
tables, columns, constraints, indexes, sequences, views, functions,
aggregates, composite types, triggers (ours on any table), comments, grants,
and the extension the drift loader uses. OIDs never appear, so a database
upgraded in place and a fresh install compare equal exactly when they hold
the same definitions.
"""

from __future__ import annotations

import psycopg

OURS = "array['sync', 'sync_private', 'sync_remote']::name[]"

CATALOG = f"""
with ours as (select oid, nspname, nspacl from pg_namespace where nspname = any ({OURS}))
select 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '-')
    || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
from ours as n
union all
select 'relation ' || c.oid::regclass || ' kind=' || c.relkind::text
    || ' acl=' || coalesce(c.relacl::text, '-')
    || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-')
    || ' persistence=' || c.relpersistence::text
from pg_class as c join ours as n on n.oid = c.relnamespace
where c.relkind in ('r', 'v', 'm', 'S', 'f', 'c', 'p')
union all
select 'column ' || c.oid::regclass || '.' || a.attname
    || ' ' || format_type(a.atttypid, a.atttypmod)
    || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
    || ' acl=' || coalesce(a.attacl::text, '-')
    || ' comment=' || coalesce(col_description(c.oid, a.attnum), '-')
from pg_class as c join ours as n on n.oid = c.relnamespace
join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_attrdef as d on d.adrelid = c.oid and d.adnum = a.attnum
where c.relkind in ('r', 'v', 'm', 'f', 'c', 'p')
union all
select 'constraint ' || r.conrelid::regclass || ' ' || r.conname
    || ' ' || pg_get_constraintdef(r.oid)
from pg_constraint as r join ours as n on n.oid = r.connamespace
union all
select 'index ' || pg_get_indexdef(i.indexrelid)
from pg_index as i
join pg_class as c on c.oid = i.indexrelid
join ours as n on n.oid = c.relnamespace
union all
select 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid)
from pg_class as c
join ours as n on n.oid = c.relnamespace
where c.relkind = 'v'
union all
select 'function ' || p.oid::regprocedure
    -- A procedure has no result: null here made its whole line null, and so blind.
    || ' returns ' || coalesce(pg_get_function_result(p.oid), '-')
    || ' kind=' || p.prokind::text || ' lang=' || l.lanname || ' volatile=' || p.provolatile::text
    || ' definer=' || p.prosecdef || ' strict=' || p.proisstrict
    || ' parallel=' || p.proparallel::text
    || ' config=' || coalesce(p.proconfig::text, '-') || ' acl=' || coalesce(p.proacl::text, '-')
    || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-') || ' body=' || p.prosrc
from pg_proc as p
join ours as n on n.oid = p.pronamespace
join pg_language as l on l.oid = p.prolang
union all
select 'aggregate ' || g.aggfnoid::regprocedure || ' sfunc=' || g.aggtransfn::regproc
    || ' stype=' || format_type(g.aggtranstype, null) || ' init=' || coalesce(g.agginitval, '-')
from pg_aggregate as g
join pg_proc as p on p.oid = g.aggfnoid
join ours as n on n.oid = p.pronamespace
union all
select 'type ' || t.oid::regtype || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '-')
from pg_type as t join ours as n on n.oid = t.typnamespace
where t.typtype in ('c', 'd', 'e')
  and (t.typrelid = 0 or (select relkind from pg_class where oid = t.typrelid) = 'c')
union all
select 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
    || ' comment=' || coalesce(obj_description(t.oid, 'pg_trigger'), '-')
from pg_trigger as t
join pg_proc as p on p.oid = t.tgfoid
join ours as n on n.oid = p.pronamespace
where not t.tgisinternal
union all
-- Sorted: an ACL lists its entries in the order they were granted.
select 'grant on public.fragrances '
    || coalesce((select string_agg(a::text, ',' order by a::text) from unnest(c.relacl) as a), '-')
from pg_class as c where c.oid = 'public.fragrances'::regclass
union all
select 'extension ' || e.extname || ' in ' || e.extnamespace::regnamespace
from pg_extension as e join ours as n on n.oid = e.extnamespace
order by 1
"""


def describe_catalog(conn: psycopg.Connection) -> list[str]:
    """Every definition of ours in this database, one sorted line each.

    A null line would compare equal to any other null line, whatever object
    it stood for: refused, so no part of the comparison is blind.
    """
    lines = [row[0] for row in conn.execute(CATALOG).fetchall()]
    assert None not in lines, "a catalog line is null: a part of CATALOG gave null"
    return lines
