-- The pg_cron jobs the sync registered, by jobid, so its log is purged of theirs only
-- depends: 0058-health-without-rows

drop table sync_private.pg_cron_job;
