-- The rules name.mixed_script and name.leading_mark (and their description twins); sync.rule's column comments say what is true now
-- depends: 0042-stacked-marks

-- "Rоse" with a Cyrillic о (U+043E), or "Ваnаna", Cyrillic and Latin
-- letters in one word, passed every rule, and name.lookalike folds with
-- NFKC, which leaves Cyrillic and Greek letters as they are: a spoof of an
-- existing name passed as another name (review). A word (a run of letters
-- and marks) that mixes Latin letters with Cyrillic or Greek ones, which
-- Unicode's "highly restrictive" identifiers refuse (UTS #39, 5.2), is now
-- name.mixed_script, an error, and description.mixed_script, a warning
-- (sync_private.mixed_script, db/10-rules.sql; its classes are generated
-- by devtools/script_class.py). Each word is judged alone: "Rose Роза",
-- "Eau de Parfum Ω", Russian and Greek names pass.
-- A name that starts with a combining mark ("\u0301Rose") passed too: the
-- mark is drawn on whatever the application shows before the name. It is
-- now name.leading_mark, an error, and description.leading_mark, a warning.
-- Only rows are inserted and comments set: no table is altered.
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.mixed_script', 'name', 'both', 'error', null, 'error', null, '{severity}', null, null,
        'name holds a word (a run of letters and marks) that mixes Latin letters with Cyrillic or Greek ones: "Rоse" with a Cyrillic о, "Ваnаna". It looks like a word of one script and differs from it, so it passes for another fragrance''s name, and NFKC folds no Cyrillic or Greek letter to Latin (no name.lookalike). Unicode''s highly restrictive identifiers refuse such words (UTS #39). Each word is judged alone: Russian and Greek names, "Rose Роза", "Eau de Parfum Ω", "Nº5", Vietnamese, Latin beside Chinese, Japanese or Korean pass.'),
       ('description.mixed_script', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description holds a word that mixes Latin letters with Cyrillic or Greek ones, as name.mixed_script says. A warning: a Greek letter in a Latin word has its uses in a text ("μg" written with a Greek mu), and the CMS sends the description whole with every edit: an error would refuse the whole edit, its other fields with it.'),
       ('name.leading_mark', 'name', 'both', 'error', null, 'error', null, '{severity}', null, null,
        'name starts with a combining mark (nonspacing or enclosing, as name.stacked_marks counts them): "\u0301Rose" puts its accent on whatever the application shows before the name. A name of nothing but marks is name.blank.'),
       ('description.leading_mark', 'description', 'both', 'warning', null, 'warning', null, '{severity}', null, null,
        'description starts with a combining mark, as name.leading_mark says. A warning: the CMS sends the description whole with every edit, and an error would refuse the whole edit, its other fields with it.');

-- The rules with them are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0043',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.mixed_script');

-- Column comments that had fallen behind the rules (0021's): a parameter is
-- also the most combining marks in a row (0042's stacked_marks); field.unknown
-- has no field, as the body's rules; and a description runs to a few
-- sentences, what the rule refuses and why.
comment on column sync.rule.parameter is
    'The rule''s number where it has one: a length limit, the largest cost, the most decimal places, the most combining marks in a row (<field>.stacked_marks); null for a rule without one.';
comment on column sync.rule.field is
    'The field it is about; null for a rule of the whole body and for field.unknown, whose reasons name the unknown key instead.';
comment on column sync.rule.description is
    'What the rule refuses and why, in a few sentences for a DBA.';
