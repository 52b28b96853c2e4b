-- Remove the batched entry point
revoke execute on function sync.receive_many(bytea[], text[], inet[], text[]) from sync_hook;
drop function sync.receive_many(bytea[], text[], inet[], text[]);
