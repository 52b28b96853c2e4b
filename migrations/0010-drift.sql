-- Drift: load a snapshot of the CMS catalog, report how the library differs, repair through the inbox
-- depends: 0007-roles

-- sync_remote holds what reading the CMS database through postgres_fdw
-- needs: the extension (when this migration may create it) and, only for
-- the length of one sync.load_snapshot_from_server() call, a foreign table.
create schema if not exists sync_remote;
comment on schema sync_remote is
    'Fragrance sync: postgres_fdw and the transient foreign table that sync.load_snapshot_from_server() reads the CMS catalog through.';

-- postgres_fdw ships with the server (Debian: postgresql-15) but only a
-- superuser may create it. Where the migration runs as one (docker-compose,
-- tests) it does; elsewhere it says what a superuser must run, and the file
-- loaders below work without it.
do $$
begin
    if exists (select from pg_catalog.pg_extension where extname = 'postgres_fdw') then
        raise notice 'postgres_fdw is already installed: sync.load_snapshot_from_server() can use it';
    elsif not exists (select from pg_catalog.pg_available_extensions where name = 'postgres_fdw') then
        raise notice 'postgres_fdw is not available on this server: load CMS snapshots from files instead';
    elsif not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
        raise notice 'postgres_fdw not created (needs a superuser). To read the CMS database directly, a superuser runs: create extension postgres_fdw schema sync_remote; grant usage on foreign data wrapper postgres_fdw to %;', current_user;
    else
        create extension postgres_fdw schema sync_remote;
    end if;
end;
$$;

-- sync.inbox_position
-- The receipt position (inbox id) reached now, or at a past moment.
create function sync.inbox_position(p_at timestamptz default null) returns bigint
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    select case
        when p_at is null then
            (select case when is_called then last_value else 0 end from sync.inbox_id_seq)
        else
            coalesce((select id from sync.inbox where received_at <= p_at
                      order by received_at desc limit 1), 0)
    end;
$$;
comment on function sync.inbox_position(timestamptz) is
    'The last inbox id handed out now (no argument), or the last delivery received at or before p_at: deliveries after it are newer than a CMS export taken at that moment.';

-- sync.cms_snapshot: one full copy of the CMS catalog, the reference drift is measured against.
create table sync.cms_snapshot (
    fragrance_id integer primary key,
    name text,
    description text,
    cost numeric,
    forbidden boolean,
    source text not null default 'copy',
    loaded_at timestamptz not null default now(),
    taken_at timestamptz not null default now(),
    inbox_position bigint not null default sync.inbox_position()
);
comment on table sync.cms_snapshot is
    'The latest full snapshot of the CMS catalog (one row per CMS fragrance), loaded from a CSV or JSON export or through postgres_fdw. Replace it whole before each drift check; see sync.drift.';
comment on column sync.cms_snapshot.name is
    'The CMS value as exported, unchecked (text, not varchar(150)): the repair validates it like any delivery.';
comment on column sync.cms_snapshot.source is
    'Where the rows came from: a file name, ''json'', ''copy'' (psql \copy) or host:port/dbname of the CMS database.';
comment on column sync.cms_snapshot.taken_at is
    'When the CMS catalog was exported; deliveries received after it are newer than this snapshot.';
comment on column sync.cms_snapshot.inbox_position is
    'sync.inbox_position(taken_at): a library field set by a later delivery is newer than the snapshot and is never repaired from it.';

-- sync.drift: every difference between the snapshot and public.fragrances.
create view sync.drift as
select
    s.fragrance_id,
    'missing'::text as kind,
    null::text as field,
    jsonb_build_object('name', s.name, 'description', s.description,
                       'cost', s.cost, 'forbidden', s.forbidden) as cms_value,
    null::jsonb as library_value,
    false as newer_in_library
from sync.cms_snapshot as s
where not exists (select from public.fragrances as f where f.fragrance_id = s.fragrance_id)
union all
select
    f.fragrance_id,
    'extra',
    null,
    null,
    jsonb_build_object('name', f.name, 'description', f.description,
                       'cost', f.cost, 'forbidden', f.forbidden),
    false
from public.fragrances as f
where exists (select from sync.cms_snapshot)
  and not exists (select from sync.cms_snapshot as s where s.fragrance_id = f.fragrance_id)
union all
select
    s.fragrance_id,
    'differs',
    c.field,
    c.cms_value,
    c.library_value,
    coalesce(c.version, 0) > s.inbox_position
from sync.cms_snapshot as s
join public.fragrances as f on f.fragrance_id = s.fragrance_id
left join sync.field_version as v on v.fragrance_id = s.fragrance_id
cross join lateral (values
    ('name', to_jsonb(s.name), to_jsonb(f.name::text), v.name_inbox_id),
    ('description', to_jsonb(s.description), to_jsonb(f.description::text), v.description_inbox_id),
    ('cost', to_jsonb(s.cost), to_jsonb(f.cost), v.cost_inbox_id),
    ('forbidden', to_jsonb(s.forbidden), to_jsonb(f.forbidden), v.forbidden_inbox_id)
) as c(field, cms_value, library_value, version)
where c.cms_value is distinct from c.library_value;
comment on view sync.drift is
    'Differences between sync.cms_snapshot and public.fragrances: missing (in the CMS, not in the library), extra (in the library, not in the CMS) and differs (one row per differing field). Empty while no snapshot is loaded.';
comment on column sync.drift.kind is
    'missing, extra or differs.';
comment on column sync.drift.field is
    'The differing column for kind differs; null for whole rows.';
comment on column sync.drift.cms_value is
    'The snapshot''s value (the whole row as JSON for missing); null for extra.';
comment on column sync.drift.library_value is
    'public.fragrances'' value (the whole row as JSON for extra); null for missing.';
comment on column sync.drift.newer_in_library is
    'True when a delivery received after the snapshot was taken set this field: the library is newer, reload the snapshot rather than repair.';

-- sync.drift_summary: the drift report in counts.
create view sync.drift_summary as
select
    d.kind,
    d.field,
    count(distinct d.fragrance_id) as fragrances,
    count(*) filter (where d.newer_in_library) as newer_in_library
from sync.drift as d
group by grouping sets ((d.kind), (d.kind, d.field))
having grouping(d.field) = 1 or d.kind = 'differs'
order by d.kind, d.field nulls first;
comment on view sync.drift_summary is
    'How many fragrances are missing, extra or differ, and for differs how many per field (field null: any field). newer_in_library counts differences the repair leaves alone.';

-- sync.plan_repair
-- The deltas sync.repair() would send, one per fragrance, without sending them.
create function sync.plan_repair()
    returns table (fragrance_id integer, kind text, fields text[], body jsonb)
    language sql
    stable
as $$
    select
        d.fragrance_id,
        min(d.kind),
        case when min(d.kind) = 'missing' then array['name', 'description', 'cost', 'forbidden']
             else array_agg(d.field order by d.field) filter (where d.kind = 'differs') end,
        jsonb_build_object('fragrance_id', d.fragrance_id)
            || case when min(d.kind) = 'missing' then min(d.cms_value::text)::jsonb
                    else jsonb_object_agg(d.field, coalesce(d.cms_value, 'null'))
                             filter (where d.kind = 'differs') end
    from sync.drift as d
    where d.kind in ('missing', 'differs')
      and not d.newer_in_library
    group by d.fragrance_id
    order by d.fragrance_id;
$$;
comment on function sync.plan_repair() is
    'Dry run of sync.repair(): per fragrance, the delta it would deliver (a complete create for a missing row, only the differing fields otherwise). Extra rows and fields newer in the library are left out. Usage: SELECT * FROM sync.plan_repair();';

-- sync.repair
-- Delivers each planned repair delta through the inbox, like a webhook, and returns the receipts.
create function sync.repair(p_apply boolean default true)
    returns table (inbox_id bigint, fragrance_id integer, kind text, status text, reasons jsonb)
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_plan record;
    v_source text;
    v_apply_on_receipt boolean;
begin
    -- A load waits for the repair, so the plan and the snapshot are the same one.
    lock table sync.cms_snapshot in share mode;
    select format('%s taken %s', min(s.source), min(s.taken_at)) into v_source
    from sync.cms_snapshot as s having count(*) > 0;
    if v_source is null then
        raise exception 'no CMS snapshot is loaded, so there is nothing to repair from'
            using errcode = 'FS050',
                  hint = 'Load one first: see sync.load_snapshot() or sync.load_snapshot_from_server().';
    end if;

    -- Lock the fragrances before planning, in id order: a webhook for one of
    -- them either committed before (the plan sees it) or waits for the repair
    -- and, received later, wins. Unlocked, a delivery landing between the plan
    -- and the inserts below could be overwritten by the older snapshot value.
    perform 1 from public.fragrances as f
    where f.fragrance_id in (select s.fragrance_id from sync.cms_snapshot as s)
    order by f.fragrance_id
    for update;

    -- Staging (p_apply false) holds the settings row for this transaction
    -- only: other sessions keep applying on receipt as before.
    if not p_apply then
        select s.apply_on_receipt into v_apply_on_receipt from sync.settings as s for update;
        update sync.settings set apply_on_receipt = false;
    end if;

    for v_plan in select * from sync.plan_repair() loop
        insert into sync.inbox as i (body, content_type, user_agent)
        values (convert_to(v_plan.body::text, 'UTF8'), 'application/x-sync-repair',
                format('sync.repair by %s from %s', session_user, v_source))
        returning i.id, i.status, i.reasons into inbox_id, status, reasons;
        fragrance_id := v_plan.fragrance_id;
        kind := v_plan.kind;
        return next;
    end loop;

    if not p_apply then
        update sync.settings set apply_on_receipt = v_apply_on_receipt;
    end if;
end;
$$;
comment on function sync.repair(boolean) is
    'Delivers every delta of sync.plan_repair() into sync.inbox (content type application/x-sync-repair) so it is validated, ordered, applied and audited like a webhook; p_apply false stages them pending for sync.apply_pending(). Usage: SELECT * FROM sync.repair();';

-- sync._replace_snapshot
-- Empties the snapshot under an exclusive lock, ready for a new load in the same transaction.
create function sync._replace_snapshot() returns void
    language plpgsql
as $$
begin
    lock table sync.cms_snapshot in access exclusive mode;
    delete from sync.cms_snapshot;
end;
$$;
comment on function sync._replace_snapshot() is
    'Locks and empties sync.cms_snapshot for the loader that called it.';

-- sync.load_snapshot
-- Replaces the snapshot with a JSON array of CMS rows (the output of json_agg over the CMS table).
create function sync.load_snapshot(
    p_rows jsonb,
    p_source text default 'json',
    p_taken_at timestamptz default null
) returns bigint
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_count bigint;
    v_detail text;
begin
    if jsonb_typeof(p_rows) is distinct from 'array'
        or exists (select from jsonb_array_elements(p_rows) as e
                   where jsonb_typeof(e) <> 'object'
                      or jsonb_typeof(e -> 'fragrance_id') is distinct from 'number')
    then
        raise exception 'a snapshot must be a JSON array of objects that each have a numeric fragrance_id'
            using errcode = 'FS051',
                  hint = 'Export it from the CMS database with: select json_agg(f) from public.fragrances as f';
    end if;

    perform sync._replace_snapshot();
    begin
        insert into sync.cms_snapshot
            (fragrance_id, name, description, cost, forbidden, source, taken_at, inbox_position)
        select r.fragrance_id, r.name, r.description, r.cost, r.forbidden, p_source,
               coalesce(p_taken_at, now()), sync.inbox_position(p_taken_at)
        from jsonb_to_recordset(p_rows)
            as r(fragrance_id integer, name text, description text, cost numeric, forbidden boolean);
    exception when unique_violation or data_exception or not_null_violation then
        get stacked diagnostics v_detail = message_text;
        raise exception 'the snapshot cannot be loaded: %', v_detail
            using errcode = 'FS051',
                  hint = 'Each fragrance_id once, cost a number, forbidden true or false.';
    end;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;
comment on function sync.load_snapshot(jsonb, text, timestamptz) is
    'Replaces sync.cms_snapshot with a JSON array of {fragrance_id, name, description, cost, forbidden}; p_taken_at is when the CMS was exported (default now). Returns the row count. Usage: psql -v file=cms.json -f sql/load-snapshot-json.sql';

-- sync.load_snapshot_from_server
-- Replaces the snapshot with the CMS catalog read through postgres_fdw, leaving no server or password behind.
create function sync.load_snapshot_from_server(
    p_host text,
    p_port integer,
    p_dbname text,
    p_user text,
    p_password text default null,
    p_schema text default 'public',
    p_table text default 'fragrances'
) returns bigint
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_count bigint;
    v_source text := format('%s:%s/%s', p_host, p_port, p_dbname);
    v_state text;
    v_message text;
    v_detail text;
begin
    if not exists (select from pg_catalog.pg_extension where extname = 'postgres_fdw') then
        raise exception 'postgres_fdw is not installed in this database'
            using errcode = 'FS052',
                  hint = format('A superuser runs: create extension postgres_fdw schema sync_remote; '
                      'grant usage on foreign data wrapper postgres_fdw to %I; '
                      'or load an export file instead (docs/readme-drift.md).',
                      (select r.rolname from pg_catalog.pg_proc as p join pg_catalog.pg_roles as r on r.oid = p.proowner
                       where p.oid = 'sync.load_snapshot_from_server(text, integer, text, text, text, text, text)'::regprocedure));
    end if;

    perform sync._replace_snapshot();
    -- The server, the password and the foreign table live only inside this
    -- transaction: created, read once, dropped.
    execute 'drop server if exists sync_cms cascade';
    execute format('create server sync_cms foreign data wrapper postgres_fdw options (host %L, port %L, dbname %L)',
        p_host, p_port::text, p_dbname);
    execute format('create user mapping for current_user server sync_cms options (user %L%s)',
        p_user, case when p_password is null then '' else format(', password %L', p_password) end);
    execute format('create foreign table sync_remote.cms_fragrances (fragrance_id integer, name text, '
        'description text, cost numeric, forbidden boolean) server sync_cms '
        'options (schema_name %L, table_name %L)', p_schema, p_table);
    begin
        execute format('insert into sync.cms_snapshot (fragrance_id, name, description, cost, forbidden, source) '
            'select fragrance_id, name, description, cost, forbidden, %L from sync_remote.cms_fragrances', v_source);
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text,
            v_detail = pg_exception_detail;
        raise exception 'could not read %.% from the CMS database at %: % (SQLSTATE %)',
            p_schema, p_table, v_source,
            v_message || coalesce(': ' || nullif(btrim(v_detail), ''), ''), v_state
            using errcode = 'FS053',
                  hint = 'Check host, port, database, login and password, and that this server may connect there.';
    end;
    get diagnostics v_count = row_count;
    execute 'drop server sync_cms cascade';
    return v_count;
end;
$$;
comment on function sync.load_snapshot_from_server(text, integer, text, text, text, text, text) is
    'Replaces sync.cms_snapshot with the CMS catalog read through postgres_fdw (needs the extension; see sync_remote). Credentials are used for this call only and not stored. Usage: SELECT sync.load_snapshot_from_server(''cms_database'', 5432, ''cms_database'', ''cms_user'', ''secret'');';

grant usage on schema sync_remote to sync_dba;
grant select, insert, update, delete, truncate on sync.cms_snapshot to sync_dba;
grant select on sync.drift, sync.drift_summary to sync_dba;
grant execute on function
    sync.inbox_position(timestamptz),
    sync.plan_repair(),
    sync.repair(boolean),
    sync.load_snapshot(jsonb, text, timestamptz),
    sync.load_snapshot_from_server(text, integer, text, text, text, text, text)
    to sync_dba;

-- New functions are executable by PUBLIC (see post-apply.sql): not ours.
revoke execute on all functions in schema sync from public;
