-- The rule name.lookalike: names that differ only in case or width, and an index on the folded name
-- depends: 0035-open-findings-by-rule

-- Its findings go with it: they reference the rule.
delete from sync.finding where rule = 'name.lookalike';
delete from sync.rule where code = 'name.lookalike';
drop index public.sync_fragrances_name_key_idx;
comment on table sync_private.name_turn is
    'One row per turn of names (1,024): a writer of a name locks the row hashtext(name) & 1023 FOR UPDATE until it commits, so two writers of one name judge name.duplicate in turn (sync_private.lock_names); a writer of many names locks their rows, at most all 1,024, never the table. The hook''s merger passes over a turn held longer than a merge holds one (sync_private.take_turns). Granted to nobody.';
comment on column sync_private.name_turn.turn is
    'hashtext(name) & 1023: names that share a turn wait for each other, which is safe, only slower.';
