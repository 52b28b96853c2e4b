-- Remove the purge function and the received_at index (purged rows stay purged)
revoke all on function sync.purge_applied(interval, boolean, integer) from sync_dba;
drop function sync.purge_applied(interval, boolean, integer);
drop index sync.inbox_received_at_idx;
