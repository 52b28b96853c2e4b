-- Back to 0015's receive_many, 0016's merge, 0014's _prepare_many and 0010's inbox_position
create or replace function sync.receive_many(
    p_bodies bytea[],
    p_content_types text[],
    p_client_addrs inet[],
    p_user_agents text[],
    p_keys uuid[]
) returns setof sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    -- Plans: as sync._prepare_many (0014).
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_ids bigint[];
    v_fragrances integer[];
begin
    if cardinality(p_keys) is distinct from cardinality(p_bodies) then
        raise exception 'receive_many needs one key per body, got % keys for % bodies',
            cardinality(p_keys), cardinality(p_bodies)
            using errcode = 'FS021';
    end if;
    if cardinality(p_bodies) is distinct from cardinality(p_content_types)
        or cardinality(p_bodies) is distinct from cardinality(p_client_addrs)
        or cardinality(p_bodies) is distinct from cardinality(p_user_agents)
    then
        raise exception 'receive_many needs arrays of one length, got % bodies, % content types, % addresses, % user agents',
            cardinality(p_bodies), cardinality(p_content_types), cardinality(p_client_addrs), cardinality(p_user_agents)
            using errcode = 'FS021';
    end if;

    -- Lock the batch's fragrances in id order before inserting, as 0012 did:
    -- the insert takes the delivery keys, and sync.receive_spooled locks a
    -- fragrance before inserting its key, so locking after the insert could
    -- deadlock with a drain of the same delivery. One statement parses all
    -- bodies; only a batch with a body that is not JSON pays parse_body's
    -- per-body exception handling.
    begin
        v_fragrances := array(
            select (p.payload ->> 'fragrance_id')::numeric::integer
            from unnest(p_bodies) as b
            cross join lateral (select convert_from(b, 'UTF8')::jsonb as payload offset 0) as p
            where case when jsonb_typeof(p.payload -> 'fragrance_id') = 'number'
                       then (p.payload ->> 'fragrance_id')::numeric between 0 and 2147483647 end);
    exception when others then
        v_fragrances := array(
            select (p.payload ->> 'fragrance_id')::numeric::integer
            from unnest(p_bodies) as b
            cross join lateral sync.parse_body(b) as p
            where case when jsonb_typeof(p.payload -> 'fragrance_id') = 'number'
                       then (p.payload ->> 'fragrance_id')::numeric between 0 and 2147483647 end);
    end;
    perform 1 from public.fragrances
    where fragrance_id = any (v_fragrances)
    order by fragrance_id
    for update;

    perform set_config('sync.process_as_batch', 'on', true);
    with stored as (
        insert into sync.inbox (body, content_type, client_addr, user_agent, spool_key)
        select d.body, d.content_type, d.client_addr, d.user_agent, d.key
        from unnest(p_bodies, p_content_types, p_client_addrs, p_user_agents, p_keys)
            with ordinality as d(body, content_type, client_addr, user_agent, key, n)
        order by d.n
        returning id
    )
    select coalesce(array_agg(s.id order by s.id), '{}') into v_ids from stored as s;
    perform set_config('sync.process_as_batch', '', true);

    -- The rows are this transaction's own, invisible to any applier until
    -- commit, so they need no claim; their fragrances are locked already.
    if (select s.apply_on_receipt from sync.settings as s) then
        perform sync._process_claimed(v_ids);
    end if;
    return query
    select i.id, i.status, i.reasons from sync.inbox as i where i.id = any (v_ids) order by i.id;
end;
$$;
comment on function sync.receive_many(bytea[], text[], inet[], text[], uuid[]) is
    'Stores a batch of webhook deliveries with the keys the hook gave them, in one transaction and in input order, and (with sync.settings.apply_on_receipt) processes them set-wise as sync.apply_pending() would; returns one receipt per delivery, in input order. The hook''s batched entry point.';

create or replace function sync._process_claimed(p_ids bigint[]) returns sync.batch_result
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
    v_merged sync.batch_result;
    v_alone sync.batch_result;
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

    if cardinality(v_merge) > 0 then
        begin
            v_merged := sync._merge_many(v_merge);
        exception when others then
            -- Whatever failed is undone; the per-delivery path finds which delivery
            -- it was and quarantines only that one with the reason.
            return sync._process_claimed_rowwise(p_ids);
        end;
    end if;

    if cardinality(v_settle) > 0 then
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
    end if;

    v_result.applied := coalesce(v_merged.applied, 0);
    v_result.ignored := coalesce(v_merged.ignored, 0)
        + (select count(*) from unnest(v_settle) as d where d.valid);
    v_result.rejected := (select count(*) from unnest(v_settle) as d where not d.valid);

    if cardinality(v_one_by_one) > 0 then
        -- One by one, by the reference path (which reads and checks these
        -- few bodies again): no second copy of its loop here.
        v_alone := sync._process_claimed_rowwise(
            array(select d.inbox_id from unnest(v_one_by_one) as d));
        v_result.applied := v_result.applied + v_alone.applied;
        v_result.ignored := v_result.ignored + v_alone.ignored;
        v_result.rejected := v_result.rejected + v_alone.rejected;
        v_result.pending := v_result.pending + v_alone.pending;
    end if;

    v_result.processed := cardinality(v_rows);
    v_result.first_inbox_id := v_rows[1].inbox_id;
    v_result.last_inbox_id := v_rows[cardinality(v_rows)].inbox_id;
    return v_result;
end;
$$;
comment on function sync._process_claimed(bigint[]) is
    'Processes the given (already locked) inbox rows as if one by one in receipt order, and stores each outcome; returns the counts. Deltas for existing fragrances are merged set-wise by sync._merge_many(); deltas for a fragrance that did not exist when locked, and a whole batch the set-wise merge fails on, go through sync._process_claimed_rowwise() one by one.';

drop function sync._settle_many(sync.prepared_delivery[], integer[]);
drop function sync._lock_fragrances(sync.prepared_delivery[]);
drop function sync._merge_many(sync.prepared_delivery[]);
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
            w.inbox_id = max(w.inbox_id) over (partition by w.fragrance_id) as is_last
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
        select c.fragrance_id, 'update', c.before - u.unchanged, c.writes - u.unchanged,
            c.inbox_id
        from change as c
        cross join lateral (
            select array_remove(array[case when not c.c_name then 'name' end,
                                      case when not c.c_description then 'description' end,
                                      case when not c.c_cost then 'cost' end,
                                      case when not c.c_forbidden then 'forbidden' end], null) as unchanged
        ) as u
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
revoke execute on function sync._merge_many(sync.prepared_delivery[]) from public;
comment on function sync._merge_many(sync.prepared_delivery[]) is
    'Merges valid, non-empty deltas for existing fragrances the caller has locked, as sync._merge() would one by one in receipt order: per-field last writer, one history row per delivery that changed something, one UPDATE of public.fragrances, one upsert of sync.field_version, one UPDATE of the inbox rows; returns the counts.';

create or replace function sync._prepare_many(p_ids bigint[]) returns sync.prepared_delivery[]
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

drop function sync._prepare_bodies(bigint[], bytea[]);
drop type sync.settled_delivery;

create or replace function sync.inbox_position(p_at timestamptz default null) returns bigint
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
