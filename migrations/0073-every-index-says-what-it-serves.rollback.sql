-- Every index of ours says what it serves, as every other object does
-- depends: 0072-the-field-clock-keeps-a-repairs-position

-- The comments go; the indexes stay.
comment on index sync.inbox_pkey is null;
comment on index sync.inbox_pending_idx is null;
comment on index sync.inbox_rejected_idx is null;
comment on index sync.inbox_fragrance_idx is null;
comment on index sync.inbox_received_at_idx is null;
comment on index sync.inbox_spool_key_idx is null;
comment on index sync.inbox_unknown_field_idx is null;
comment on index sync.fragrance_history_pkey is null;
comment on index sync.fragrance_history_fragrance_idx is null;
comment on index sync.fragrance_history_inbox_idx is null;
comment on index sync.finding_pkey is null;
comment on index sync.finding_closed_at_idx is null;
comment on index sync.field_version_pkey is null;
comment on index sync.cms_snapshot_pkey is null;
comment on index sync.job_pkey is null;
comment on index sync.job_run_pkey is null;
comment on index sync.job_run_job_idx is null;
comment on index sync.rule_pkey is null;
comment on index sync.rule_version_pkey is null;
comment on index sync.settings_pkey is null;
comment on index sync_private.code_0018_pkey is null;
comment on index sync_private.code_object_pkey is null;
comment on index sync_private.merging_pkey is null;
comment on index sync_private.name_turn_pkey is null;
comment on index sync_private.pg_cron_job_pkey is null;
comment on index sync_private.purged_webhook_pkey is null;
