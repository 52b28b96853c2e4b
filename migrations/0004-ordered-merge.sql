-- Merge valid deltas into public.fragrances in per-field receipt order, on receipt and on demand
-- depends: 0003-data-rules

-- sync.field_version: which delivery last set each field of a fragrance.
create table sync.field_version (
    fragrance_id integer primary key,
    name_inbox_id bigint not null default 0,
    description_inbox_id bigint not null default 0,
    cost_inbox_id bigint not null default 0,
    forbidden_inbox_id bigint not null default 0
);
comment on table sync.field_version is
    'Per-field clock: the inbox id of the delivery (or the inbox position of the hand edit) that last set each field. A delivery writes a field only when its id is greater. No row means never set by sync (all zero).';
comment on column sync.field_version.name_inbox_id is
    'sync.inbox.id that last set public.fragrances.name (0: never).';
comment on column sync.field_version.description_inbox_id is
    'sync.inbox.id that last set public.fragrances.description (0: never).';
comment on column sync.field_version.cost_inbox_id is
    'sync.inbox.id that last set public.fragrances.cost (0: never).';
comment on column sync.field_version.forbidden_inbox_id is
    'sync.inbox.id that last set public.fragrances.forbidden (0: never).';

-- sync.outcome: what processing one delivery decided.
create type sync.outcome as (
    payload jsonb,
    fragrance_id integer,
    status text,
    reasons jsonb,
    applied_fields text[],
    stale_fields text[]
);
comment on type sync.outcome is
    'Result of processing one delivery: parsed payload, fragrance, status, reasons, fields written and fields skipped as stale.';

-- sync.batch_result: what a batch call (apply_pending, retry_all) did.
create type sync.batch_result as (
    processed integer,
    applied integer,
    ignored integer,
    rejected integer,
    pending integer,
    first_inbox_id bigint,
    last_inbox_id bigint
);
comment on type sync.batch_result is
    'Counts of a batch run by outcome, and the first and last inbox ids it processed.';

-- sync._merge
-- Writes one valid delta into public.fragrances, field by field, never over a newer value.
create function sync._merge(
    p_inbox_id bigint,
    p_delta jsonb,
    out status text,
    out reasons jsonb,
    out applied_fields text[],
    out stale_fields text[]
)
    language plpgsql
as $$
declare
    v_all_fields constant text[] := array['name', 'description', 'cost', 'forbidden'];
    v_id constant integer := (p_delta ->> 'fragrance_id')::numeric::integer;
    v_fields text[] := array(select f from unnest(v_all_fields) as f where p_delta ? f);
    v_version sync.field_version;
    v_missing text[];
begin
    reasons := '[]';
    applied_fields := '{}';
    stale_fields := '{}';
    -- Tells sync._record_history which delivery causes the writes below.
    perform set_config('sync.inbox_id', p_inbox_id::text, true);

    -- The fragrance row lock serialises every merge of one fragrance.
    loop
        perform 1 from public.fragrances where fragrance_id = v_id for update;
        exit when found;

        v_missing := array(select f from unnest(v_all_fields) as f where not p_delta ? f);
        if cardinality(v_missing) > 0 then
            status := 'rejected';
            reasons := jsonb_build_array(sync.reason('fragrance_id.unknown', 'fragrance_id',
                format('fragrance %s does not exist; a change creates one only when it carries all four fields (missing: %s)',
                    v_id, array_to_string(v_missing, ', '))));
            perform set_config('sync.inbox_id', '', true);
            return;
        end if;

        insert into public.fragrances (fragrance_id, name, description, cost, forbidden)
        values (v_id, p_delta ->> 'name', p_delta ->> 'description',
                (p_delta ->> 'cost')::numeric, (p_delta ->> 'forbidden')::boolean)
        on conflict (fragrance_id) do nothing;
        if found then
            insert into sync.field_version as fv
            values (v_id, p_inbox_id, p_inbox_id, p_inbox_id, p_inbox_id)
            on conflict (fragrance_id) do update
                set name_inbox_id = excluded.name_inbox_id,
                    description_inbox_id = excluded.description_inbox_id,
                    cost_inbox_id = excluded.cost_inbox_id,
                    forbidden_inbox_id = excluded.forbidden_inbox_id;
            status := 'applied';
            applied_fields := v_all_fields;
            perform set_config('sync.inbox_id', '', true);
            return;
        end if;
        -- A concurrent delivery created it first: go round, lock it and merge as an update.
    end loop;

    select * into v_version from sync.field_version where fragrance_id = v_id;
    applied_fields := array(
        select f from unnest(v_fields) as f
        where p_inbox_id > coalesce(case f
            when 'name' then v_version.name_inbox_id
            when 'description' then v_version.description_inbox_id
            when 'cost' then v_version.cost_inbox_id
            when 'forbidden' then v_version.forbidden_inbox_id
        end, 0));
    stale_fields := array(select f from unnest(v_fields) as f where f <> all (applied_fields));

    if cardinality(applied_fields) > 0 then
        update public.fragrances as t
        set name = n.name, description = n.description, cost = n.cost, forbidden = n.forbidden
        from (
            select
                case when 'name' = any (applied_fields) then p_delta ->> 'name' else f.name end as name,
                case when 'description' = any (applied_fields) then p_delta ->> 'description' else f.description end as description,
                case when 'cost' = any (applied_fields) then (p_delta ->> 'cost')::numeric else f.cost end as cost,
                case when 'forbidden' = any (applied_fields) then (p_delta ->> 'forbidden')::boolean else f.forbidden end as forbidden
            from public.fragrances as f
            where f.fragrance_id = v_id
        ) as n
        where t.fragrance_id = v_id
          and (t.name, t.description, t.cost, t.forbidden)
              is distinct from (n.name::varchar, n.description::varchar, n.cost, n.forbidden);

        insert into sync.field_version as fv
        values (
            v_id,
            case when 'name' = any (applied_fields) then p_inbox_id else 0 end,
            case when 'description' = any (applied_fields) then p_inbox_id else 0 end,
            case when 'cost' = any (applied_fields) then p_inbox_id else 0 end,
            case when 'forbidden' = any (applied_fields) then p_inbox_id else 0 end)
        on conflict (fragrance_id) do update
            set name_inbox_id = greatest(fv.name_inbox_id, excluded.name_inbox_id),
                description_inbox_id = greatest(fv.description_inbox_id, excluded.description_inbox_id),
                cost_inbox_id = greatest(fv.cost_inbox_id, excluded.cost_inbox_id),
                forbidden_inbox_id = greatest(fv.forbidden_inbox_id, excluded.forbidden_inbox_id);
        status := 'applied';
    else
        status := 'ignored';
    end if;

    if cardinality(stale_fields) > 0 then
        reasons := jsonb_build_array(sync.reason('delta.stale', null,
            format('%s already set by a later delivery, so left as it is', array_to_string(stale_fields, ', ')),
            'info'));
    end if;
    perform set_config('sync.inbox_id', '', true);
end;
$$;
comment on function sync._merge(bigint, jsonb) is
    'Merges one valid delta: locks the fragrance, creates it when unknown and complete, else writes each present field whose last writer is older than this delivery.';

-- sync._apply
-- Decides one prepared delivery: rejected, ignored, or merged whole (or not at all).
create function sync._apply(p_inbox_id bigint, p_prepared sync.prepared) returns sync.outcome
    language plpgsql
as $$
declare
    v_result sync.outcome;
    v_merge record;
    v_state text;
    v_message text;
begin
    v_result.payload := p_prepared.payload;
    v_result.fragrance_id := p_prepared.fragrance_id;
    v_result.reasons := p_prepared.reasons;
    v_result.applied_fields := '{}';
    v_result.stale_fields := '{}';

    if not p_prepared.valid then
        v_result.status := 'rejected';
        return v_result;
    end if;

    if not p_prepared.payload ?| array['name', 'description', 'cost', 'forbidden'] then
        v_result.status := 'ignored';
        v_result.reasons := v_result.reasons || sync.reason('delta.empty', null,
            'the change carries no field to apply', 'info');
        return v_result;
    end if;

    -- The block is a subtransaction: a failure undoes the whole delta, never half of it,
    -- and the delivery is still stored with the failure as its reason.
    begin
        v_merge := sync._merge(p_inbox_id, p_prepared.payload);
        v_result.status := v_merge.status;
        v_result.reasons := v_result.reasons || v_merge.reasons;
        v_result.applied_fields := v_merge.applied_fields;
        v_result.stale_fields := v_merge.stale_fields;
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
        if v_state in ('40001', '40P01', '55P03') then
            v_result.status := 'pending';
            v_result.reasons := v_result.reasons || sync.reason('internal.retryable', null,
                format('merge hit a transient conflict (SQLSTATE %s: %s); sync.apply_pending() will take it again',
                    v_state, v_message), 'warning');
        else
            v_result.status := 'rejected';
            v_result.reasons := v_result.reasons || sync.reason('internal.error', null,
                format('merge failed (SQLSTATE %s: %s); fix the cause, then SELECT sync.retry(%s);',
                    v_state, v_message, p_inbox_id));
        end if;
    end;
    return v_result;
end;
$$;
comment on function sync._apply(bigint, sync.prepared) is
    'Processes one prepared delivery: rejects it on rule errors, ignores an empty delta, else merges it atomically; unexpected failures become reasons, never lost deliveries.';

-- sync._process_on_receipt
-- Trigger: validates and merges a delivery in the transaction that stores it.
create function sync._process_on_receipt() returns trigger
    language plpgsql
as $$
declare
    v_outcome sync.outcome;
begin
    if not (select apply_on_receipt from sync.settings) then
        return new;
    end if;
    v_outcome := sync._apply(new.id, sync.prepare(new.body));
    new.payload := v_outcome.payload;
    new.fragrance_id := v_outcome.fragrance_id;
    new.status := v_outcome.status;
    new.reasons := v_outcome.reasons;
    new.applied_fields := v_outcome.applied_fields;
    new.stale_fields := v_outcome.stale_fields;
    new.attempts := 1;
    new.processed_at := clock_timestamp();
    return new;
end;
$$;
comment on function sync._process_on_receipt() is
    'Trigger (BEFORE INSERT on sync.inbox): when sync.settings.apply_on_receipt, processes the delivery so the hook''s answer already reflects it.';

create trigger _200_process_on_receipt
    before insert on sync.inbox
    for each row execute function sync._process_on_receipt();

-- sync._process_claimed
-- Processes inbox rows the caller has locked, in receipt order, and records each outcome.
create function sync._process_claimed(p_ids bigint[]) returns sync.batch_result
    language plpgsql
as $$
declare
    v_result sync.batch_result := row(0, 0, 0, 0, 0, null, null);
    v_ids bigint[];
    v_prepared sync.prepared[];
    v_outcome sync.outcome;
begin
    select array_agg(s.id order by s.id), array_agg(s.p order by s.id)
    into v_ids, v_prepared
    from (select i.id, sync.prepare(i.body) as p from sync.inbox as i where i.id = any (p_ids)) as s;
    if v_ids is null then
        return v_result;
    end if;

    -- Lock every fragrance of the batch up front, in id order, so concurrent
    -- appliers and hooks wait for each other but can never deadlock.
    perform 1 from public.fragrances
    where fragrance_id in (select (x).fragrance_id from unnest(v_prepared) as x where (x).valid)
    order by fragrance_id
    for update;

    for i in 1 .. cardinality(v_ids) loop
        v_outcome := sync._apply(v_ids[i], v_prepared[i]);
        update sync.inbox
        set payload = v_outcome.payload,
            fragrance_id = v_outcome.fragrance_id,
            status = v_outcome.status,
            reasons = v_outcome.reasons,
            applied_fields = v_outcome.applied_fields,
            stale_fields = v_outcome.stale_fields,
            attempts = attempts + 1,
            processed_at = clock_timestamp()
        where id = v_ids[i];
        v_result.processed := v_result.processed + 1;
        case v_outcome.status
            when 'applied' then v_result.applied := v_result.applied + 1;
            when 'ignored' then v_result.ignored := v_result.ignored + 1;
            when 'rejected' then v_result.rejected := v_result.rejected + 1;
            else v_result.pending := v_result.pending + 1;
        end case;
    end loop;
    v_result.first_inbox_id := v_ids[1];
    v_result.last_inbox_id := v_ids[cardinality(v_ids)];
    return v_result;
end;
$$;
comment on function sync._process_claimed(bigint[]) is
    'Processes the given (already locked) inbox rows in receipt order and stores each outcome; returns the counts.';

-- sync.apply_pending
-- Applies up to p_limit pending deliveries in receipt order; safe to run from several sessions.
create function sync.apply_pending(p_limit integer default 1000) returns sync.batch_result
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    if p_limit is null or p_limit < 1 then
        raise exception 'p_limit must be a positive number of deliveries, got %', p_limit
            using errcode = 'FS004';
    end if;
    return sync._process_claimed(array(
        select id from sync.inbox
        where status = 'pending'
        order by id
        limit p_limit
        for update skip locked));
end;
$$;
comment on function sync.apply_pending(integer) is
    'Validates and merges up to p_limit pending deliveries in receipt order and returns the counts. Rows another session is processing are skipped, so concurrent calls never apply a delivery twice. Usage: SELECT * FROM sync.apply_pending(1000);';

-- sync.retry
-- Processes one quarantined delivery again, after a rule or data fix.
create function sync.retry(p_inbox_id bigint) returns sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_status text;
    v_receipt sync.receipt;
begin
    select status into v_status from sync.inbox where id = p_inbox_id for update;
    if not found then
        raise exception 'inbox row % does not exist', p_inbox_id
            using errcode = 'FS001', hint = 'List quarantined deliveries with SELECT * FROM sync.quarantine;';
    end if;
    if v_status <> 'rejected' then
        raise exception 'inbox row % is %; only rejected deliveries can be retried', p_inbox_id, v_status
            using errcode = 'FS002';
    end if;
    perform sync._process_claimed(array[p_inbox_id]);
    select id, status, reasons into v_receipt from sync.inbox where id = p_inbox_id;
    return v_receipt;
end;
$$;
comment on function sync.retry(bigint) is
    'Processes one rejected delivery again (fields set since by later deliveries are left alone) and returns its new receipt. Usage: SELECT * FROM sync.retry(42);';

-- sync.retry_all
-- Processes quarantined deliveries again, optionally only those rejected for one code.
create function sync.retry_all(p_code text default null, p_limit integer default 1000)
    returns sync.batch_result
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    if p_limit is null or p_limit < 1 then
        raise exception 'p_limit must be a positive number of deliveries, got %', p_limit
            using errcode = 'FS004';
    end if;
    return sync._process_claimed(array(
        select id from sync.inbox
        where status = 'rejected'
          and (p_code is null or reasons @> jsonb_build_array(jsonb_build_object('code', p_code)))
        order by id
        limit p_limit
        for update skip locked));
end;
$$;
comment on function sync.retry_all(text, integer) is
    'Processes up to p_limit rejected deliveries again in receipt order, all of them or only those with reason code p_code. Usage: SELECT * FROM sync.retry_all(); or SELECT * FROM sync.retry_all(''name.too_long'');';

-- sync.discard
-- Writes off one quarantined delivery with a stated reason; it stays in the inbox.
create function sync.discard(p_inbox_id bigint, p_reason text) returns sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_status text;
    v_receipt sync.receipt;
begin
    if p_reason is null or btrim(p_reason) = '' then
        raise exception 'a reason is required to discard inbox row %', p_inbox_id
            using errcode = 'FS003', hint = 'SELECT sync.discard(42, ''why it is safe to drop'');';
    end if;
    select status into v_status from sync.inbox where id = p_inbox_id for update;
    if not found then
        raise exception 'inbox row % does not exist', p_inbox_id
            using errcode = 'FS001', hint = 'List quarantined deliveries with SELECT * FROM sync.quarantine;';
    end if;
    if v_status <> 'rejected' then
        raise exception 'inbox row % is %; only rejected deliveries can be discarded', p_inbox_id, v_status
            using errcode = 'FS002';
    end if;
    update sync.inbox
    set status = 'discarded', discarded_by = session_user, discard_reason = p_reason
    where id = p_inbox_id
    returning id, status, reasons into v_receipt;
    return v_receipt;
end;
$$;
comment on function sync.discard(bigint, text) is
    'Marks one rejected delivery as discarded, recording who and why; the row and its body stay in the inbox. Usage: SELECT * FROM sync.discard(42, ''test payload from the CMS vendor'');';
