-- name.control_character refuses every line break in a name, U+2028 and U+2029 too: its description says so
-- depends: 0029-invisible-characters 0030-hand-changes-by-fragrance

-- "Rose" U+2028 "Garden" passed every rule: the line and paragraph
-- separators are no controls, yet break a name's line as a line feed does,
-- which name.control_character refuses. sync_private.first_control
-- (db/10-rules.sql) now counts them in a name, not in a description, where
-- line breaks are allowed. The rules' descriptions say so. They are not the
-- rules' severity or parameter, so no new version; sync.rule's trigger
-- refuses any change of a description (FS070), which is for DBAs: the
-- owner's migration sets it aside for this statement.
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
