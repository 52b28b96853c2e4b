-- The rules name.replacement_character and description.replacement_character: a character lost before the CMS
-- depends: 0049-settings-tuned-by-column

-- "Ros\uFFFD Noir" passed every rule: U+FFFD is the character a decoder
-- writes where it could not read the bytes (text saved in one encoding and
-- read in another on its way into the CMS), U+FFFC the placeholder an editor
-- leaves where an image or another object was pasted. Either is drawn (a
-- diamond with a question mark, a box), so no other rule saw it, and what
-- stood there cannot be read back from the row. A name is an error (a
-- reader cannot tell which fragrance is meant; the CMS sends a name only
-- when it changes, so a refused edit refuses little else); a description
-- a warning, as description.c1_control (the CMS sends it whole with every
-- edit). Only rows are inserted: no table is altered. Rows already at rest
-- open their findings at the next catalog check (nightly, or select * from
-- sync.run_job('check_catalog');).
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.replacement_character', 'name', 'both', 'error', null, 'error', null, '{severity}', null, null,
        'name holds U+FFFD, the replacement character a decoder writes for bytes it could not read (text saved in one encoding and read in another), or U+FFFC, the placeholder an editor leaves for a pasted image or object: a character was lost before the CMS, and the application shows a diamond or a box where it stood. An error: a reader cannot tell which fragrance is meant.'),
       ('description.replacement_character', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description holds U+FFFD or U+FFFC, as name.replacement_character says. A warning: the CMS sends the description whole with every edit, and an error would refuse the whole edit, its other fields with it.');

-- The rules with them are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0050',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.replacement_character');
