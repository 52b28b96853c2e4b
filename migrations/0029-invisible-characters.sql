-- The rules name.invisible_character and description.invisible_character: zero-width and other invisible format characters
-- depends: 0028-number-out-of-range

-- "Rose" followed by a zero-width space passed every rule and was no
-- duplicate of "Rose": name.blank fires only when the whole text is
-- invisible. sync_private.first_invisible (db/10-rules.sql) says which
-- characters count, and why joiners, selectors and tags count only out of place.
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.invisible_character', 'name', 'both', 'error', null, 'error', null, '{severity}', null, null,
        'name holds an invisible character (zero-width space, soft hyphen, byte order mark, direction mark, Hangul filler, tag...): names that look alike would differ. ZWNJ and ZWJ between two visible characters, a variation selector right after one and an emoji flag''s tags pass: Persian, Indic and emoji names do.'),
       ('description.invisible_character', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description holds an invisible character, as name.invisible_character says. A warning: descriptions are not told apart as names are, text pasted from an editor carries them (soft hyphens), and an error would refuse the whole edit, its other fields with it.');

-- The rules with them are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0029',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.invisible_character');
