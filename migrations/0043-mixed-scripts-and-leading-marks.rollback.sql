-- The rules name.mixed_script and name.leading_mark, and their description twins
-- depends: 0042-stacked-marks

-- Their findings go with them (0033). The release rolled back to has no rule
-- for mixed scripts or leading marks: such names pass again.
delete from sync.rule
where code in ('name.mixed_script', 'description.mixed_script', 'name.leading_mark', 'description.leading_mark');
