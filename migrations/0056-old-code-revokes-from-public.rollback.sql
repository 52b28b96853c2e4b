-- The code 0022 keeps for its rollback ends by revoking EXECUTE from PUBLIC, as post-apply.sql did at 0018
-- depends: 0055-placeholder-texts

-- The statement stays. 0022's rollback, which runs after this one in
-- `yoyo rollback --all`, replays the record, and needs it there to leave
-- nothing of 0018 executable by PUBLIC; without 0022's rollback the record
-- is never read. (0033's rollback keeps its change for the same reason.)
