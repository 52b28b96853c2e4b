-- The rules name.stacked_marks and description.stacked_marks: more than 5 combining marks in a row on one character
-- depends: 0041-job-runs-know-their-backend

-- "Zalgo" text passed every rule: "o" followed by dozens of combining marks
-- (U+0300-036F...), or "Rose" followed by ten enclosing circles U+20DD, is
-- drawn over the lines above and below it in the application (review). A
-- name of nothing but marks was already name.blank. A run of more combining
-- marks than the parameter (nonspacing and enclosing marks, but selectors:
-- sync_private.mark_class, db/10-rules.sql) is now name.stacked_marks, an
-- error, and description.stacked_marks, a warning. The default, 5, is one
-- more than Unicode's security mechanisms allow in an identifier (UTS #39,
-- 5.4): the fullest letter of pointed Biblical Hebrew holds 5; Vietnamese
-- in NFD and pinyin hold 2, Thai and Devanagari 2 or 3, Tibetan stacks 3.
-- The most is 30, the longest run of marks Unicode's Stream-Safe Text
-- Format allows (UAX #15). Only rows are inserted: no table is altered.
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.stacked_marks', 'name', 'both', 'error', 5, 'error', 5, '{severity,parameter}', 1, 30,
        'name holds more combining marks in a row than the limit (by default 5), all drawn on one character: "Zalgo" text, "o" under dozens of accents or "Rose" with ten enclosing circles, grows over the lines above and below it in the application. Nonspacing and enclosing marks count, variation selectors do not. An error: a name is shown in lists and headings, among other names. Legitimate text stacks fewer: Vietnamese in NFD and pinyin 2, Thai and Devanagari 2 or 3, Tibetan 3, pointed Biblical Hebrew up to 5 on one letter; raise the limit for more (a Sanskrit stack in Tibetan script).'),
       ('description.stacked_marks', 'description', 'both', 'warning', 5, 'warning', 5, '{severity,parameter}', 1, 30,
        'description holds more combining marks in a row than the limit (by default 5), as name.stacked_marks says. A warning: the CMS sends the description whole with every edit, and an error would refuse the whole edit, its other fields with it.');

-- The rules with the stacked_marks rules are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0042',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.stacked_marks');
