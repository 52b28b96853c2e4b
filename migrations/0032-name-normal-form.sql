-- The rule name.not_normalized: a name not in Unicode normal form C
-- depends: 0031-name-line-breaks

-- "Rose" with a combining acute shows as "Rosé" but is another text: it is
-- no name.duplicate of the composed name, and a search or a join on the
-- composed one misses it. sync_private.is_unnormalized (db/10-rules.sql)
-- is the check. A warning: the name is readable and whole, and an error
-- would refuse the whole edit, its other fields with it.
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.not_normalized', 'name', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'name is not in Unicode normal form C (NFC), e.g. an accent written as a combining mark after its letter: it looks like its composed form but compares, sorts and is searched as another name, and is no name.duplicate of it. Fix a row with: update public.fragrances set name = normalize(name) where fragrance_id = ...;');

-- The rules with it are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0032',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.not_normalized');
