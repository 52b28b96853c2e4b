-- Every sequence and constraint of the sync carries a comment
-- depends: 0065-a-discard-undone-by-a-retry

-- A DBA meets a constraint in an error (a violated check names it) and a
-- sequence in nextval or \ds: \d+ and \dd said nothing of either (hostile
-- review). tests/test_migrations.py now asks every one for a comment. Not
-- the not-null constraints: their column's comment says it. Comments only:
-- no table is locked beyond a moment.

comment on sequence sync.finding_id_seq is
    'Numbers sync.finding rows (its identity column id), in the order they opened.';
comment on sequence sync.fragrance_history_id_seq is
    'Numbers sync.fragrance_history rows (id): the order of the changes, which sync.fragrance_at and sync.revert undo by.';
comment on sequence sync.inbox_id_seq is
    'Numbers sync.inbox rows (id): the receipt order, by which each field''s newest delivery wins (ADR 0002).';
comment on sequence sync.job_run_id_seq is
    'Numbers sync.job_run rows (id).';
comment on sequence sync.rule_version_version_seq is
    'Numbers sync.rule_version rows (version): the highest is the rules in force.';

comment on constraint field_version_versions_check on sync.field_version is
    'The field clock is a JSON object: {field: inbox position of the delivery that last set it}.';
comment on constraint field_version_pkey on sync.field_version is
    'One field clock per fragrance.';
comment on constraint finding_check on sync.finding is
    'A finding is closed with both when and by what (closed_at and closed_by), or open with neither.';
comment on constraint finding_severity_check on sync.finding is
    'A finding is of an error or a warning rule: a rule turned off opens none.';
comment on constraint finding_rule_fkey on sync.finding is
    'Each finding names a rule of sync.rule; a rule''s findings go with it (0033: only a migration''s rollback deletes a rule).';
comment on constraint finding_rules_version_fkey on sync.finding is
    'Each finding names the sync.rule_version that judged it.';
comment on constraint finding_pkey on sync.finding is
    'A finding''s number.';
comment on constraint fragrance_history_operation_check on sync.fragrance_history is
    'A change of public.fragrances is an insert, an update or a delete.';
comment on constraint fragrance_history_pkey on sync.fragrance_history is
    'A change''s number, in the order recorded.';
comment on constraint inbox_origin_known on sync.inbox is
    'A delivery came from the CMS''s webhook, or was made by sync.revert or sync.repair.';
comment on constraint inbox_reasons_check on sync.inbox is
    'The reasons of a delivery are a JSON array of {code, message, ...}.';
comment on constraint inbox_status_check on sync.inbox is
    'A delivery is pending, applied, ignored, rejected or discarded.';
comment on constraint inbox_pkey on sync.inbox is
    'A delivery''s inbox id, in receipt order.';
comment on constraint job_name_check on sync.job is
    'The jobs are the sync''s own three: check_catalog, purge_inbox, check_drift.';
comment on constraint job_schedule_check on sync.job is
    'A schedule is a five-field cron expression (minute hour day month weekday).';
comment on constraint job_pkey on sync.job is
    'A job by its name.';
comment on constraint job_run_status_check on sync.job_run is
    'A run is running, ok, failed or interrupted.';
comment on constraint job_run_job_fkey on sync.job_run is
    'Each run is of a job of sync.job.';
comment on constraint job_run_pkey on sync.job_run is
    'A run''s number.';
comment on constraint rule_applies_to_check on sync.rule is
    'A rule judges deltas, the catalog at rest, or both.';
comment on constraint rule_default_severity_check on sync.rule is
    'A rule''s shipped severity is error, warning or off.';
comment on constraint rule_severity_check on sync.rule is
    'A rule''s severity is error (rejects), warning (records) or off (skips).';
comment on constraint rule_tunable_check on sync.rule is
    'What a DBA may tune of a rule: its severity, its parameter, both or neither.';
comment on constraint rule_pkey on sync.rule is
    'A rule by its code (name.too_long).';
comment on constraint rule_version_rules_check on sync.rule_version is
    'A version''s rules are a JSON object: {code: {severity, parameter, applies_to}}.';
comment on constraint rule_version_pkey on sync.rule_version is
    'A version''s number: the highest is the rules in force.';
comment on constraint cms_snapshot_pkey on sync.cms_snapshot is
    'One snapshot row per fragrance of the CMS.';
comment on constraint settings_cadence_positive on sync.settings is
    'The CMS''s expected cadence is longer than nothing.';
comment on constraint settings_discarded_purge_after_check on sync.settings is
    'Discarded deliveries are kept a day or more, no part of the age negative (months, days, time), so it reaches back.';
comment on constraint settings_discarded_purge_after_within_calendar on sync.settings is
    'Discarded deliveries are kept at most 1000 years: an age the calendar can count back.';
comment on constraint settings_pending_warn_positive on sync.settings is
    'The age at which a pending delivery warns is longer than nothing.';
comment on constraint settings_purge_after_check on sync.settings is
    'Applied and ignored deliveries, closed findings and job runs are kept a day or more, no part of the age negative, so it reaches back.';
comment on constraint settings_purge_after_within_calendar on sync.settings is
    'They are kept at most 1000 years: an age the calendar can count back.';
comment on constraint settings_reject_share_is_a_share on sync.settings is
    'The share of rejected deliveries that warns is above 0 and at most 1.';
comment on constraint settings_silence_thresholds_ordered on sync.settings is
    'Silence warns no sooner than the expected cadence, and is critical only after it warns.';
comment on constraint settings_singleton_check on sync.settings is
    'The settings are one row: singleton is always true.';
comment on constraint settings_pkey on sync.settings is
    'The settings are one row (with settings_singleton_check).';
comment on constraint settings_snapshot_warn_positive on sync.settings is
    'The age at which the CMS snapshot warns is longer than nothing.';
comment on constraint settings_snapshot_warn_within_calendar on sync.settings is
    'The snapshot''s warning age is at most 1000 years and no part of it negative, so it reaches back.';
comment on constraint code_0018_pkey on sync_private.code_0018 is
    'The statements of release 0018''s code, by their order of execution.';
comment on constraint code_object_pkey on sync_private.code_object is
    'An object the last code load made, by its type and identity.';
comment on constraint merging_pkey on sync_private.merging is
    'One row per transaction whose merge is writing public.fragrances.';
comment on constraint name_turn_pkey on sync_private.name_turn is
    'One row per turn of names.';
comment on constraint pg_cron_job_pkey on sync_private.pg_cron_job is
    'A pg_cron jobid, within the pg_cron extension that gave it.';
comment on constraint purged_webhook_only_row_check on sync_private.purged_webhook is
    'The table holds one row at most: only_row is always true.';
comment on constraint purged_webhook_pkey on sync_private.purged_webhook is
    'One row at most (with purged_webhook_only_row_check).';
