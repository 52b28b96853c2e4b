-- The rules name.placeholder and description.placeholder: "undefined", "[object Object]", "TBD", "Lorem ipsum"
-- depends: 0054-double-encoded-texts

-- A name "undefined" or "[object Object]", a description "Lorem ipsum
-- dolor sit amet" passed every rule: valid text. They are what a form, a
-- script or a draft leaves where no value was given (JavaScript writes
-- "undefined", "null", "NaN" and "[object Object]" for a missing value or
-- an object turned into text; an API's documentation page sends "string"
-- when tried as it stands), and the application shows them as the
-- fragrance's (review). sync_private.placeholder (db/10-rules.sql) knows
-- the list. Both rules are warnings: a word of the list may be meant, and
-- a warning refuses nothing: it is told on the delivery and kept as a
-- finding at rest. A DBA can make either an error. Only rows are
-- inserted: no table is altered. Rows already at rest open their findings
-- at the next catalog check (nightly, or
-- select * from sync.run_job('check_catalog');).
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.placeholder', 'name', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'name is a placeholder left where no value was given: null, undefined, none, nil, NaN, n/a, TBD, TBA, TODO, FIXME, test, xxx, untitled, [object Object] or string, in any case and trimmed, or a text that starts with Lorem ipsum. JavaScript writes several of them for a missing value; the application shows them as the name. A warning: such a word may be meant.'),
       ('description.placeholder', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description is a placeholder left where no value was given, as name.placeholder says ("Lorem ipsum dolor sit amet...", "undefined"). A warning, as name''s.');

-- The rules with them are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0055',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.placeholder');
