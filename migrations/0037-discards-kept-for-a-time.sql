-- Discarded deliveries are kept for a time, counted from when they were discarded: record that moment
-- depends: 0036-name-lookalikes

-- A discarded delivery (a rejected one a DBA wrote off with sync.discard())
-- stayed in the inbox for good, body and all: nothing purged it, and nothing
-- recorded when it was written off, so no age could be judged but its
-- receipt, and a reject of last year written off today would have gone at
-- the next purge with the evidence of a decision a day old. The purge now
-- deletes those discarded longer ago than sync.settings.discarded_purge_after
-- (a year unless a DBA changes it), judged by discarded_at.
alter table sync.inbox add column discarded_at timestamptz;
comment on column sync.inbox.discarded_at is
    'When a DBA discarded the delivery with sync.discard() (for one discarded before migration 0037: when that migration ran); null unless discarded. The scheduled purge deletes it sync.settings.discarded_purge_after after this.';

-- Deliveries discarded before this migration: when is not known, so their
-- time starts now (kept a full discarded_purge_after from the upgrade).
update sync.inbox set discarded_at = now() where status = 'discarded';

-- The purge finds them by this moment without reading the inbox; only
-- discarded rows enter the index, a handful a year. The update and the
-- index each read the inbox once while the ALTER above holds it: 1.37 s
-- for 3,000,000 deliveries (measured, 2 slow cores), which the hook's
-- stores wait, within its DB_TIMEOUT (5 s).
create index inbox_discarded_at_idx on sync.inbox (discarded_at) where status = 'discarded';
comment on index sync.inbox_discarded_at_idx is
    'Discarded deliveries by the moment they were discarded: the scheduled purge finds those past sync.settings.discarded_purge_after.';

-- Each part (months, days, time) zero or more, as purge_after (migration 0026).
alter table sync.settings add column discarded_purge_after interval not null default '1 year'
    constraint settings_discarded_purge_after_check check (
        discarded_purge_after >= interval '1 day'
        and date_trunc('month', discarded_purge_after) >= interval '0'
        and date_trunc('day', discarded_purge_after) - date_trunc('month', discarded_purge_after) >= interval '0'
        and discarded_purge_after - date_trunc('day', discarded_purge_after) >= interval '0');
comment on column sync.settings.discarded_purge_after is
    'The purge_inbox job deletes discarded deliveries this long after they were discarded (sync.inbox.discarded_at; at least a day). Rejected ones stay until a person retries or discards them.';

update sync.job
set description = 'Deletes applied and ignored deliveries and findings closed more than sync.settings.purge_after ago, '
    || 'discarded deliveries discarded more than sync.settings.discarded_purge_after ago, and runs of the jobs older than '
    || 'purge_after but each job''s last and last successful run, in transactions of at most 10,000 rows of each (CALL sync.purge_inbox()).'
where name = 'purge_inbox';
