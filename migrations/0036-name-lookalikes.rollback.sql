-- The rule name.lookalike (names that differ only in case or width) with an index on the folded name; noncharacters are control characters
-- depends: 0035-open-findings-by-rule

-- Its findings go with it: they reference the rule.
delete from sync.finding where rule = 'name.lookalike';
delete from sync.rule where code = 'name.lookalike';
drop index public.sync_fragrances_name_key_idx;
comment on table sync_private.name_turn is
    'One row per turn of names (1,024): a writer of a name locks the row hashtext(name) & 1023 FOR UPDATE until it commits, so two writers of one name judge name.duplicate in turn (sync_private.lock_names); a writer of many names locks their rows, at most all 1,024, never the table. The hook''s merger passes over a turn held longer than a merge holds one (sync_private.take_turns). Granted to nobody.';
comment on column sync_private.name_turn.turn is
    'hashtext(name) & 1023: names that share a turn wait for each other, which is safe, only slower.';

-- The control_character rules' descriptions as 0031 wrote them.
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule disable trigger _100_check_rule_change;
    end if;
end
$$;
update sync.rule
set description = case code
    when 'name.control_character' then
        'name holds a control character (C0, DEL or C1), e.g. a bell or an ANSI colour, or a line break of any kind (line feed, carriage return, next line, line and paragraph separators U+2028 and U+2029).'
    else
        'description holds a control character other than tab, line feed and carriage return (the line and paragraph separators U+2028 and U+2029 are line breaks, not controls: they pass).'
    end
where code in ('name.control_character', 'description.control_character');
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
