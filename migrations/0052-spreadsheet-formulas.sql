-- The rules name.spreadsheet_formula and description.spreadsheet_formula: a text a spreadsheet reads as a formula
-- depends: 0051-description-normal-form

-- A name or description that starts with =, +, -, @, a tab or a carriage
-- return passed every rule: it is valid JSON and valid text. The smart
-- library's readers export the catalog to CSV and open it in a spreadsheet,
-- which reads such a cell as a formula ("CSV injection", OWASP):
-- "=HYPERLINK(...)" shows a link its author chose, "=cmd|' /C calc'!A0"
-- asks to run a program, "-Rose" shows #NAME? (hostile review).
-- sync_private.starts_with_formula (db/10-rules.sql) is the check. Both
-- rules are warnings: nothing the catalog holds starts so, a name such as
-- "+Plus" or "@Home" may be meant, and a warning refuses nothing: it is
-- told on the delivery and kept as a finding at rest. Only rows are
-- inserted: no table is altered. Rows already at rest open their findings
-- at the next catalog check (nightly, or
-- select * from sync.run_job('check_catalog');).
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.spreadsheet_formula', 'name', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'name starts with =, +, -, @, a tab or a carriage return: a spreadsheet that opens an export of the catalog (CSV) reads it as a formula ("CSV injection"): =HYPERLINK(...) shows a link its author chose, =cmd|... asks to run a program, -Rose shows #NAME?. A warning: a name such as +Plus may be meant.'),
       ('description.spreadsheet_formula', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description starts with =, +, -, @, a tab or a carriage return, as name.spreadsheet_formula says. A warning, as name''s: a description may start with a dash.');

-- The rules with them are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0052',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.spreadsheet_formula');
