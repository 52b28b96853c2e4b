-- The rule body.number_out_of_range: a JSON number beyond what PostgreSQL's numeric holds
-- depends: 0025-name-turns 0026-purge-age-in-one-direction 0027-logins-hold-their-database

-- Valid JSON, yet jsonb cannot hold it: it was reported as body.not_json,
-- which it is not. sync_private.parse_body (db/10-rules.sql) gives the code.
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('body.number_out_of_range', null, 'delta', 'error', null, 'error', null, '{}', null, null,
        'The JSON holds a number beyond what the database can hold (up to 131,072 digits before the point and 16,383 after).');

-- The rules with it are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0028',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'body.number_out_of_range');
