-- The rule description.c1_control: a C1 control in a description is a warning, no longer a refused edit
-- depends: 0038-purge-ages-within-the-calendar

-- The catalog the sync adopted holds descriptions that quote a word with
-- U+0093 and U+0094: Windows-1252 curly quotes read as Latin-1. They were
-- description.control_character, an error, and the CMS sends a fragrance's
-- description whole with every edit, so every edit of such a fragrance was
-- refused, its forbidden flip with it, and the health warned from the
-- first catalog check on (hostile review, on the real catalog). A C1
-- control (U+0080-009F) in a description is now description.c1_control, a
-- warning whose sentence names the Windows-1252 character it stands for
-- (sync_private.first_c1_control, db/10-rules.sql); C0 controls, DEL and
-- noncharacters stay description.control_character. A name's C1 controls
-- stay name.control_character: names are told apart, descriptions are not.
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('description.c1_control', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description holds a C1 control character (U+0080-009F), nearly always text from Windows read as Latin-1 (U+0093 and U+0094 are curly quotes in Windows-1252): the application shows the control, not the character. A warning: the CMS sends the description whole with every edit, and an error would refuse every edit of the fragrance, its other fields with it.');

-- description.control_character no longer covers C1 controls: its
-- description says so. sync.rule's trigger refuses a change of a
-- description (FS070), which is for DBAs: the owner's migration sets it
-- aside for this statement, as 0031 did.
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
set description = 'description holds a control character (C0 but tab, line feed and carriage return, or DEL; the line and paragraph separators U+2028 and U+2029 are line breaks, not controls: they pass; C1 controls are description.c1_control), or a noncharacter (U+FDD0-FDEF, U+FFFE and U+FFFF of every plane).'
where code = 'description.control_character';
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;

-- The rules with description.c1_control are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0039',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'description.c1_control');
