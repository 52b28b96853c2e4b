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
    -- commit, so they need no claim; sync._process_claimed locks the
    -- fragrances in id order, so concurrent batches never deadlock.
    if (select s.apply_on_receipt from sync.settings as s) then
        perform sync._process_claimed(v_ids);
    end if;
    return query
    select i.id, i.status, i.reasons from sync.inbox as i where i.id = any (v_ids) order by i.id;
end;
$$;
comment on function sync.receive_many(bytea[], text[], inet[], text[], uuid[]) is
    'Stores a batch of webhook deliveries with the keys the hook gave them, in one transaction and in input order, and (with sync.settings.apply_on_receipt) processes them set-wise as sync.apply_pending() would; returns one receipt per delivery, in input order. The hook''s batched entry point.';
