-- The rule description.c1_control: a C1 control in a description is a warning, no longer a refused edit
-- depends: 0038-purge-ages-within-the-calendar

-- Its findings go with it (0033). The catalog check finds the C1 controls
-- again as description.control_character under the code of the release
-- rolled back to.
delete from sync.rule where code = 'description.c1_control';
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
set description = 'description holds a control character other than tab, line feed and carriage return (the line and paragraph separators U+2028 and U+2029 are line breaks, not controls: they pass), or a noncharacter (U+FDD0-FDEF, U+FFFE and U+FFFF of every plane).'
where code = 'description.control_character';
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
