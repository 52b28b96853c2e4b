-- Create the sync schema, its settings and the inbox that stages every webhook delivery
-- depends: 0001-adopt-fragrances

create schema if not exists sync;
comment on schema sync is
    'Fragrance sync: stages CMS webhook deliveries, validates them and merges the valid ones into public.fragrances.';

-- sync.settings: one row of knobs a DBA may change with one UPDATE.
create table sync.settings (
    singleton boolean primary key default true check (singleton),
    apply_on_receipt boolean not null default true
);
insert into sync.settings default values;
comment on table sync.settings is
    'One-row table of sync settings; change a value with UPDATE sync.settings SET ... ;';
comment on column sync.settings.singleton is
    'Always true: the primary key that keeps this table at exactly one row.';
comment on column sync.settings.apply_on_receipt is
    'When true, a delivery is validated and merged in the transaction that stores it; when false it stays pending until sync.apply_pending() runs.';

-- sync.inbox: one row per delivery, in receipt order, never deleted by processing.
create table sync.inbox (
    id bigint generated always as identity primary key,
    received_at timestamptz not null default clock_timestamp(),
    body bytea not null,
    payload jsonb,
    content_type text,
    client_addr inet,
    user_agent text,
    fragrance_id integer,
    status text not null default 'pending'
        check (status in ('pending', 'applied', 'ignored', 'rejected', 'discarded')),
    reasons jsonb not null default '[]'
        check (jsonb_typeof(reasons) = 'array'),
    applied_fields text[] not null default '{}',
    stale_fields text[] not null default '{}',
    attempts integer not null default 0,
    processed_at timestamptz,
    discarded_by text,
    discard_reason text
);
comment on table sync.inbox is
    'Every webhook delivery, one row each, in receipt order (id). Processing changes status and reasons, never body; nothing here is deleted by processing.';
comment on column sync.inbox.id is
    'Receipt order: the only order the CMS gives us. Per-field merge ordering compares these ids.';
comment on column sync.inbox.body is
    'The exact bytes received, kept as bytea because a body may be invalid UTF-8 or hold \u0000, which text and jsonb cannot store.';
comment on column sync.inbox.payload is
    'The body parsed as jsonb, when it is UTF-8 JSON that jsonb can hold; null otherwise.';
comment on column sync.inbox.fragrance_id is
    'The fragrance the delivery is about, when the body names a valid one.';
comment on column sync.inbox.status is
    'pending (not processed yet), applied (valid, merged), ignored (valid, changes nothing), rejected (quarantined, see reasons), discarded (rejected and written off by a DBA).';
comment on column sync.inbox.reasons is
    'JSON array of {code, severity, field, message}: every rule violation (severity error) and warning (e.g. field.unknown).';
comment on column sync.inbox.applied_fields is
    'Fields this delivery wrote into public.fragrances.';
comment on column sync.inbox.stale_fields is
    'Fields this delivery carried but did not write, because a later delivery had already set them (per-field receipt order).';
comment on column sync.inbox.attempts is
    'How many times the delivery has been processed (first apply plus retries).';
comment on column sync.inbox.discarded_by is
    'Database user who discarded the delivery with sync.discard().';
comment on column sync.inbox.discard_reason is
    'Why the DBA discarded the delivery.';

-- Hot paths: the pending queue in receipt order, quarantine listing, per-fragrance lookups.
create index inbox_pending_idx on sync.inbox (id) where status = 'pending';
create index inbox_rejected_idx on sync.inbox (id) where status = 'rejected';
create index inbox_fragrance_idx on sync.inbox (fragrance_id, id);

-- sync.receipt: what the hook answers for one delivery.
create type sync.receipt as (
    inbox_id bigint,
    status text,
    reasons jsonb
);
comment on type sync.receipt is
    'Outcome of storing (and, with apply_on_receipt, processing) one delivery.';

-- sync._protect_receipt
-- Refuses any change to what was received: id, received_at, body and request metadata.
create function sync._protect_receipt() returns trigger
    language plpgsql
as $$
begin
    if new.id is distinct from old.id
        or new.received_at is distinct from old.received_at
        or new.body is distinct from old.body
        or new.content_type is distinct from old.content_type
        or new.client_addr is distinct from old.client_addr
        or new.user_agent is distinct from old.user_agent
    then
        raise exception 'inbox row % is a record of what was received and cannot be changed', old.id
            using errcode = 'FS010',
                  hint = 'Change its processing with sync.retry() or sync.discard() instead.';
    end if;
    return new;
end;
$$;
comment on function sync._protect_receipt() is
    'Trigger: keeps the received part of an inbox row (id, received_at, body, request metadata) immutable.';

create trigger _100_protect_receipt
    before update on sync.inbox
    for each row execute function sync._protect_receipt();

-- sync.receive
-- Stores one delivery exactly as received and returns its receipt; the hook's only entry point.
create function sync.receive(
    p_body bytea,
    p_content_type text default null,
    p_client_addr inet default null,
    p_user_agent text default null
) returns sync.receipt
    language sql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    insert into sync.inbox (body, content_type, client_addr, user_agent)
    values (p_body, p_content_type, p_client_addr, p_user_agent)
    returning id, status, reasons;
$$;
comment on function sync.receive(bytea, text, inet, text) is
    'Stores one webhook delivery in sync.inbox (processing it at once when sync.settings.apply_on_receipt) and returns (inbox_id, status, reasons). Runs as its owner so the hook needs no table privileges.';
