-- Health judges a scheduled job that never ran
-- depends: 0057-hand-change-positions

-- sync.health warned about a job whose last run failed, was interrupted or
-- is older than its schedule allows, but a job that never ran had no run to
-- judge: with neither pg_cron nor the cron lines of docs/operations.md (a
-- step a deploy can miss), the purge, the catalog check and the drift check
-- never ran, the inbox grew and lost webhooks stayed unrepaired, with health
-- ok for good (hostile review). Judged from the moment it was enabled now:
-- for the jobs of an existing install, the moment of this migration.
alter table sync.job add column enabled_at timestamptz not null default now();
comment on column sync.job.enabled_at is
    'When the job was last enabled (set by the trigger _100_date_enabling; the install or migration 0058 for a job never disabled): sync.health judges a job that never ran from this moment.';

