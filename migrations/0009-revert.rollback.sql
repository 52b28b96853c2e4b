-- Remove revert and fragrance_at (the revert deliveries stay in the inbox as what was received)
revoke execute on function sync.revert(bigint), sync.fragrance_at(integer, timestamptz) from sync_dba;
drop function sync.fragrance_at(integer, timestamptz);
drop function sync.revert(bigint);
drop type sync.revert_result;
