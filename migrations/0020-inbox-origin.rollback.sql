-- Forget who made each delivery and the unparsed client addresses
alter table sync.inbox drop column client_addr_raw;
alter table sync.inbox drop constraint inbox_origin_known, drop column origin;
comment on column sync.inbox.client_addr is null;
comment on column sync.inbox.content_type is null;
comment on column sync.inbox.user_agent is null;
comment on column sync.inbox.received_at is null;
comment on column sync.inbox.processed_at is null;
