-- The rules name.replacement_character and description.replacement_character: a character lost before the CMS
-- depends: 0049-settings-tuned-by-column

-- Their findings go with them (0033). The release rolled back to has no rule
-- for replacement characters: such names pass again.
delete from sync.rule where code in ('name.replacement_character', 'description.replacement_character');
