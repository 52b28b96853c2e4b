-- Store many deliveries in one call and one transaction, receipts in input order (batched ingest)
-- depends: 0007-roles

-- sync.receive_many
-- Stores a batch of deliveries in input order, one commit for all, and returns their receipts.
create function sync.receive_many(
    p_bodies bytea[],
    p_content_types text[],
    p_client_addrs inet[],
    p_user_agents text[]
) returns setof sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    if cardinality(p_bodies) is distinct from cardinality(p_content_types)
        or cardinality(p_bodies) is distinct from cardinality(p_client_addrs)
        or cardinality(p_bodies) is distinct from cardinality(p_user_agents)
    then
        raise exception 'receive_many needs arrays of one length, got % bodies, % content types, % addresses, % user agents',
            cardinality(p_bodies), cardinality(p_content_types), cardinality(p_client_addrs), cardinality(p_user_agents)
            using errcode = 'FS021';
    end if;

    -- Batches from several hook connections run at once. Each merge locks its
    -- fragrance; locking the whole batch's fragrances up front, in id order (as
    -- sync._process_claimed does), means two batches wait for each other but
    -- never deadlock.
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

    -- Identity values are drawn as rows are inserted, in input order, so
    -- ordering the receipts by inbox id gives them back in input order.
    return query
    with stored as (
        insert into sync.inbox (body, content_type, client_addr, user_agent)
        select d.body, d.content_type, d.client_addr, d.user_agent
        from unnest(p_bodies, p_content_types, p_client_addrs, p_user_agents)
            with ordinality as d(body, content_type, client_addr, user_agent, n)
        order by d.n
        returning id, status, reasons
    )
    select s.id, s.status, s.reasons from stored as s order by s.id;
end;
$$;
comment on function sync.receive_many(bytea[], text[], inet[], text[]) is
    'Stores a batch of webhook deliveries (element i of each array is delivery i) in one transaction, in input order, each processed as sync.receive() would; returns one receipt per delivery, in input order. The hook''s batched entry point.';

grant execute on function sync.receive_many(bytea[], text[], inet[], text[]) to sync_hook;
