-- Health judges a job that never ran, and a silence that outlived the purge
-- depends: 0057-hand-change-positions

drop table sync_private.purged_webhook;
alter table sync.job drop column enabled_at;
