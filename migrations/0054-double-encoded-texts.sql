-- The rules name.double_encoded and description.double_encoded: a text encoded twice ("CafÃ©")
-- depends: 0053-lookalikes-by-their-spaces

-- "CafÃ©" passed every rule: it is "Café" whose UTF-8 bytes were read as
-- Windows-1252 and encoded again on their way into the CMS, so every
-- character is valid and drawn, and the application shows "CafÃ©"
-- (review). sync_private.first_double_encoding (db/10-rules.sql) finds a
-- character's UTF-8 bytes written as Windows-1252 characters, and the
-- message says which character was meant. Both rules are warnings: the
-- pattern is a guess from the text alone (an accented capital before a
-- symbol can be meant), and a warning refuses nothing: it is told on the
-- delivery and kept as a finding at rest. A DBA can make either an error.
-- Only rows are inserted: no table is altered. Rows already at rest open
-- their findings at the next catalog check (nightly, or
-- select * from sync.run_job('check_catalog');).
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.double_encoded', 'name', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'name holds a character''s UTF-8 bytes read as Windows-1252 (or Latin-1) characters: "CafÃ©" for "Café", "â€™" for ’, "ï»¿" for a byte order mark. The text was encoded twice on its way into the CMS; the application shows the mangled characters. A warning: the pattern is a guess from the text alone.'),
       ('description.double_encoded', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description holds a character''s UTF-8 bytes read as Windows-1252 characters, as name.double_encoded says. A warning, as name''s.');

-- The rules with them are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0054',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.double_encoded');
