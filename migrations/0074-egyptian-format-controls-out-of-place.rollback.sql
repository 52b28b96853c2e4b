-- name.invisible_character refuses an Egyptian hieroglyph format control that no hieroglyph stands next to
-- depends: 0073-every-index-says-what-it-serves

-- The description of migration 0047 again (the code that judges is the
-- code load's, db/10-rules.sql, as the release rolled back to has it).
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule disable trigger _100_check_rule_change;
    end if;
end
$$;
update sync.rule
set description = 'name holds an invisible character (zero-width space, soft hyphen, byte order mark, direction mark, Hangul filler, tag...), a symbol drawn as nothing (the braille blank U+2800, the musical null notehead U+1D159) or a private-use character (U+E000-F8FF, planes 15 and 16), which no standard font draws: a reader sees nothing, a box or a vendor''s logo. Names that look alike would differ. ZWNJ and ZWJ between two visible characters other than Latin, Cyrillic or Greek letters, the Mongolian vowel separator between two Mongolian letters, the braille blank between two braille cells, a variation selector right after a visible character other than a Latin, Cyrillic or Greek letter, and an emoji flag''s tags pass: Persian, Indic, Mongolian, braille and emoji names do.'
where code = 'name.invisible_character';
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
