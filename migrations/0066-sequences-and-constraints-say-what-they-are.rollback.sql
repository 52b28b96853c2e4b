-- Every sequence and constraint of the sync carries a comment
-- depends: 0065-a-discard-undone-by-a-retry

-- As before 0066: no comment on a sequence or a constraint.

comment on sequence sync.finding_id_seq is null;
comment on sequence sync.fragrance_history_id_seq is null;
comment on sequence sync.inbox_id_seq is null;
comment on sequence sync.job_run_id_seq is null;
comment on sequence sync.rule_version_version_seq is null;
comment on constraint field_version_versions_check on sync.field_version is null;
comment on constraint field_version_pkey on sync.field_version is null;
comment on constraint finding_check on sync.finding is null;
comment on constraint finding_severity_check on sync.finding is null;
comment on constraint finding_rule_fkey on sync.finding is null;
comment on constraint finding_rules_version_fkey on sync.finding is null;
comment on constraint finding_pkey on sync.finding is null;
comment on constraint fragrance_history_operation_check on sync.fragrance_history is null;
comment on constraint fragrance_history_pkey on sync.fragrance_history is null;
comment on constraint inbox_origin_known on sync.inbox is null;
comment on constraint inbox_reasons_check on sync.inbox is null;
comment on constraint inbox_status_check on sync.inbox is null;
comment on constraint inbox_pkey on sync.inbox is null;
comment on constraint job_name_check on sync.job is null;
comment on constraint job_schedule_check on sync.job is null;
comment on constraint job_pkey on sync.job is null;
comment on constraint job_run_status_check on sync.job_run is null;
comment on constraint job_run_job_fkey on sync.job_run is null;
comment on constraint job_run_pkey on sync.job_run is null;
comment on constraint rule_applies_to_check on sync.rule is null;
comment on constraint rule_default_severity_check on sync.rule is null;
comment on constraint rule_severity_check on sync.rule is null;
comment on constraint rule_tunable_check on sync.rule is null;
comment on constraint rule_pkey on sync.rule is null;
comment on constraint rule_version_rules_check on sync.rule_version is null;
comment on constraint rule_version_pkey on sync.rule_version is null;
comment on constraint cms_snapshot_pkey on sync.cms_snapshot is null;
comment on constraint settings_cadence_positive on sync.settings is null;
comment on constraint settings_discarded_purge_after_check on sync.settings is null;
comment on constraint settings_discarded_purge_after_within_calendar on sync.settings is null;
comment on constraint settings_pending_warn_positive on sync.settings is null;
comment on constraint settings_purge_after_check on sync.settings is null;
comment on constraint settings_purge_after_within_calendar on sync.settings is null;
comment on constraint settings_reject_share_is_a_share on sync.settings is null;
comment on constraint settings_silence_thresholds_ordered on sync.settings is null;
comment on constraint settings_singleton_check on sync.settings is null;
comment on constraint settings_pkey on sync.settings is null;
comment on constraint settings_snapshot_warn_positive on sync.settings is null;
comment on constraint settings_snapshot_warn_within_calendar on sync.settings is null;
comment on constraint code_0018_pkey on sync_private.code_0018 is null;
comment on constraint code_object_pkey on sync_private.code_object is null;
comment on constraint merging_pkey on sync_private.merging is null;
comment on constraint name_turn_pkey on sync_private.name_turn is null;
comment on constraint pg_cron_job_pkey on sync_private.pg_cron_job is null;
comment on constraint purged_webhook_only_row_check on sync_private.purged_webhook is null;
comment on constraint purged_webhook_pkey on sync_private.purged_webhook is null;
