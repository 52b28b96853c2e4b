-- Health judges a job that never ran, and a silence that outlived the purge
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

-- The purge deletes applied deliveries older than purge_after, which may be
-- a day: a CMS silent for longer lost its last delivery to the purge, and
-- sync.health, finding no webhook at all, turned its critical silence into
-- "no delivery has ever been received", a warning (hostile review). The
-- purge keeps the moment of the last webhook it deleted here.
create table sync_private.purged_webhook (
    only_row boolean primary key default true check (only_row),
    last_received_at timestamptz not null
);
comment on table sync_private.purged_webhook is
    'One row: when the latest webhook delivery the purge deleted from sync.inbox was received (sync.purge_applied keeps it), so sync.health still knows when the CMS last spoke once its deliveries are purged.';
comment on column sync_private.purged_webhook.only_row is 'Always true: the table holds one row at most.';
comment on column sync_private.purged_webhook.last_received_at is 'The receipt time of the latest webhook delivery purged so far.';
