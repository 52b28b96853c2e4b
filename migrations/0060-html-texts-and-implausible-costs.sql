-- The rules name.html, description.html ("Rose &amp; Oud", "<p>Petals</p>") and cost.implausible (above 1,000)
-- depends: 0059-pg-cron-jobids

-- A name "Rose &amp; Oud" or "<b>Rose</b>", a description "Petals&#39;
-- dust", passed every rule: valid text. It is markup a rich-text editor or
-- an export that escapes for a web page left in a plain text; the
-- application shows it as characters, and a data scientist's search for
-- "Rose & Oud" misses it (review). sync_private.first_html
-- (db/10-rules.sql) finds a tag or a character reference. Warnings both:
-- the pattern is a guess from the text alone ("AT&T;" reads as a
-- reference), and an error would refuse the whole edit, its other fields
-- (forbidden) with it; a DBA can make either an error.
--
-- A cost of 7500 or 1e15 passed every rule below cost.too_large (2^53 - 1,
-- what a JSON reader holds exactly): the catalog's costs are 0 to 100 and
-- the CMS adds 5 to 10 an edit, so such a cost is one in cents or with a
-- digit too many, and it drags every mean and every price band a data
-- scientist computes. cost.implausible is a warning above a limit a DBA
-- tunes (1,000 by default: ten times the catalog's dearest, which the
-- CMS's own increments take ten months or more to reach): a price may really rise, and
-- an error would refuse the whole edit.
--
-- Only rows are inserted: no table is altered. Rows already at rest open
-- their findings at the next catalog check (nightly, or
-- select * from sync.run_job('check_catalog');).
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.html', 'name', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'name holds an HTML tag ("<b>", "</p>", "<!--") or character reference ("&amp;", "&#39;", "&#x27;", "&eacute;"): markup a rich-text editor or an export that escapes for a web page left in a plain text. The application shows "Rose &amp; Oud" as it is, and a search for "Rose & Oud" misses it; were it to write the name into a page unescaped, "<img src=x onerror=...>" would run. "<3", "a < b", "Rose & Oud" and "R&D" pass. A warning: the pattern is a guess from the text alone.'),
       ('description.html', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description holds an HTML tag or character reference, as name.html says ("<p>Petals</p>", "Rose&#39;s"). A warning: the CMS sends the description whole with every edit, and an error would refuse the whole edit, its other fields with it.'),
       ('cost.implausible', 'cost', 'both', 'warning', 1000, 'warning', 1000, '{severity,parameter}', 0, 9007199254740991,
        'cost is above the limit of a plausible cost (by default 1,000: ten times the catalog''s dearest; the CMS adds 5 to 10 an edit): a cost in cents, or with a digit too many (7500 for 75), which drags every mean a reader computes. A warning: a price may really rise; raise the limit as the catalog grows dearer.');

-- cost.implausible's parameter is a new kind: the most a plausible cost is.
comment on column sync.rule.parameter is
    'The rule''s number where it has one: a length limit, the largest cost, the most a plausible cost is (cost.implausible), the most decimal places, the most combining marks in a row (<field>.stacked_marks); null for a rule without one.';

-- The rules with them are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0060',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'cost.implausible');
