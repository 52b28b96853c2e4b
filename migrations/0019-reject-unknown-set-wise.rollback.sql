-- Back to 0018's sync._settle_many
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
end;
$$;
comment on function sync._settle_many(sync.prepared_delivery[], integer[]) is
    'Processes prepared deliveries as if one by one in receipt order, without touching sync.inbox, once the caller holds their fragrances'' locks (sync._lock_fragrances, whose result p_locked is): merges the deltas for existing fragrances set-wise (sync._merge_many) and settles refused and empty ones; returns their outcomes (settled) and the inbox ids left for sync._process_claimed_rowwise (one_by_one): deliveries whose fragrance did not exist when locked, or every one when the set-wise merge failed.';
