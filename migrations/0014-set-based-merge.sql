-- Process a batch of claimed deliveries set-wise: one statement per table instead of one per delivery
-- depends: 0013-spooled-receive

-- The per-delivery path stays, under a name that says what it is: the
-- reference the set-based path is tested against, and its fallback.
alter function sync._process_claimed(bigint[]) rename to _process_claimed_rowwise;
comment on function sync._process_claimed_rowwise(bigint[]) is
    'Processes the given (already locked) inbox rows one by one in receipt order, each merge in its own subtransaction, and stores each outcome. The reference behaviour, and the fallback of sync._process_claimed for what the set-based path does not take.';

-- sync.prepared_delivery: sync.prepared with the inbox id it belongs to.
create type sync.prepared_delivery as (
    inbox_id bigint,
    payload jsonb,
    fragrance_id integer,
    reasons jsonb,
    valid boolean
);
comment on type sync.prepared_delivery is
    'One claimed delivery after the data rules: its inbox id and what sync.prepare() says of its body.';

-- sync._is_clean
-- A cheap proof that a parsed body breaks no rule and has no warning; false means "not proven".
create function sync._is_clean(p_payload jsonb, p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    select jsonb_typeof(p_payload) = 'object'
        and p_payload - '{fragrance_id,name,description,cost,forbidden}'::text[] = '{}'
        and jsonb_typeof(p_payload -> 'fragrance_id') = 'number'
        and (p_payload ->> 'fragrance_id')::numeric between 0 and 2147483647
        and (p_payload ->> 'fragrance_id')::numeric = trunc((p_payload ->> 'fragrance_id')::numeric)
        and (not p_payload ? 'name'
             or (jsonb_typeof(p_payload -> 'name') = 'string'
                 and char_length(p_payload ->> 'name') <= 150
                 and (p_payload ->> 'name') !~ '^[[:space:]]*$'))
        and (not p_payload ? 'description'
             or (jsonb_typeof(p_payload -> 'description') = 'string'
                 and char_length(p_payload ->> 'description') <= 1024))
        and (not p_payload ? 'cost'
             or (jsonb_typeof(p_payload -> 'cost') = 'number'
                 and (p_payload ->> 'cost')::numeric between 0 and 1.7976931348623157e308))
        and (not p_payload ? 'forbidden' or jsonb_typeof(p_payload -> 'forbidden') = 'boolean')
        -- No duplicate key (jsonb keeps only the last one). In the text each key
        -- takes two quotes and each string value at least two; numbers and
        -- booleans none. The count is exact only when no key is repeated.
        and length(p_text) - length(replace(p_text, '"', '')) = 2 * (1
            + 2 * (p_payload ? 'name')::integer + 2 * (p_payload ? 'description')::integer
            + (p_payload ? 'cost')::integer + (p_payload ? 'forbidden')::integer);
$$;
comment on function sync._is_clean(jsonb, text) is
    'True only when a parsed body (and its text) certainly passes every data rule with no reason at all, so sync.prepare() would return it valid with no reasons; false sends it through sync.prepare(). Cheap, no exception handling.';

-- sync._check_parsed
-- The rules once a body is parsed: everything sync.prepare() does after sync.parse_body().
create function sync._check_parsed(p_payload jsonb, p_reasons jsonb) returns sync.prepared
    language plpgsql
    immutable
as $$
declare
    v_result sync.prepared;
begin
    v_result.payload := p_payload;
    v_result.reasons := p_reasons;
    if not sync.has_error(v_result.reasons) then
        v_result.reasons := v_result.reasons || sync.check_delta(v_result.payload);
    end if;
    v_result.valid := not sync.has_error(v_result.reasons);
    -- Checked here too: with a duplicate key the rules did not run, and an id
    -- out of range must not abort storing the delivery.
    if jsonb_typeof(v_result.payload -> 'fragrance_id') = 'number'
        and not v_result.reasons @> '[{"field": "fragrance_id"}]'
        and (v_result.payload ->> 'fragrance_id')::numeric between 0 and 2147483647
        and (v_result.payload ->> 'fragrance_id')::numeric = trunc((v_result.payload ->> 'fragrance_id')::numeric)
    then
        v_result.fragrance_id := (v_result.payload ->> 'fragrance_id')::numeric::integer;
    end if;
    return v_result;
end;
$$;
comment on function sync._check_parsed(jsonb, jsonb) is
    'Applies the static data rules to a parsed body and the reasons parsing gave; returns sync.prepared (payload, fragrance_id, reasons, valid).';
-- The rules run with their caller's rights, and DBAs may call them by hand
-- (0007): they need their helpers too (0007 missed _check_text and _show).
grant execute on function
    sync._check_parsed(jsonb, jsonb),
    sync._check_text(jsonb, text, integer, boolean),
    sync._show(jsonb)
    to sync_dba;

create or replace function sync.prepare(p_body bytea) returns sync.prepared
    language sql
    stable
as $$
    select sync._check_parsed(p.payload, p.reasons) from sync.parse_body(p_body) as p;
$$;
comment on function sync.prepare(bytea) is
    'Parses a delivery body and checks it against the static data rules; returns sync.prepared (payload, fragrance_id, reasons, valid).';

-- sync._prepare_many
-- Parses and checks many bodies in one statement; the careful per-row path only where needed.
create function sync._prepare_many(p_ids bigint[]) returns sync.prepared_delivery[]
    language plpgsql
    stable
    -- Plans. A custom plan for the actual array always looks cheaper, so
    -- PostgreSQL would re-plan (and re-inline) every statement on every call,
    -- about 1 ms per small batch; the generic plan is kept for the session
    -- instead. It must then not depend on how big the tables were when it
    -- was made: one made on a fresh, tiny inbox seq-scanned it for good,
    -- slower with every delivery (measured). Every access here is by key, so
    -- seq scans are off, and JIT, which their disabled cost would switch on.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
begin
    -- One statement for the batch: sync.parse_body()'s exception blocks cost a
    -- subtransaction each, so only a batch with a body that fails the casts
    -- pays them; clean bodies (sync._is_clean) skip the per-row rules too.
    begin
        return array(
            select case
                when sync._is_clean(p.payload, t.body_text)
                    then row(i.id, p.payload, (p.payload ->> 'fragrance_id')::numeric::integer,
                             '[]'::jsonb, true)::sync.prepared_delivery
                when jsonb_typeof(p.payload) <> 'object'
                     or (select count(*) = count(distinct k) from json_object_keys(t.body_text::json) as k)
                    then (select row(i.id, s.payload, s.fragrance_id, s.reasons, s.valid)::sync.prepared_delivery
                          from sync._check_parsed(p.payload, '[]') as s)
                else (select row(i.id, s.payload, s.fragrance_id, s.reasons, s.valid)::sync.prepared_delivery
                      from sync.prepare(i.body) as s)
            end
            from sync.inbox as i
            cross join lateral (select convert_from(i.body, 'UTF8') as body_text offset 0) as t
            cross join lateral (select t.body_text::jsonb as payload offset 0) as p
            where i.id = any (p_ids)
            order by i.id);
    exception when others then
        -- Some body is not UTF-8 JSON that jsonb can hold: take the batch row by row.
        return array(
            select row(i.id, s.payload, s.fragrance_id, s.reasons, s.valid)::sync.prepared_delivery
            from sync.inbox as i
            cross join lateral sync.prepare(i.body) as s
            where i.id = any (p_ids)
            order by i.id);
    end;
end;
$$;
comment on function sync._prepare_many(bigint[]) is
    'sync.prepare() for many inbox rows at once, in receipt order, with the same result: clean bodies (sync._is_clean) skip the per-row rules, and the exception handling of parsing is paid once per batch unless a body fails it.';

-- The set-based merge writes its own per-delivery history rows and field
-- clock, so the history trigger must not also record its one UPDATE of
-- public.fragrances. A WHEN clause, not a test in the function: a row the
-- trigger skips is then not even queued.
drop trigger _900_sync_record_history on public.fragrances;
create trigger _900_sync_record_history
    after insert or update or delete on public.fragrances
    for each row
    when (current_setting('sync.history_written', true) is distinct from 'on')
    execute function sync._record_history();

-- sync._merge_objects
-- jsonb || over many rows: the state of a fragrance after a run of deltas.
create aggregate sync._merge_objects(jsonb) (
    sfunc = pg_catalog.jsonb_concat,
    stype = jsonb,
    initcond = '{}'
);
comment on aggregate sync._merge_objects(jsonb) is
    'Concatenates jsonb objects in order, later keys winning (the || operator as an aggregate); over a window it gives the fields of a fragrance after each delivery.';

-- sync._merge_many
-- Merges valid deltas for fragrances the caller has locked, all in one statement per table.
create function sync._merge_many(p_deliveries sync.prepared_delivery[]) returns sync.batch_result
    language plpgsql
    -- Plans: as sync._prepare_many.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_result sync.batch_result;
begin
    -- Tells sync._record_history that the history of this UPDATE is written here.
    perform set_config('sync.history_written', 'on', true);
    with delivery as (
        -- A field applies when this delivery is newer than the field's last writer
        -- before the batch: ids ascend in the batch, so each later one wins too.
        select d.inbox_id, d.fragrance_id, d.payload, d.reasons,
            d.payload ? 'name' and d.inbox_id > coalesce(v.name_inbox_id, 0) as w_name,
            d.payload ? 'description' and d.inbox_id > coalesce(v.description_inbox_id, 0) as w_description,
            d.payload ? 'cost' and d.inbox_id > coalesce(v.cost_inbox_id, 0) as w_cost,
            d.payload ? 'forbidden' and d.inbox_id > coalesce(v.forbidden_inbox_id, 0) as w_forbidden
        from unnest(p_deliveries) as d
        left join sync.field_version as v on v.fragrance_id = d.fragrance_id
    ),
    -- Field values as jsonb, as sync._record_history sees them (to_jsonb of each column).
    write as (
        select d.*,
            jsonb_build_object('name', f.name, 'description', f.description,
                               'cost', f.cost, 'forbidden', f.forbidden) as current,
            -- A valid delta holds no JSON null in these fields, so strip only drops losers.
            jsonb_strip_nulls(jsonb_build_object(
                'name', case when d.w_name then d.payload -> 'name' end,
                'description', case when d.w_description then d.payload -> 'description' end,
                'cost', case when d.w_cost then d.payload -> 'cost' end,
                'forbidden', case when d.w_forbidden then d.payload -> 'forbidden' end)) as writes
        from delivery as d
        join public.fragrances as f on f.fragrance_id = d.fragrance_id
    ),
    step as (
        select w.*,
            w.current || sync._merge_objects(w.writes) over (fragrance_order
                rows between unbounded preceding and 1 preceding) as before,
            lead(w.inbox_id) over fragrance_order is null as is_last
        from write as w
        window fragrance_order as (partition by w.fragrance_id order by w.inbox_id)
    ),
    change as (
        select s.*,
            s.before || s.writes as after,
            s.w_name and s.writes -> 'name' is distinct from s.before -> 'name' as c_name,
            s.w_description and s.writes -> 'description' is distinct from s.before -> 'description' as c_description,
            s.w_cost and s.writes -> 'cost' is distinct from s.before -> 'cost' as c_cost,
            s.w_forbidden and s.writes -> 'forbidden' is distinct from s.before -> 'forbidden' as c_forbidden
        from step as s
    ),
    history as (
        insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values, inbox_id)
        select c.fragrance_id, 'update',
            case when c.c_name then jsonb_build_object('name', c.before -> 'name') else '{}' end
                || case when c.c_description then jsonb_build_object('description', c.before -> 'description') else '{}' end
                || case when c.c_cost then jsonb_build_object('cost', c.before -> 'cost') else '{}' end
                || case when c.c_forbidden then jsonb_build_object('forbidden', c.before -> 'forbidden') else '{}' end,
            case when c.c_name then jsonb_build_object('name', c.writes -> 'name') else '{}' end
                || case when c.c_description then jsonb_build_object('description', c.writes -> 'description') else '{}' end
                || case when c.c_cost then jsonb_build_object('cost', c.writes -> 'cost') else '{}' end
                || case when c.c_forbidden then jsonb_build_object('forbidden', c.writes -> 'forbidden') else '{}' end,
            c.inbox_id
        from change as c
        where c.c_name or c.c_description or c.c_cost or c.c_forbidden
        order by c.inbox_id
    ),
    fragrance as (
        update public.fragrances as f
        set name = c.after ->> 'name',
            description = c.after ->> 'description',
            cost = (c.after ->> 'cost')::numeric,
            forbidden = (c.after ->> 'forbidden')::boolean
        from change as c
        where c.is_last and f.fragrance_id = c.fragrance_id and c.after <> c.current
    ),
    clock as (
        insert into sync.field_version as fv
        select c.fragrance_id,
            coalesce(max(c.inbox_id) filter (where c.w_name), 0),
            coalesce(max(c.inbox_id) filter (where c.w_description), 0),
            coalesce(max(c.inbox_id) filter (where c.w_cost), 0),
            coalesce(max(c.inbox_id) filter (where c.w_forbidden), 0)
        from change as c
        group by c.fragrance_id
        having bool_or(c.writes <> '{}')
        on conflict (fragrance_id) do update
            set name_inbox_id = greatest(fv.name_inbox_id, excluded.name_inbox_id),
                description_inbox_id = greatest(fv.description_inbox_id, excluded.description_inbox_id),
                cost_inbox_id = greatest(fv.cost_inbox_id, excluded.cost_inbox_id),
                forbidden_inbox_id = greatest(fv.forbidden_inbox_id, excluded.forbidden_inbox_id)
    ),
    outcome as (
    update sync.inbox as i
    set payload = c.payload,
        fragrance_id = c.fragrance_id,
        status = case when c.writes <> '{}' then 'applied' else 'ignored' end,
        reasons = c.reasons || case when cardinality(o.stale_fields) > 0
            then jsonb_build_array(sync.reason('delta.stale', null,
                format('%s already set by a later delivery, so left as it is',
                       array_to_string(o.stale_fields, ', ')), 'info'))
            else '[]' end,
        applied_fields = o.applied_fields,
        stale_fields = o.stale_fields,
        attempts = i.attempts + 1,
        processed_at = clock_timestamp()
    from change as c
    cross join lateral (
        select
            array_remove(array[case when c.w_name then 'name' end,
                               case when c.w_description then 'description' end,
                               case when c.w_cost then 'cost' end,
                               case when c.w_forbidden then 'forbidden' end], null) as applied_fields,
            array_remove(array[case when c.payload ? 'name' and not c.w_name then 'name' end,
                               case when c.payload ? 'description' and not c.w_description then 'description' end,
                               case when c.payload ? 'cost' and not c.w_cost then 'cost' end,
                               case when c.payload ? 'forbidden' and not c.w_forbidden then 'forbidden' end], null)
                as stale_fields
    ) as o
    where i.id = c.inbox_id
    returning i.id, i.status
    )
    select count(*), count(*) filter (where o.status = 'applied'), count(*) filter (where o.status = 'ignored'),
        0, 0, min(o.id), max(o.id)
    into v_result
    from outcome as o;
    perform set_config('sync.history_written', '', true);
    return v_result;
end;
$$;
comment on function sync._merge_many(sync.prepared_delivery[]) is
    'Merges valid, non-empty deltas for existing fragrances the caller has locked, as sync._merge() would one by one in receipt order: per-field last writer, one history row per delivery that changed something, one UPDATE of public.fragrances, one upsert of sync.field_version, one UPDATE of the inbox rows; returns the counts.';

-- sync._process_claimed
-- Processes locked inbox rows in receipt order: set-wise for the common case, row by row for the rest.
create function sync._process_claimed(p_ids bigint[]) returns sync.batch_result
    language plpgsql
    -- Plans: as sync._prepare_many.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_all_fields constant text[] := array['name', 'description', 'cost', 'forbidden'];
    v_rows sync.prepared_delivery[];
    v_locked integer[];
    v_merge sync.prepared_delivery[];
    v_one_by_one sync.prepared_delivery[];
    v_settle sync.prepared_delivery[];
    v_delivery sync.prepared_delivery;
    v_outcome sync.outcome;
    v_merged sync.batch_result;
    v_result sync.batch_result := row(0, 0, 0, 0, 0, null, null);
begin
    v_rows := sync._prepare_many(p_ids);
    if cardinality(v_rows) = 0 then
        return v_result;
    end if;

    -- Lock every fragrance of the batch up front, in id order, so concurrent
    -- appliers and hooks wait for each other but can never deadlock.
    v_locked := array(
        select f.fragrance_id from public.fragrances as f
        where f.fragrance_id in (select d.fragrance_id from unnest(v_rows) as d where d.valid)
        order by f.fragrance_id
        for update);

    -- Route each delivery: merged set-wise when its fragrance exists; one by
    -- one (sync._apply, as before) when it does not, since it may create it,
    -- or the fragrance may have been created while this waited for a lock
    -- (the lock statement's snapshot cannot show it); settled set-wise when
    -- there is nothing to merge (refused, or no field).
    select
        coalesce(array_agg(d order by d.inbox_id)
            filter (where d.valid and d.payload ?| v_all_fields and l.fragrance_id is not null), '{}'),
        coalesce(array_agg(d order by d.inbox_id)
            filter (where d.valid and d.payload ?| v_all_fields and l.fragrance_id is null), '{}'),
        coalesce(array_agg(d order by d.inbox_id)
            filter (where not (d.valid and d.payload ?| v_all_fields)), '{}')
    into v_merge, v_one_by_one, v_settle
    from unnest(v_rows) as d
    left join unnest(v_locked) as l (fragrance_id) on l.fragrance_id = d.fragrance_id;

    begin
        v_merged := sync._merge_many(v_merge);
    exception when others then
        -- Whatever failed is undone; the per-delivery path finds which delivery
        -- it was and quarantines only that one with the reason.
        return sync._process_claimed_rowwise(p_ids);
    end;

    update sync.inbox as i
    set payload = d.payload,
        fragrance_id = d.fragrance_id,
        status = case when d.valid then 'ignored' else 'rejected' end,
        reasons = d.reasons || case when d.valid
            then jsonb_build_array(sync.reason('delta.empty', null, 'the change carries no field to apply', 'info'))
            else '[]' end,
        applied_fields = '{}',
        stale_fields = '{}',
        attempts = i.attempts + 1,
        processed_at = clock_timestamp()
    from unnest(v_settle) as d
    where i.id = d.inbox_id;

    v_result.applied := coalesce(v_merged.applied, 0);
    v_result.ignored := coalesce(v_merged.ignored, 0)
        + (select count(*) from unnest(v_settle) as d where d.valid);
    v_result.rejected := (select count(*) from unnest(v_settle) as d where not d.valid);

    foreach v_delivery in array v_one_by_one loop
        v_outcome := sync._apply(v_delivery.inbox_id, row(v_delivery.payload,
            v_delivery.fragrance_id, v_delivery.reasons, v_delivery.valid)::sync.prepared);
        update sync.inbox
        set payload = v_outcome.payload,
            fragrance_id = v_outcome.fragrance_id,
            status = v_outcome.status,
            reasons = v_outcome.reasons,
            applied_fields = v_outcome.applied_fields,
            stale_fields = v_outcome.stale_fields,
            attempts = attempts + 1,
            processed_at = clock_timestamp()
        where id = v_delivery.inbox_id;
        case v_outcome.status
            when 'applied' then v_result.applied := v_result.applied + 1;
            when 'ignored' then v_result.ignored := v_result.ignored + 1;
            when 'rejected' then v_result.rejected := v_result.rejected + 1;
            else v_result.pending := v_result.pending + 1;
        end case;
    end loop;

    v_result.processed := cardinality(v_rows);
    v_result.first_inbox_id := v_rows[1].inbox_id;
    v_result.last_inbox_id := v_rows[cardinality(v_rows)].inbox_id;
    return v_result;
end;
$$;
comment on function sync._process_claimed(bigint[]) is
    'Processes the given (already locked) inbox rows as if one by one in receipt order, and stores each outcome; returns the counts. Deltas for existing fragrances are merged set-wise by sync._merge_many(); deltas for a fragrance that did not exist when locked go through sync._apply() one by one, and a batch the set-wise merge fails on through sync._process_claimed_rowwise().';
