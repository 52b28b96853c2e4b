-- Let the hook drain its local spool into the inbox exactly once, and pin durable commits
-- depends: 0012-receive-many

-- sync.receive_spooled
-- Stores one spooled delivery with its original receipt time, unless its key is already stored.
create function sync.receive_spooled(
    p_key uuid,
    p_received_at timestamptz,
    p_body bytea,
    p_content_type text default null,
    p_client_addr inet default null,
    p_user_agent text default null
) returns sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_receipt sync.receipt;
begin
    if p_key is null or p_received_at is null then
        raise exception 'a spooled delivery needs its key and its receipt time'
            using errcode = 'FS020';
    end if;
    -- Checked before inserting: the insert trigger merges, so a duplicate
    -- must never reach it (ON CONFLICT would merge first, then skip).
    select id, status, reasons into v_receipt from sync.inbox where spool_key = p_key;
    if found then
        return v_receipt;
    end if;
    insert into sync.inbox (spool_key, received_at, body, content_type, client_addr, user_agent)
    values (p_key, p_received_at, p_body, p_content_type, p_client_addr, p_user_agent)
    returning id, status, reasons into v_receipt;
    return v_receipt;
end;
$$;
comment on function sync.receive_spooled(uuid, timestamptz, bytea, text, inet, text) is
    'Stores a delivery the hook had spooled while the database was down, keeping its original received_at; a key already stored returns the existing receipt, so a drain can be replayed safely.';

grant execute on function sync.receive_spooled(uuid, timestamptz, bytea, text, inet, text) to sync_hook;

-- A 2xx from the hook promises the body is on disk: the hook's commits wait
-- for the WAL flush whatever the server default says.
do $$
begin
    execute format('alter role sync_hook_login in database %I set synchronous_commit = on',
                   current_database());
end;
$$;
