-- The field clock keeps the position a repair's write counts at, so the purge of its inbox row does not move it
-- depends: 0071-a-repair-counts-at-its-snapshot

-- sync.drift reads the column: dropped first, the next apply makes it again.
drop view sync.drift;
alter table sync.field_version drop column positions;
-- The receipt guard names sync.inbox.counts_at since this release: dropped
-- here so that 0071's rollback can drop the column; the next apply makes it.
drop trigger if exists _100_protect_receipt on sync.inbox;
comment on column sync.inbox.counts_at is
    'The receipt position this delivery counts at in the per-field order, when not its own id: a repair''s, the inbox position of the snapshot it repairs from (a delivery received after that position is newer than it, whenever it is stored or merged). Null: its id.';
