-- Remove the keyed batch entry point
revoke execute on function sync.receive_many(bytea[], text[], inet[], text[], uuid[]) from sync_hook;
drop function sync.receive_many(bytea[], text[], inet[], text[], uuid[]);
comment on column sync.inbox.spool_key is
    'Key of a delivery the hook spooled to disk while the database was down; unique, so draining after a crash never stores it twice. Null for deliveries stored directly.';
