-- A purge age counts back in every part: '-1 mon 31 days' passed the check and purged today's deliveries
-- depends: 0021-rules-and-findings

alter table sync.settings drop constraint settings_purge_after_check;
alter table sync.settings add constraint settings_purge_after_check check (purge_after >= interval '1 day');
