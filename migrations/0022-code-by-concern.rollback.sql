-- Put back the code as 0018 left it (from sync_private.code_0018) and remove the private schema
-- Drop the code the current db/ files made (9999-database-code.py): every trigger,
-- view, function, aggregate and composite type of schemas sync and sync_private.
do $$
declare
    v_schemas constant regnamespace[] := array[to_regnamespace('sync'), to_regnamespace('sync_private')];
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
        select format('%I.%I', c.relnamespace::regnamespace, c.relname) as name from pg_catalog.pg_class as c
        where c.relkind = 'v' and c.relnamespace = any (v_schemas)
    loop
        execute format('drop view if exists %s cascade', v_object.name);
    end loop;
    for v_object in
        select p.oid::regprocedure as name, p.prokind from pg_catalog.pg_proc as p
        where p.pronamespace = any (v_schemas)
    loop
        execute format('drop %s %s', case v_object.prokind when 'a' then 'aggregate' when 'p' then 'procedure'
                                          else 'function' end, v_object.name);
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

comment on column sync.cms_snapshot.fragrance_id is null;
comment on column sync.cms_snapshot.description is null;
comment on column sync.cms_snapshot.cost is null;
comment on column sync.cms_snapshot.forbidden is null;
comment on column sync.cms_snapshot.loaded_at is null;
comment on column sync.fragrance_history.id is null;
comment on column sync.fragrance_history.fragrance_id is null;
comment on column sync.fragrance_history.operation is null;
comment on column sync.fragrance_history.changed_at is null;

revoke select on sequence sync.inbox_id_seq from sync_dba;

-- The field clock back to one column per field.
alter table sync.field_version
    add column name_inbox_id bigint not null default 0,
    add column description_inbox_id bigint not null default 0,
    add column cost_inbox_id bigint not null default 0,
    add column forbidden_inbox_id bigint not null default 0;
update sync.field_version
set name_inbox_id = coalesce((versions ->> 'name')::bigint, 0),
    description_inbox_id = coalesce((versions ->> 'description')::bigint, 0),
    cost_inbox_id = coalesce((versions ->> 'cost')::bigint, 0),
    forbidden_inbox_id = coalesce((versions ->> 'forbidden')::bigint, 0);
alter table sync.field_version drop column versions;
comment on column sync.field_version.fragrance_id is null;
comment on column sync.field_version.name_inbox_id is
    'sync.inbox.id that last set public.fragrances.name (0: never).';
comment on column sync.field_version.description_inbox_id is
    'sync.inbox.id that last set public.fragrances.description (0: never).';
comment on column sync.field_version.cost_inbox_id is
    'sync.inbox.id that last set public.fragrances.cost (0: never).';
comment on column sync.field_version.forbidden_inbox_id is
    'sync.inbox.id that last set public.fragrances.forbidden (0: never).';
comment on table sync.field_version is
    'Per-field clock: the inbox id of the delivery (or the inbox position of the hand edit) that last set each field. A delivery writes a field only when its id is greater. No row means never set by sync (all zero).';

-- The 0018 code, statement by statement (function bodies refer to each other;
-- they are checked when they run, as they were when 0018 made them).
do $$
declare
    v_statement text;
begin
    perform set_config('check_function_bodies', 'off', true);
    for v_statement in select c.statement from sync_private.code_0018 as c order by c.position loop
        execute v_statement;
    end loop;
end;
$$;
alter table sync.cms_snapshot alter column inbox_position set default sync.inbox_position();

drop table sync_private.code_0018;
drop table sync_private.merging;
drop schema sync_private;
