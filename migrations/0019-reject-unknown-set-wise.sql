-- Reject a partial delta for a fragrance that does not exist set-wise, as sync._merge would, instead of one by one
-- depends: 0018-receive-once

-- Such deltas went through sync._process_claimed_rowwise (a second parse, a
-- subtransaction and an UPDATE each): 2.5% of the bench's backlog took 6% of
-- apply_pending's time. The outcome is the same word for word.

create or replace function sync._settle_many(
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
