-- sync.inbox keeps who discarded a delivery before, and why, when it is discarded again
-- depends: 0066-sequences-and-constraints-say-what-they-are

-- A discarded delivery can be retried (0065, ADR 0039), refused again and
-- discarded again: sync.discard overwrote discarded_by, discard_reason and
-- discarded_at, and the first write-off's who and why were gone (hostile
-- review). sync.discard (db/50-dba.sql) now appends them here first. A
-- nullable column without a default: no row is rewritten.
alter table sync.inbox add column earlier_discards jsonb;
comment on column sync.inbox.earlier_discards is
    'The discards before the last one, oldest first, when a discarded delivery was retried and discarded again: [{"by": ..., "reason": ..., "at": ...}]; null if discarded once or never. discarded_by, discard_reason and discarded_at are the last.';
