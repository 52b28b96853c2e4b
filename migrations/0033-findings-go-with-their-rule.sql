-- A finding goes with its rule: deleting a rule deletes its findings
-- depends: 0032-name-normal-form

-- Only migrations add and delete rules (a DBA may change a severity or a
-- parameter, nothing else). The landed rollback of 0029 deletes its two
-- rules but not their findings, so `yoyo rollback --all` stopped there with
-- a foreign key violation once one of them was open. A finding of a rule
-- that is gone means nothing, and the catalog check finds again what a rule
-- brought back would break. Adding the key scans sync.finding once.
alter table sync.finding
    drop constraint finding_rule_fkey,
    add constraint finding_rule_fkey foreign key (rule) references sync.rule (code) on delete cascade;
