-- The rules name.mixed_script and description.mixed_script: a word that mixes Latin letters with Cyrillic or Greek ones
-- depends: 0042-stacked-marks

-- Their findings go with them (0033). The release rolled back to has no rule
-- for mixed scripts: such names pass again.
delete from sync.rule
where code in ('name.mixed_script', 'description.mixed_script');
