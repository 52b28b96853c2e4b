-- Trim the set-wise merge: fewer statements for small batches, cheaper history rows, no trigger call per processed row
-- depends: 0015-set-based-receive

-- The receipt guard ran a PL/pgSQL trigger for every processed inbox row only
-- to find nothing changed. A WHEN clause makes the same comparison without
-- the call, so the function (which keeps its own test) runs only to refuse. The hook's delivery key is
-- part of what was received too: changing it could let a replayed spool
-- store a delivery twice.
create or replace function sync._protect_receipt() returns trigger
    language plpgsql
as $$
begin
    if new.id is distinct from old.id
        or new.received_at is distinct from old.received_at
        or new.body is distinct from old.body
        or new.content_type is distinct from old.content_type
        or new.client_addr is distinct from old.client_addr
        or new.user_agent is distinct from old.user_agent
        or new.spool_key is distinct from old.spool_key
    then
        raise exception 'inbox row % is a record of what was received and cannot be changed', old.id
            using errcode = 'FS010',
                  hint = 'Change its processing with sync.retry() or sync.discard() instead.';
    end if;
    return new;
end;
$$;
comment on function sync._protect_receipt() is
    'Trigger: keeps the received part of an inbox row (id, received_at, body, request metadata, spool_key) immutable. Its trigger''s WHEN clause makes the same test, so it is called only to refuse.';

drop trigger _100_protect_receipt on sync.inbox;
create trigger _100_protect_receipt
    before update on sync.inbox
    for each row
    when (new.id is distinct from old.id
        or new.received_at is distinct from old.received_at
        or new.body is distinct from old.body
        or new.content_type is distinct from old.content_type
        or new.client_addr is distinct from old.client_addr
        or new.user_agent is distinct from old.user_agent
        or new.spool_key is distinct from old.spool_key)
    execute function sync._protect_receipt();

-- sync._merge_many
-- As in 0014, with each history row's values cut from the state by the keys that
-- did not change (two jsonb operations instead of eight objects and six joins),
-- and the last delivery per fragrance found by max() over the partition.
create or replace function sync._merge_many(p_deliveries sync.prepared_delivery[]) returns sync.batch_result
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
comment on function sync._merge_many(sync.prepared_delivery[]) is
    'Merges valid, non-empty deltas for existing fragrances the caller has locked, as sync._merge() would one by one in receipt order: per-field last writer, one history row per delivery that changed something, one UPDATE of public.fragrances, one upsert of sync.field_version, one UPDATE of the inbox rows; returns the counts.';

-- sync._process_claimed
-- As in 0014, without the merge and settle statements when there is nothing for them
-- (most batches from the hook hold a few valid deltas and no refused one), and with
-- the deliveries for a fragrance missing at lock time handed to
-- sync._process_claimed_rowwise instead of a copy of its loop.
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
