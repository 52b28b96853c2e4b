-- The history keeps the receipt position a hand change took
-- depends: 0056-old-code-revokes-from-public

-- A hand UPDATE or DELETE of public.fragrances counts as received when it is
-- made: it moves sync.field_version to the inbox position reached then
-- (sync_private.record_change). Its history row kept no trace of that
-- position, so sync.revert, asking which delivery was older than the value a
-- change replaced, took a hand edit for position 0, older than every
-- delivery: a delivery received before the edit, and stale to it, was named
-- as the value before the change, and the DBA told to set its older value by
-- hand (review). Rows written before this migration have none; a revert
-- reads them as before.
alter table sync.fragrance_history add column inbox_position bigint;
comment on column sync.fragrance_history.inbox_position is
    'For a hand UPDATE or DELETE (no inbox id), the receipt position it took: the last inbox id drawn when it was made, which it wrote on sync.field_version, so deliveries up to it are older. Null for a delivery''s row (its inbox_id is its position), for a hand INSERT (a baseline, older than every delivery) and for rows recorded before migration 0057.';
