-- Process each batch the hook stores set-wise, as apply_pending does
-- depends: 0014-set-based-merge

-- The insert trigger processes one delivery at a time; a batch stored by
-- sync.receive_many skips it and is processed as a whole right after.
drop trigger _200_process_on_receipt on sync.inbox;
create trigger _200_process_on_receipt
    before insert on sync.inbox
    for each row
    when (current_setting('sync.process_as_batch', true) is distinct from 'on')
    execute function sync._process_on_receipt();

-- sync.receive_many
-- Stores a batch of deliveries with their keys, in input order, one commit for all; receipts in order.
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
