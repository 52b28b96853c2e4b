-- name.control_character refuses every line break in a name, U+2028 and U+2029 too: its description says so
-- depends: 0029-invisible-characters 0030-hand-changes-by-fragrance

-- (The trigger exists only on an upgrade: a fresh install loads db/ after the migrations.)
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
        'name holds a control character (C0, DEL or C1), e.g. a bell or an ANSI colour.'
    else
        'description holds a control character other than tab, line feed and carriage return.'
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
