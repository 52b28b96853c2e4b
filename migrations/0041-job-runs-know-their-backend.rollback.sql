-- A run of a job records the backend that runs it, and may end interrupted
-- depends: 0040-blank-looking-characters

-- An interrupted run reads as failed in the release rolled back to: it did not finish.
update sync.job_run set status = 'failed' where status = 'interrupted';
alter table sync.job_run
    drop constraint job_run_status_check,
    add constraint job_run_status_check check (status in ('running', 'ok', 'failed')),
    drop column backend_pid,
    drop column session_lock;
comment on column sync.job_run.status is 'running, ok or failed.';
comment on column sync.job_run.finished_at is 'When it ended.';
