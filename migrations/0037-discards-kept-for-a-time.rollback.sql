-- Discarded deliveries are kept for a time, counted from when they were discarded: record that moment
-- depends: 0036-name-lookalikes

update sync.job
set description = 'Deletes applied and ignored deliveries older than sync.settings.purge_after (sync.purge_applied()).'
where name = 'purge_inbox';
alter table sync.settings drop column discarded_purge_after;
drop index sync.inbox_discarded_at_idx;
alter table sync.inbox drop column discarded_at;
