-- The pg_cron jobs the sync registered, by jobid, so its log is purged of theirs only
-- depends: 0058-health-without-rows

-- The purge of pg_cron's log (sync_private.purge_cron_run_details) took the
-- rows of our jobs by their registration now, or by their command, which
-- outlives a disabled job's registration. But a command is text anyone may
-- schedule: another job running 'call sync.purge_inbox()' had its rows
-- purged with ours (review). Each jobid pg_cron gives one of our jobs is
-- kept here when the sync registers it, and never reused while that
-- pg_cron lasts: the purge takes the rows of those jobids only. pg_cron
-- dropped and created again starts its jobids again, hence the extension.
create table sync_private.pg_cron_job (
    extension oid not null,
    jobid bigint not null,
    job text not null,
    registered_at timestamptz not null default now(),
    primary key (extension, jobid)
);
comment on table sync_private.pg_cron_job is
    'Every jobid pg_cron gave one of our jobs (sync_private.schedule_with_pg_cron records it), kept after the job is unscheduled: the rows of cron.job_run_details that sync_private.purge_cron_run_details may delete are those of these jobids, under this pg_cron.';
comment on column sync_private.pg_cron_job.extension is 'The oid of the pg_cron extension the jobid belongs to: created again, it numbers its jobs from 1 again.';
comment on column sync_private.pg_cron_job.jobid is 'The jobid of cron.job (and cron.job_run_details) pg_cron gave the job.';
comment on column sync_private.pg_cron_job.job is 'Our job (sync.job.name) registered under that jobid.';
comment on column sync_private.pg_cron_job.registered_at is 'When the sync first recorded the jobid.';
