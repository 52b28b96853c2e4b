-- The rule description.not_normalized: a description not in Unicode normal form C
-- depends: 0050-replacement-characters

-- Its findings go with it (0033). The release rolled back to has no rule for
-- a description's normal form: such descriptions pass again.
delete from sync.rule where code = 'description.not_normalized';
