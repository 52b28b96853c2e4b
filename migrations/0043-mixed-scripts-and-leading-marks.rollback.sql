-- The rules name.mixed_script and name.leading_mark (and their description twins); sync.rule's column comments say what is true now
-- depends: 0042-stacked-marks

-- Their findings go with them (0033). The release rolled back to has no rule
-- for mixed scripts or leading marks: such names pass again.
delete from sync.rule
where code in ('name.mixed_script', 'description.mixed_script', 'name.leading_mark', 'description.leading_mark');

-- The column comments of the release rolled back to (0021's).
comment on column sync.rule.parameter is 'The rule''s number where it has one: a length limit, the largest cost, the most decimal places.';
comment on column sync.rule.field is 'The field it is about (null for the whole body).';
comment on column sync.rule.description is 'What the rule checks, in a sentence.';
