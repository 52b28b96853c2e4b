-- The rule description.not_normalized: a description not in Unicode normal form C
-- depends: 0050-replacement-characters

-- "Cre" + a combining grave + "me de rose" shows as "Crème de rose" but is
-- another text: a reader's search for "Crème" (a data scientist's
-- str.contains, an ILIKE, a full-text index) misses it. name.not_normalized
-- (0032) judged names only, and descriptions passed every rule, through
-- the hook and at rest (hostile review). sync_private.is_unnormalized
-- (db/10-rules.sql) is the check, ranked 9th as the name's. A warning: the
-- text is readable and whole, and the CMS sends a description whole with
-- every edit, so an error would refuse the edit, its other fields with it.
-- Only a row is inserted: no table is altered. Rows already at rest open
-- their findings at the next catalog check (nightly, or
-- select * from sync.run_job('check_catalog');).
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('description.not_normalized', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description is not in Unicode normal form C (NFC), e.g. an accent written as a combining mark after its letter: it looks like its composed form but compares and is searched as another text, so a search for the composed words misses it. Fix a row with: update public.fragrances set description = normalize(description) where fragrance_id = ...;');

-- The rules with it are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0051',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'description.not_normalized');
