-- Back to processing each delivery of a batch in the insert trigger
drop trigger _200_process_on_receipt on sync.inbox;
create trigger _200_process_on_receipt
    before insert on sync.inbox
    for each row execute function sync._process_on_receipt();

-- sync.receive_many as 0012 made it
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
as $$
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
    -- As in the unkeyed version: lock the batch's fragrances in id order first,
    -- so batches from several connections wait for each other but never deadlock.
    if (select s.apply_on_receipt from sync.settings as s) then
        perform 1 from public.fragrances
        where fragrance_id in (
            select (p.payload ->> 'fragrance_id')::numeric::integer
            from unnest(p_bodies) as b, sync.parse_body(b) as p
            where jsonb_typeof(p.payload -> 'fragrance_id') = 'number'
              and (p.payload ->> 'fragrance_id')::numeric between 0 and 2147483647)
        order by fragrance_id
        for update;
    end if;
    return query
    with stored as (
        insert into sync.inbox (body, content_type, client_addr, user_agent, spool_key)
        select d.body, d.content_type, d.client_addr, d.user_agent, d.key
        from unnest(p_bodies, p_content_types, p_client_addrs, p_user_agents, p_keys)
            with ordinality as d(body, content_type, client_addr, user_agent, key, n)
        order by d.n
        returning id, status, reasons
    )
    select s.id, s.status, s.reasons from stored as s order by s.id;
end;
$$;
comment on function sync.receive_many(bytea[], text[], inet[], text[], uuid[]) is
    'Stores a batch of webhook deliveries with the keys the hook gave them, in one transaction and in input order, each processed as sync.receive() would; returns one receipt per delivery, in input order. The hook''s batched entry point.';
