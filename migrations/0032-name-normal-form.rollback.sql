-- The rule name.not_normalized: a name not in Unicode normal form C
-- depends: 0031-name-line-breaks

-- Its findings go with it: they reference the rule.
delete from sync.finding where rule = 'name.not_normalized';
delete from sync.rule where code = 'name.not_normalized';
