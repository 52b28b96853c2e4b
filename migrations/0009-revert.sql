-- Undo: revert one applied delivery through the inbox, and show a fragrance as it was at any moment
-- depends: 0007-roles 0008-sync-health

-- sync.revert_result: what sync.revert() did.
create type sync.revert_result as (
    reverted_inbox_id bigint,
    inbox_id bigint,
    status text,
    restored jsonb,
    left_alone jsonb,
    message text
);
comment on type sync.revert_result is
    'Outcome of sync.revert(): the delivery undone, the synthetic revert delivery (inbox_id, its status), the fields restored with their values, the fields left alone with why, and a sentence.';

-- sync.revert
-- Undoes one applied delivery by sending its fields' previous values through the inbox as a new change.
create function sync.revert(p_inbox_id bigint) returns sync.revert_result
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_delivery sync.inbox;
    v_history sync.fragrance_history;
    v_version jsonb;
    v_current jsonb;
    v_field text;
    v_later text;
    v_result sync.revert_result;
    v_delta jsonb;
begin
    select * into v_delivery from sync.inbox where id = p_inbox_id;
    if not found then
        raise exception 'inbox row % does not exist', p_inbox_id
            using errcode = 'FS001', hint = 'Find applied deliveries with SELECT id, received_at, applied_fields FROM sync.inbox WHERE status = ''applied'' ORDER BY id DESC;';
    end if;
    if v_delivery.status <> 'applied' then
        raise exception 'inbox row % is %; only an applied delivery can be reverted', p_inbox_id, v_delivery.status
            using errcode = 'FS002';
    end if;

    -- The fragrance lock keeps concurrent merges out while we decide.
    perform 1 from public.fragrances where fragrance_id = v_delivery.fragrance_id for update;

    -- One delivery writes one history row (its merge is one UPDATE or one INSERT).
    select * into v_history from sync.fragrance_history
    where inbox_id = p_inbox_id order by id desc limit 1;
    if v_history.operation = 'insert' then
        raise exception 'inbox row % created fragrance %; a change cannot delete it', p_inbox_id, v_delivery.fragrance_id
            using errcode = 'FS060',
                  hint = format('Delete it by hand if it must go: DELETE FROM public.fragrances WHERE fragrance_id = %s;', v_delivery.fragrance_id);
    end if;

    v_result.reverted_inbox_id := p_inbox_id;
    v_result.restored := '{}';
    v_result.left_alone := '{}';
    select to_jsonb(f) into v_current from public.fragrances as f where f.fragrance_id = v_delivery.fragrance_id;
    select to_jsonb(v) into v_version from sync.field_version as v where v.fragrance_id = v_delivery.fragrance_id;

    foreach v_field in array v_delivery.applied_fields loop
        if v_current is null then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field,
                format('fragrance %s has been deleted since', v_delivery.fragrance_id));
            continue;
        end if;
        if v_history.id is null or not v_history.old_values ? v_field then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field,
                'the change did not alter it (it already had this value)');
            continue;
        end if;

        -- A later change: a later history row touching the field, or a later writer on its clock.
        select format('set since by %s at %s',
                   coalesce('delivery ' || h.inbox_id, 'a hand edit by ' || h.db_user), h.changed_at)
        into v_later
        from sync.fragrance_history as h
        where h.fragrance_id = v_delivery.fragrance_id and h.id > v_history.id and h.new_values ? v_field
        order by h.id desc
        limit 1;
        if v_later is null and coalesce((v_version ->> (v_field || '_inbox_id'))::bigint, 0) > p_inbox_id then
            v_later := format('set since by delivery %s', v_version ->> (v_field || '_inbox_id'));
        end if;
        if v_later is null and v_current -> v_field is distinct from v_history.new_values -> v_field then
            v_later := 'its value is no longer the one this change set';
        end if;

        if v_later is not null then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field, v_later);
        elsif jsonb_typeof(v_history.old_values -> v_field) = 'null' then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field,
                'its previous value was null, which a change cannot carry; set it by hand');
        else
            v_result.restored := v_result.restored || jsonb_build_object(v_field, v_history.old_values -> v_field);
        end if;
    end loop;

    if v_result.restored = '{}' then
        v_result.status := 'ignored';
        v_result.message := format('nothing to restore for inbox row %s', p_inbox_id);
        return v_result;
    end if;

    -- The revert is an ordinary delivery: stored, validated, ordered and audited like any other.
    v_delta := jsonb_build_object('fragrance_id', v_delivery.fragrance_id) || v_result.restored;
    insert into sync.inbox (body, content_type, user_agent)
    values (convert_to(v_delta::text, 'UTF8'), 'application/x-sync-revert',
            format('sync.revert(%s) by %s', p_inbox_id, session_user))
    returning id, status into v_result.inbox_id, v_result.status;

    v_result.message := format('inbox row %s: %s restored through delivery %s (%s)',
        p_inbox_id,
        (select string_agg(k, ', ' order by k) from jsonb_object_keys(v_result.restored) as k),
        v_result.inbox_id, v_result.status);
    if v_result.left_alone <> '{}' then
        v_result.message := v_result.message || '; left alone: ' || (
            select string_agg(format('%s (%s)', key, value #>> '{}'), ', ' order by key)
            from jsonb_each(v_result.left_alone));
    end if;
    if v_result.status = 'pending' then
        v_result.message := v_result.message || '; run SELECT * FROM sync.apply_pending(1000); to apply it';
    end if;
    return v_result;
end;
$$;
comment on function sync.revert(bigint) is
    'Undoes one applied delivery: each field it changed gets its previous value back, unless a later change has set that field since (then it is left alone and said so). The old values go through sync.inbox as a new delivery (content type application/x-sync-revert), so they are validated, ordered and audited like any change. Usage: SELECT * FROM sync.revert(42);';

-- sync.fragrance_at
-- Shows a fragrance as it was at a moment, by undoing every recorded change made after it.
create function sync.fragrance_at(p_fragrance_id integer, p_at timestamptz)
    returns setof public.fragrances
    language plpgsql
    stable
as $$
declare
    v_row jsonb;
    v_change sync.fragrance_history;
begin
    -- Backwards from today: rows adopted before the sync existed have no insert in the
    -- history, so replaying forwards would miss their first state; undoing does not.
    select to_jsonb(f) into v_row from public.fragrances as f where f.fragrance_id = p_fragrance_id;
    for v_change in
        select * from sync.fragrance_history
        where fragrance_id = p_fragrance_id and changed_at > p_at
        order by id desc
    loop
        v_row := case v_change.operation
            when 'insert' then null
            when 'delete' then v_change.old_values
            else v_row || v_change.old_values
        end;
    end loop;
    if v_row is not null then
        return next jsonb_populate_record(null::public.fragrances, v_row);
    end if;
end;
$$;
comment on function sync.fragrance_at(integer, timestamptz) is
    'The fragrance as it was at p_at (no row if it did not exist then), rebuilt from the current row by undoing the changes sync.fragrance_history recorded after p_at. Before the first recorded change it shows the earliest known state. Usage: SELECT * FROM sync.fragrance_at(7, now() - interval ''1 day'');';

grant execute on function
    sync.revert(bigint),
    sync.fragrance_at(integer, timestamptz)
    to sync_dba;

-- 0007's ALTER DEFAULT PRIVILEGES IN SCHEMA cannot take EXECUTE away from PUBLIC
-- (per-schema defaults only add to the global ones), so every new function is
-- executable by anyone with USAGE on sync, the hook included. Take it away here.
revoke execute on all functions in schema sync from public;
