-- Remove the merge: the DBA functions, the receipt trigger, the merge and the per-field clock
drop function sync.discard(bigint, text);
drop function sync.retry_all(text, integer);
drop function sync.retry(bigint);
drop function sync.apply_pending(integer);
drop function sync._process_claimed(bigint[]);
drop trigger _200_process_on_receipt on sync.inbox;
drop function sync._process_on_receipt();
drop function sync._apply(bigint, sync.prepared);
drop function sync._merge(bigint, jsonb);
drop type sync.batch_result;
drop type sync.outcome;
drop table sync.field_version;
