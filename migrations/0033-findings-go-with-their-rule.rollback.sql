-- A finding goes with its rule: deleting a rule deletes its findings
-- depends: 0032-name-normal-form

-- The cascade stays. The rollbacks that run after this one in
-- `yoyo rollback --all` (0029's) delete rules without their findings and
-- need it; 0021's drops the table and the key with it. A database rolled
-- back to 0032 differs from one migrated to 0032 only in this key's delete
-- action, which no code of 0032 relies on.
