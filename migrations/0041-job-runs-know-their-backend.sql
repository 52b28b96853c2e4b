-- A run of a job records the backend that runs it, and may end interrupted
-- depends: 0040-blank-looking-characters

-- The scheduled purge (the procedure sync.purge_inbox) commits its run row
-- as running before its first chunk. Cancelled (pg_cancel_backend, a
-- statement_timeout) or with its session gone (a crash, a terminated
-- backend, a host lost), nothing ended that row: it read running for good,
-- in sync.schedule() and to health, which judged only failed runs (hostile
-- review). A run now records the backend that runs it and a session lock
-- that backend holds until the run ends (sync_private.job_run_alive,
-- db/85-schedule.sql): a running run whose backend no longer holds it has
-- ended without finishing, and reads, then is recorded, as interrupted.
alter table sync.job_run
    add column backend_pid integer,
    add column session_lock bigint,
    drop constraint job_run_status_check,
    add constraint job_run_status_check check (status in ('running', 'ok', 'failed', 'interrupted'));
comment on column sync.job_run.status is
    'running, ok, failed, or interrupted: it ended without finishing (cancelled, or its session ended) after the work it had committed.';
comment on column sync.job_run.backend_pid is
    'The server process that runs it (pg_backend_pid()), while it runs by steps (sync.purge_inbox); null for a run in one transaction.';
comment on column sync.job_run.session_lock is
    'The key of the session advisory lock its backend holds until it ends (a random one per run, so no other login can take it first); a running run whose backend_pid no longer holds it is interrupted.';
comment on column sync.job_run.finished_at is
    'When it ended; null while it runs, and for a run interrupted without a word (its session ended: nobody saw when).';
