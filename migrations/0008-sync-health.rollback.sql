-- Remove sync health, the /metrics and /status data functions and the health thresholds
revoke execute on function sync.metrics(), sync.status_report(timestamptz, integer, integer) from sync_hook;
revoke execute on function
    sync.health_at(timestamptz), sync.metrics(), sync.status_report(timestamptz, integer, integer)
    from sync_dba;
revoke select on sync.health from sync_dba;
drop function sync.status_report(timestamptz, integer, integer);
drop function sync._preview(bytea);
drop function sync.metrics();
drop type sync.metric_snapshot;
drop view sync.health;
drop function sync.health_at(timestamptz);
drop type sync.health_report;
drop function sync._say_interval(interval);
alter table sync.settings
    drop constraint settings_reject_share_is_a_share,
    drop constraint settings_pending_warn_positive,
    drop constraint settings_silence_thresholds_ordered,
    drop constraint settings_cadence_positive,
    drop column reject_share_warn,
    drop column pending_warn_after,
    drop column silence_critical_after,
    drop column silence_warn_after,
    drop column expected_interval;
