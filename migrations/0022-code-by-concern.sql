-- Move the database code out of the migrations into db/ (loaded on every apply), internals into their own schema
-- depends: 0019-smart-library-reader 0020-inbox-origin 0021-rules-and-findings

-- From here on the current text of every function, view and trigger lives in
-- one file per concern under db/, and 9999-database-code.py drops and creates
-- them on every apply (ADR 0015). Migrations carry only what holds data:
-- schemas, tables, columns, indexes, roles and their grants.

create schema sync_private;
comment on schema sync_private is
    'Fragrance sync internals: the rules, the merge and their helpers. Granted to nobody; the API in schema sync runs as its owner and calls these.';
revoke all on schema sync_private from public;

-- The merge writes its own history, one row per delivery, and the statement
-- triggers on public.fragrances must then skip its statements. A setting
-- could be forged by any session to switch the audit off; a row in a table
-- only the owner writes cannot.
create unlogged table sync_private.merging (
    xid xid8 primary key
);
comment on table sync_private.merging is
    'Transactions whose merge is writing public.fragrances right now (a row exists only inside sync_private.write): the history triggers skip their statements, since the merge records its own history per delivery. Only the owner can write it.';
comment on column sync_private.merging.xid is
    'The top-level transaction id (pg_current_xact_id()) of the merge.';

-- The code as 0018 left it, statement by statement, so a rollback of this
-- migration restores it exactly (the landed rollbacks before it expect it).
create table sync_private.code_0018 (
    position integer primary key,
    statement text not null
);
comment on table sync_private.code_0018 is
    'The functions, views, triggers, types, comments and grants of schema sync as migration 0018 left them, as SQL statements in the order that recreates them. Written by 0022, read only by its rollback.';
comment on column sync_private.code_0018.position is 'Order of execution.';
comment on column sync_private.code_0018.statement is 'One SQL statement.';

insert into sync_private.code_0018 (position, statement)
select row_number() over (order by s.stage, s.oid, s.sub), s.statement
from (
    select 10 as stage, t.oid, 0 as sub,
        format('create type %s as (%s)', t.oid::regtype,
            (select string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' order by a.attnum)
             from pg_catalog.pg_attribute as a where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped)) as statement
    from pg_catalog.pg_type as t
    join pg_catalog.pg_class as c on c.oid = t.typrelid and c.relkind = 'c'
    where t.typnamespace = 'sync'::regnamespace
    union all
    select 20, p.oid, 0, pg_get_functiondef(p.oid)
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'sync'::regnamespace and p.prokind = 'f'
    union all
    select 30, p.oid, 0,
        format('create aggregate %s (sfunc = %s, stype = %s%s)', p.oid::regprocedure, a.aggtransfn::regproc,
            format_type(a.aggtranstype, null), coalesce(format(', initcond = %L', a.agginitval), ''))
    from pg_catalog.pg_proc as p
    join pg_catalog.pg_aggregate as a on a.aggfnoid = p.oid
    where p.pronamespace = 'sync'::regnamespace
    union all
    select 40, c.oid, 0, format('create view %s as %s', c.oid::regclass, rtrim(pg_get_viewdef(c.oid), ';'))
    from pg_catalog.pg_class as c
    where c.relnamespace = 'sync'::regnamespace and c.relkind = 'v'
    union all
    select 50, t.oid, 0, pg_get_triggerdef(t.oid)
    from pg_catalog.pg_trigger as t
    join pg_catalog.pg_proc as p on p.oid = t.tgfoid
    where not t.tgisinternal and p.pronamespace = 'sync'::regnamespace
    union all
    select 60, t.oid, 0, format('comment on type %s is %L', t.oid::regtype, d.description)
    from pg_catalog.pg_type as t
    join pg_catalog.pg_class as c on c.oid = t.typrelid and c.relkind = 'c'
    join pg_catalog.pg_description as d on d.objoid = t.oid and d.classoid = 'pg_type'::regclass
    where t.typnamespace = 'sync'::regnamespace
    union all
    select 60, p.oid, 0, format('comment on %s %s is %L',
        case p.prokind when 'a' then 'aggregate' else 'function' end, p.oid::regprocedure, d.description)
    from pg_catalog.pg_proc as p
    join pg_catalog.pg_description as d on d.objoid = p.oid and d.classoid = 'pg_proc'::regclass
    where p.pronamespace = 'sync'::regnamespace
    union all
    select 60, c.oid, d.objsubid,
        case when d.objsubid = 0 then format('comment on view %s is %L', c.oid::regclass, d.description)
             else format('comment on column %s.%I is %L', c.oid::regclass,
                         (select a.attname from pg_catalog.pg_attribute as a
                          where a.attrelid = c.oid and a.attnum = d.objsubid), d.description) end
    from pg_catalog.pg_class as c
    join pg_catalog.pg_description as d on d.objoid = c.oid and d.classoid = 'pg_class'::regclass
    where c.relnamespace = 'sync'::regnamespace and c.relkind = 'v'
    union all
    select 70, p.oid, 0, format('revoke all on function %s from public', p.oid::regprocedure)
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'sync'::regnamespace and p.proacl is not null
    union all
    select 71, p.oid, a.n::integer, format('grant %s on function %s to %s', a.privilege_type, p.oid::regprocedure,
        case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end)
    from pg_catalog.pg_proc as p
    cross join lateral aclexplode(p.proacl) with ordinality as a (grantor, grantee, privilege_type, is_grantable, n)
    where p.pronamespace = 'sync'::regnamespace and a.grantee <> p.proowner
    union all
    select 71, c.oid, a.n::integer, format('grant %s on %s to %s', a.privilege_type, c.oid::regclass,
        case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end)
    from pg_catalog.pg_class as c
    cross join lateral aclexplode(c.relacl) with ordinality as a (grantor, grantee, privilege_type, is_grantable, n)
    where c.relnamespace = 'sync'::regnamespace and c.relkind = 'v' and a.grantee <> c.relowner
) as s;

-- The field clock becomes one JSON map per fragrance ({"name": 42, ...}), so
-- the merge names no field. The 0018 views that read its columns go first
-- (the new code replaces every view right after this migration).
drop view sync.drift_summary;
drop view sync.drift;
alter table sync.field_version add column versions jsonb not null default '{}'
    check (jsonb_typeof(versions) = 'object');
update sync.field_version
set versions = jsonb_strip_nulls(jsonb_build_object(
    'name', nullif(name_inbox_id, 0),
    'description', nullif(description_inbox_id, 0),
    'cost', nullif(cost_inbox_id, 0),
    'forbidden', nullif(forbidden_inbox_id, 0)));
alter table sync.field_version
    drop column name_inbox_id,
    drop column description_inbox_id,
    drop column cost_inbox_id,
    drop column forbidden_inbox_id;
comment on table sync.field_version is
    'Per-field clock: for each fragrance, the inbox id of the delivery (or the inbox position of the hand edit) that last set each field. A delivery writes a field only when its id is greater. A field not in the map was never set by the sync (0).';
comment on column sync.field_version.fragrance_id is
    'The fragrance (public.fragrances.fragrance_id).';
comment on column sync.field_version.versions is
    'Field name to the sync.inbox.id that last set it, e.g. {"cost": 42, "name": 7}.';

-- The snapshot's default position read the sequence through sync.inbox_position(),
-- which the code load drops and creates: read it directly instead. DBAs load
-- snapshots with \copy, so they need to read the sequence.
alter table sync.cms_snapshot
    alter column inbox_position set default coalesce(pg_catalog.pg_sequence_last_value('sync.inbox_id_seq'::regclass), 0);
grant select on sequence sync.inbox_id_seq to sync_dba;

-- Every column says what it holds (\d+ shows it).
comment on column sync.fragrance_history.id is 'Order of the changes.';
comment on column sync.fragrance_history.fragrance_id is 'The fragrance changed.';
comment on column sync.fragrance_history.operation is 'insert, update or delete.';
comment on column sync.fragrance_history.changed_at is 'When the change was made (clock time inside its transaction).';
comment on column sync.cms_snapshot.fragrance_id is 'The CMS''s fragrance id.';
comment on column sync.cms_snapshot.description is 'The CMS value as exported, unchecked.';
comment on column sync.cms_snapshot.cost is 'The CMS value as exported, unchecked.';
comment on column sync.cms_snapshot.forbidden is 'The CMS value as exported, unchecked.';
comment on column sync.cms_snapshot.loaded_at is 'When the snapshot was loaded here.';
