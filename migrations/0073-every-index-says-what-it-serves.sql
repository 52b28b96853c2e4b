-- Every index of ours says what it serves, as every other object does
-- depends: 0072-the-field-clock-keeps-a-repairs-position

-- psql's \di+ and a plan name these indexes to a DBA, and 26 of them said
-- nothing: whether one may be dropped, or why a plan reads it, was a matter
-- of reading old migrations. A COMMENT takes no lock a reader or a writer of
-- the table waits for (it locks only the index's catalog row).

-- sync.inbox
comment on index sync.inbox_pkey is
    'The inbox in receipt order: the per-field order, the merge, the spool''s drain and every verb that names a delivery (retry, discard, revert) find it by id.';
comment on index sync.inbox_pending_idx is
    'The pending deliveries in receipt order, only those: the merge claims its batch from here.';
comment on index sync.inbox_rejected_idx is
    'The rejected deliveries (the quarantine) in receipt order, only those: the sync.quarantine view and the verbs that list them read it.';
comment on index sync.inbox_fragrance_idx is
    'Each fragrance''s deliveries in receipt order: a revert finds the deliveries of its fragrance received around the one it undoes.';
comment on index sync.inbox_received_at_idx is
    'Deliveries by the moment they were received: the purge walks it from the oldest, sync.health reads the newest.';
comment on index sync.inbox_spool_key_idx is
    'One delivery per spool key: a delivery the hook''s spool replays after an outage, already stored once, is not stored twice.';
comment on index sync.inbox_unknown_field_idx is
    'Deliveries that carried a key the rules do not know (the reason field.unknown), only those: sync.unknown_field lists the CMS''s schema drift from here.';

-- sync.fragrance_history
comment on index sync.fragrance_history_pkey is
    'The history in the order it was written: each row once.';
comment on index sync.fragrance_history_fragrance_idx is
    'Each fragrance''s history in order: a revert reads what a field held before, and a DBA reads one fragrance''s story.';
comment on index sync.fragrance_history_inbox_idx is
    'The history a delivery wrote, by its inbox id (only rows a delivery wrote): a revert finds what the delivery changed.';

-- sync.finding
comment on index sync.finding_pkey is
    'Each finding once.';
comment on index sync.finding_closed_at_idx is
    'The closed findings by the moment they closed, only those: the purge deletes the old ones, and sync.health counts those closed after its moment.';

-- The other tables of sync
comment on index sync.field_version_pkey is
    'The field clock, one row per fragrance: the merge reads and moves it per field.';
comment on index sync.cms_snapshot_pkey is
    'One snapshot row per fragrance: the drift check and the repair compare it with public.fragrances.';
comment on index sync.job_pkey is
    'Each scheduled job once, by name.';
comment on index sync.job_run_pkey is
    'Each run of a job once, in the order they started.';
comment on index sync.job_run_job_idx is
    'Each job''s runs in order: sync.health and the status page read each job''s latest run.';
comment on index sync.rule_pkey is
    'Each rule once, by its code.';
comment on index sync.rule_version_pkey is
    'Each version of the rules once.';
comment on index sync.settings_pkey is
    'The settings are one row.';

-- sync_private
comment on index sync_private.code_0018_pkey is
    'The statements of the code as migration 0018 left it, in their order: the rollback of migration 0022 runs them.';
comment on index sync_private.code_object_pkey is
    'Each object the last code load made, once: the next load drops them.';
comment on index sync_private.merging_pkey is
    'One row per transaction whose merge writes public.fragrances right now.';
comment on index sync_private.name_turn_pkey is
    'Each turn of names once: a writer of a name locks its turn''s row.';
comment on index sync_private.pg_cron_job_pkey is
    'Each jobid pg_cron gave one of our jobs, once per pg_cron extension.';
comment on index sync_private.purged_webhook_pkey is
    'The table holds one row at most.';
