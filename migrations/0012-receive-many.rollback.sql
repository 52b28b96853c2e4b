-- Remove the batched entry point and the delivery keys
revoke execute on function sync.receive_many(bytea[], text[], inet[], text[], uuid[]) from sync_hook;
drop function sync.receive_many(bytea[], text[], inet[], text[], uuid[]);
drop index sync.inbox_spool_key_idx;
alter table sync.inbox drop column spool_key;
