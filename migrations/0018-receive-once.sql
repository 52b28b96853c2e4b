-- Store each delivery the hook batches once, already processed: no second parse, no update of the row just inserted
-- depends: 0017-unicode-blank-names

-- Until now sync.receive_many parsed every body to lock its fragrance,
-- inserted the rows pending, then read them back, parsed them again, locked
-- again, and updated every row with its outcome: two versions of each inbox
-- row (and of its index entries) per delivery. Now the batch is judged from
-- the bodies it was given, its fragrances locked, its inbox ids drawn, its
-- deltas merged, and each row inserted once with its outcome. apply_pending
-- shares the locking, routing and merge (sync._lock_fragrances,
-- sync._settle_many) and still updates the rows it claimed.
--
-- The routing also rejects a partial delta for a fragrance that does not
-- exist, as sync._merge would, where it went one by one before (a second
-- parse, a subtransaction and an UPDATE each): 2.5% of the bench's backlog
-- took 6% of apply_pending's time. The outcome is the same word for word.

-- sync.settled_delivery: a processed delivery's outcome, before it is written to its inbox row.
create type sync.settled_delivery as (
    inbox_id bigint,
    payload jsonb,
    fragrance_id integer,
    status text,
    reasons jsonb,
    applied_fields text[],
    stale_fields text[]
);
comment on type sync.settled_delivery is
    'The outcome of processing one delivery (sync.outcome with its inbox id), as the set-wise path decides it before storing it in sync.inbox.';

-- sync._prepare_bodies
-- sync._prepare_many's judgement, from bodies in hand instead of inbox rows.
create function sync._prepare_bodies(p_ids bigint[], p_bodies bytea[]) returns sync.prepared_delivery[]
    language plpgsql
    stable
    -- Plans: as sync._prepare_many (0014).
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
begin
    if cardinality(p_ids) is distinct from cardinality(p_bodies) then
        raise exception '_prepare_bodies needs one inbox id per body, got % ids for % bodies',
            cardinality(p_ids), cardinality(p_bodies)
            using errcode = 'FS021';
    end if;
    -- One statement for the batch: sync.parse_body()'s exception blocks cost a
    -- subtransaction each, so only a batch with a body that fails the casts
    -- pays them; clean bodies (sync._is_clean) skip the per-row rules too.
    begin
        return array(
            select case
                when sync._is_clean(p.payload, t.body_text)
                    then row(b.id, p.payload, (p.payload ->> 'fragrance_id')::numeric::integer,
                             '[]'::jsonb, true)::sync.prepared_delivery
                when jsonb_typeof(p.payload) <> 'object'
                     or (select count(*) = count(distinct k) from json_object_keys(t.body_text::json) as k)
                    then (select row(b.id, s.payload, s.fragrance_id, s.reasons, s.valid)::sync.prepared_delivery
                          from sync._check_parsed(p.payload, '[]') as s)
                else (select row(b.id, s.payload, s.fragrance_id, s.reasons, s.valid)::sync.prepared_delivery
                      from sync.prepare(b.body) as s)
            end
            from unnest(p_ids, p_bodies) with ordinality as b (id, body, n)
            cross join lateral (select convert_from(b.body, 'UTF8') as body_text offset 0) as t
            cross join lateral (select t.body_text::jsonb as payload offset 0) as p
            order by b.n);
    exception when others then
        -- Some body is not UTF-8 JSON that jsonb can hold: take the batch body by body.
        return array(
            select row(b.id, s.payload, s.fragrance_id, s.reasons, s.valid)::sync.prepared_delivery
            from unnest(p_ids, p_bodies) with ordinality as b (id, body, n)
            cross join lateral sync.prepare(b.body) as s
            order by b.n);
    end;
end;
$$;
comment on function sync._prepare_bodies(bigint[], bytea[]) is
    'sync.prepare() for many bodies at once, each paired with the inbox id it has or will have, in the given order: clean bodies (sync._is_clean) skip the per-row rules, and the exception handling of parsing is paid once per batch unless a body fails it.';

-- sync._prepare_many: now reads the rows and leaves the judging to sync._prepare_bodies.
create or replace function sync._prepare_many(p_ids bigint[]) returns sync.prepared_delivery[]
    language plpgsql
    stable
    -- Plans: as in 0014.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
begin
    return (
        select sync._prepare_bodies(coalesce(array_agg(i.id order by i.id), '{}'),
                                    coalesce(array_agg(i.body order by i.id), '{}'))
        from sync.inbox as i
        where i.id = any (p_ids));
end;
$$;
comment on function sync._prepare_many(bigint[]) is
    'sync.prepare() for many inbox rows at once, in receipt order, with the same result (sync._prepare_bodies on their bodies).';

-- sync._merge_many
-- As in 0016, but it returns each delivery's outcome instead of writing it to
-- the inbox row, so a caller can insert the row with it (sync.receive_many)
-- or update the row it claimed (sync._process_claimed).
drop function sync._merge_many(sync.prepared_delivery[]);
create function sync._merge_many(p_deliveries sync.prepared_delivery[]) returns sync.settled_delivery[]
    language plpgsql
    -- Plans: as sync._prepare_many.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_settled sync.settled_delivery[];
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
        select row(c.inbox_id, c.payload, c.fragrance_id,
            case when c.writes <> '{}' then 'applied' else 'ignored' end,
            c.reasons || case when cardinality(o.stale_fields) > 0
                then jsonb_build_array(sync.reason('delta.stale', null,
                    format('%s already set by a later delivery, so left as it is',
                           array_to_string(o.stale_fields, ', ')), 'info'))
                else '[]' end,
            o.applied_fields, o.stale_fields)::sync.settled_delivery as settled
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
    )
    -- The history, fragrance and clock statements run whether or not this reads them.
    select coalesce(array_agg(o.settled order by (o.settled).inbox_id), '{}') into v_settled from outcome as o;
    perform set_config('sync.history_written', '', true);
    return v_settled;
end;
$$;
comment on function sync._merge_many(sync.prepared_delivery[]) is
    'Merges valid, non-empty deltas for existing fragrances the caller has locked, as sync._merge() would one by one in receipt order: per-field last writer, one history row per delivery that changed something, one UPDATE of public.fragrances, one upsert of sync.field_version; returns each delivery''s outcome (sync.settled_delivery), which the caller stores.';

-- sync._lock_fragrances
-- Locks the existing fragrances of a batch's valid deliveries, in id order.
create function sync._lock_fragrances(p_rows sync.prepared_delivery[]) returns integer[]
    language sql
    -- Plans: as sync._prepare_many.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
    -- In id order, so concurrent appliers and hooks wait for each other but can never deadlock.
    select array(
        select f.fragrance_id from public.fragrances as f
        where f.fragrance_id in (select d.fragrance_id from unnest(p_rows) as d where d.valid)
        order by f.fragrance_id
        for update);
$$;
comment on function sync._lock_fragrances(sync.prepared_delivery[]) is
    'Locks (FOR UPDATE) the fragrances the valid deliveries of a batch name, in fragrance id order, and returns the ids of those that exist.';

-- sync._settle_many
-- Routes and merges prepared deliveries; says what became of each, or which to take one by one.
create function sync._settle_many(
    p_rows sync.prepared_delivery[],
    p_locked integer[],
    out settled sync.settled_delivery[],
    out one_by_one bigint[]
)
    language plpgsql
    -- Plans: as sync._prepare_many.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_all_fields constant text[] := array['name', 'description', 'cost', 'forbidden'];
    v_merge sync.prepared_delivery[];
    v_settle sync.prepared_delivery[];
    v_unknown sync.prepared_delivery[] := '{}';
begin
    -- Route each delivery: merged set-wise when its fragrance exists; one by
    -- one (sync._apply, as before) when it does not, since it may create it,
    -- or the fragrance may have been created while this waited for a lock
    -- (the lock statement's snapshot cannot show it); settled set-wise when
    -- there is nothing to merge (refused, or no field).
    select
        coalesce(array_agg(d order by d.inbox_id)
            filter (where d.valid and d.payload ?| v_all_fields and l.fragrance_id is not null), '{}'),
        coalesce(array_agg(d.inbox_id order by d.inbox_id)
            filter (where d.valid and d.payload ?| v_all_fields and l.fragrance_id is null), '{}'),
        coalesce(array_agg(d order by d.inbox_id)
            filter (where not (d.valid and d.payload ?| v_all_fields)), '{}')
    into v_merge, one_by_one, v_settle
    from unnest(p_rows) as d
    left join unnest(p_locked) as l (fragrance_id) on l.fragrance_id = d.fragrance_id;

    -- Of those, a delta that lacks a field cannot create its fragrance. When no
    -- delta of the batch for it carries all four fields and it still does not
    -- exist, sync._merge would reject it: so is it here, without a trip
    -- through the per-delivery path. This statement takes a fresh snapshot,
    -- as sync._merge's lock would, so a fragrance committed meanwhile is
    -- seen and its deltas stay one by one.
    if cardinality(one_by_one) > 0 then
        v_unknown := array(
            select d from unnest(p_rows) as d
            where d.inbox_id = any (one_by_one)
                and not d.payload ?& v_all_fields
                and not exists (select from unnest(p_rows) as c
                                where c.fragrance_id = d.fragrance_id and c.valid and c.payload ?& v_all_fields)
                and not exists (select from public.fragrances as f where f.fragrance_id = d.fragrance_id)
            order by d.inbox_id);
        if cardinality(v_unknown) > 0 then
            one_by_one := array(
                select i from unnest(one_by_one) as i
                where i <> all (array(select u.inbox_id from unnest(v_unknown) as u)));
        end if;
    end if;

    settled := '{}';
    if cardinality(v_merge) > 0 then
        begin
            settled := sync._merge_many(v_merge);
        exception when others then
            -- Whatever failed is undone; the per-delivery path finds which delivery
            -- it was and quarantines only that one with the reason.
            one_by_one := array(select d.inbox_id from unnest(p_rows) as d order by d.inbox_id);
            settled := '{}';
            return;
        end;
    end if;
    if cardinality(v_settle) > 0 then
        settled := settled || array(
            select row(d.inbox_id, d.payload, d.fragrance_id,
                case when d.valid then 'ignored' else 'rejected' end,
                d.reasons || case when d.valid
                    then jsonb_build_array(sync.reason('delta.empty', null, 'the change carries no field to apply', 'info'))
                    else '[]' end,
                '{}'::text[], '{}'::text[])::sync.settled_delivery
            from unnest(v_settle) as d);
    end if;
    if cardinality(v_unknown) > 0 then
        -- Word for word the reason sync._merge (0004) gives; the equivalence tests hold them together.
        settled := settled || array(
            select row(d.inbox_id, d.payload, d.fragrance_id, 'rejected',
                d.reasons || jsonb_build_array(sync.reason('fragrance_id.unknown', 'fragrance_id',
                    format('fragrance %s does not exist; a change creates one only when it carries all four fields (missing: %s)',
                        d.fragrance_id,
                        array_to_string(array(select f from unnest(v_all_fields) as f where not d.payload ? f), ', ')))),
                '{}'::text[], '{}'::text[])::sync.settled_delivery
            from unnest(v_unknown) as d);
    end if;
end;
$$;
comment on function sync._settle_many(sync.prepared_delivery[], integer[]) is
    'Processes prepared deliveries as if one by one in receipt order, without touching sync.inbox, once the caller holds their fragrances'' locks (sync._lock_fragrances, whose result p_locked is): merges the deltas for existing fragrances set-wise (sync._merge_many), settles refused and empty ones, and rejects partial deltas for fragrances that do not exist and that no delta of the batch can create; returns their outcomes (settled) and the inbox ids left for sync._process_claimed_rowwise (one_by_one): other deliveries whose fragrance did not exist when locked, or every one when the set-wise merge failed.';

-- sync._process_claimed
-- As in 0016, with the locks, routing and merge in sync._lock_fragrances and
-- sync._settle_many, and the outcomes written here.
create or replace function sync._process_claimed(p_ids bigint[]) returns sync.batch_result
    language plpgsql
    -- Plans: as sync._prepare_many.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_rows sync.prepared_delivery[];
    v_settled sync.settled_delivery[];
    v_one_by_one bigint[];
    v_alone sync.batch_result;
    v_result sync.batch_result := row(0, 0, 0, 0, 0, null, null);
begin
    v_rows := sync._prepare_many(p_ids);
    if cardinality(v_rows) = 0 then
        return v_result;
    end if;
    select s.settled, s.one_by_one into v_settled, v_one_by_one
    from sync._settle_many(v_rows, sync._lock_fragrances(v_rows)) as s;

    if cardinality(v_settled) > 0 then
        update sync.inbox as i
        set payload = s.payload,
            fragrance_id = s.fragrance_id,
            status = s.status,
            reasons = s.reasons,
            applied_fields = s.applied_fields,
            stale_fields = s.stale_fields,
            attempts = i.attempts + 1,
            processed_at = clock_timestamp()
        from unnest(v_settled) as s
        where i.id = s.inbox_id;
        select count(*) filter (where s.status = 'applied'),
            count(*) filter (where s.status = 'ignored'),
            count(*) filter (where s.status = 'rejected')
        into v_result.applied, v_result.ignored, v_result.rejected
        from unnest(v_settled) as s;
    end if;

    if cardinality(v_one_by_one) > 0 then
        v_alone := sync._process_claimed_rowwise(v_one_by_one);
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
    'Processes the given (already locked) inbox rows as if one by one in receipt order, and stores each outcome; returns the counts. sync._lock_fragrances() locks their fragrances and sync._settle_many() merges them set-wise; what it leaves (a fragrance missing at lock time, or a batch the set-wise merge failed on) goes through sync._process_claimed_rowwise() one by one.';

-- sync.receive_many
-- As in 0015, but each row is inserted once, with its outcome when processed on receipt.
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
    v_rows sync.prepared_delivery[];
    v_locked integer[];
    v_ids bigint[];
    v_received_at timestamptz;
    v_settled sync.settled_delivery[] := '{}';
    v_one_by_one bigint[] := '{}';
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
    if coalesce(cardinality(p_bodies), 0) = 0 then
        return;
    end if;

    -- Processing on receipt: judge the bodies (numbered by position for now)
    -- and lock their fragrances before anything else. The locks come before
    -- the ids: a batch that waited for a fragrance is ordered after the
    -- batches that held it, as it would be one by one (and as sync._merge
    -- orders a lone delivery). They also come before the insert takes the
    -- delivery keys, as in 0012: sync.receive_spooled locks a fragrance
    -- before inserting its key, so the other order could deadlock with a
    -- drain of the same delivery.
    if (select s.apply_on_receipt from sync.settings as s) then
        v_rows := sync._prepare_bodies(
            array(select n from generate_series(1, cardinality(p_bodies)) as n), p_bodies);
        v_locked := sync._lock_fragrances(v_rows);
    end if;

    -- Receipt order is input order: ids ascending, drawn once the locks are held.
    v_received_at := clock_timestamp();
    v_ids := array(
        select x.id
        from (select nextval('sync.inbox_id_seq') as id
              from generate_series(1, cardinality(p_bodies))) as x
        order by x.id);

    -- The rows are this transaction's own, invisible to any applier until
    -- commit, so they need no claim.
    if v_rows is not null then
        select s.settled, s.one_by_one into v_settled, v_one_by_one
        from sync._settle_many(
            array(select row(v_ids[d.inbox_id], d.payload, d.fragrance_id, d.reasons, d.valid)::sync.prepared_delivery
                  from unnest(v_rows) as d order by d.inbox_id),
            v_locked) as s;
    end if;

    perform set_config('sync.process_as_batch', 'on', true);
    -- received_at: when the batch, its locks held, took its place in receipt
    -- order; the batch shares it (sync.inbox_position breaks ties by id).
    insert into sync.inbox (id, received_at, body, content_type, client_addr, user_agent, spool_key,
                            payload, fragrance_id, status, reasons, applied_fields, stale_fields,
                            attempts, processed_at)
    overriding system value
    select d.id, v_received_at, d.body, d.content_type, d.client_addr, d.user_agent, d.key,
        s.payload, s.fragrance_id, coalesce(s.status, 'pending'), coalesce(s.reasons, '[]'),
        coalesce(s.applied_fields, '{}'), coalesce(s.stale_fields, '{}'),
        case when s.inbox_id is null then 0 else 1 end,
        case when s.inbox_id is not null then clock_timestamp() end
    from unnest(v_ids, p_bodies, p_content_types, p_client_addrs, p_user_agents, p_keys)
        with ordinality as d (id, body, content_type, client_addr, user_agent, key, n)
    left join unnest(v_settled) as s on s.inbox_id = d.id
    order by d.n;
    perform set_config('sync.process_as_batch', '', true);

    if cardinality(v_one_by_one) > 0 then
        perform sync._process_claimed_rowwise(v_one_by_one);
    end if;
    return query
    select i.id, i.status, i.reasons from sync.inbox as i where i.id = any (v_ids) order by i.id;
end;
$$;
comment on function sync.receive_many(bytea[], text[], inet[], text[], uuid[]) is
    'Stores a batch of webhook deliveries with the keys the hook gave them, in one transaction and in input order, and (with sync.settings.apply_on_receipt) processes them set-wise as sync.apply_pending() would, each row inserted once with its outcome; returns one receipt per delivery, in input order. The hook''s batched entry point.';

-- sync.inbox_position
-- As in 0010, with ties on received_at (a batch stored by receive_many shares
-- one) broken by id, so the position at that moment covers the whole batch.
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
                      order by received_at desc, id desc limit 1), 0)
    end;
$$;
comment on function sync.inbox_position(timestamptz) is
    'The last inbox id handed out now (no argument), or the last delivery received at or before p_at (the highest id among those received at the same moment): deliveries after it are newer than a CMS export taken at that moment.';
