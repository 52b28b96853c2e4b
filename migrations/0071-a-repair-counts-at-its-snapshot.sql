-- A repair's delivery counts at its snapshot's inbox position, not at its own id
-- depends: 0070-final-sigma-lookalikes

alter table sync.inbox add column counts_at bigint;
alter table sync.inbox add constraint inbox_counts_at_before_id check (counts_at >= 0 and counts_at < id);
comment on column sync.inbox.counts_at is
    'The receipt position this delivery counts at in the per-field order, when not its own id: a repair''s, the inbox position of the snapshot it repairs from (a delivery received after that position is newer than it, whenever it is stored or merged). Null: its id.';
comment on constraint inbox_counts_at_before_id on sync.inbox is
    'A delivery counts at or after position 0 and before its own id: only a repair''s counts elsewhere, at its snapshot''s position, which precedes it.';
