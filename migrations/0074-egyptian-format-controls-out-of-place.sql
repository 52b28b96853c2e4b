-- name.invisible_character refuses an Egyptian hieroglyph format control that no hieroglyph stands next to
-- depends: 0073-every-index-says-what-it-serves

-- "Rose" + U+13430 looked like "Rose" and passed: the Egyptian hieroglyph
-- format controls (U+13430-1343F) are no default ignorable characters, so
-- the invisible class left them out, yet they arrange the hieroglyphs next
-- to them in a quadrat and show nothing next to anything else (review).
-- sync_private.invisible_pattern (db/10-rules.sql) now refuses one with no
-- hieroglyph next to it, through a run of other such controls.
--
-- No finding changes here: a name or description that holds one out of
-- place opens its finding at the next catalog check (nightly, or
-- select * from sync.run_job('check_catalog');) or when it is written.
-- The rule's description says what is true now (the trigger that refuses
-- a change of it, FS070, is for DBAs; see migration 0045).
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule disable trigger _100_check_rule_change;
    end if;
end
$$;
update sync.rule
set description = 'name holds an invisible character (zero-width space, soft hyphen, byte order mark, direction mark, Hangul filler, tag, Egyptian hieroglyph format control...), a symbol drawn as nothing (the braille blank U+2800, the musical null notehead U+1D159) or a private-use character (U+E000-F8FF, planes 15 and 16), which no standard font draws: a reader sees nothing, a box or a vendor''s logo. Names that look alike would differ. ZWNJ and ZWJ between two visible characters other than Latin, Cyrillic or Greek letters, the Mongolian vowel separator between two Mongolian letters, the braille blank between two braille cells, an Egyptian hieroglyph format control (U+13430-1343F) next to a hieroglyph (through other such controls), a variation selector right after a visible character other than a Latin, Cyrillic or Greek letter, and an emoji flag''s tags pass: Persian, Indic, Mongolian, braille, hieroglyphic and emoji names do.'
where code = 'name.invisible_character';
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
