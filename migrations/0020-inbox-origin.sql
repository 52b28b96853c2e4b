-- Say who made each delivery, and keep request metadata the database cannot parse
-- depends: 0018-receive-once

-- A content type can be forged by any sender (POST with Content-Type:
-- application/x-sync-revert), so the status page could not tell a revert from
-- a webhook by it. origin is set by the function that stores the delivery,
-- never by the sender.
alter table sync.inbox
    add column origin text not null default 'webhook',
    add constraint inbox_origin_known check (origin in ('webhook', 'revert', 'repair'));
comment on column sync.inbox.origin is
    'Who made the delivery: webhook (the CMS through the hook, or a direct insert), revert (sync.revert) or repair (sync.repair). Set by the database, never by the sender.';

-- Reverts and repairs made before this column existed: the database made
-- them, so they have no client address and no hook key.
update sync.inbox
set origin = case content_type when 'application/x-sync-revert' then 'revert' else 'repair' end
where content_type in ('application/x-sync-revert', 'application/x-sync-repair')
  and client_addr is null and spool_key is null
  and user_agent like 'sync.re%';

-- A client address PostgreSQL cannot read (fe80::1%eth0 is valid to Python,
-- not to inet) must never cost the delivery: it is kept as it came.
alter table sync.inbox add column client_addr_raw text;
comment on column sync.inbox.client_addr_raw is
    'The client address as the hook gave it, when it is not one PostgreSQL can store as inet (client_addr is then null).';
comment on column sync.inbox.client_addr is
    'The client''s IP address as the hook saw it (null for deliveries the database made, or when it could not be read: see client_addr_raw).';
comment on column sync.inbox.content_type is
    'The Content-Type header as sent; informative only (origin says who made the delivery).';
comment on column sync.inbox.user_agent is
    'The User-Agent header as sent (for reverts and repairs, who ran them).';
comment on column sync.inbox.received_at is
    'When the delivery was received: when its batch took its place in receipt order, or, for a delivery the hook spooled while the database was down, when the hook received it.';
comment on column sync.inbox.processed_at is
    'When it was last processed (null while pending).';
