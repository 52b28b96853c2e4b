-- The rules name.invisible_character and description.invisible_character: zero-width and other invisible format characters
-- depends: 0028-number-out-of-range

delete from sync.rule where code in ('name.invisible_character', 'description.invisible_character');
