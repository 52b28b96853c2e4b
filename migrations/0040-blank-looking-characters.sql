-- name.invisible_character refuses symbols drawn as nothing, private use, and selectors and joiners by ASCII letters: its description says so
-- depends: 0039-description-c1-controls

-- "Rose" followed by the braille blank U+2800, the musical null notehead
-- U+1D159 or a private-use character (U+E000-F8FF, planes 15 and 16)
-- passed every rule, and so did "Rose" + U+FE0F, "Ro" U+180E "se" and
-- "Ro" ZWJ "se": each looks like "Rose" and differs from it (hostile
-- review). sync_private.first_invisible (db/10-rules.sql) now counts them:
-- the braille blank but between two braille cells, the Mongolian vowel
-- separator but between two Mongolian letters, a variation selector after
-- an ASCII letter, ZWNJ and ZWJ next to one, the null notehead and private
-- use wherever they stand.
-- The rules' descriptions say so. They are not the rules' severity or
-- parameter, so no new version; sync.rule's trigger refuses any change of
-- a description (FS070), which is for DBAs: the owner's migration sets it
-- aside for this statement, as 0031 did.
-- (The trigger exists only on an upgrade: a fresh install loads db/ after the migrations.)
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule disable trigger _100_check_rule_change;
    end if;
end
$$;
update sync.rule
set description = case code
    when 'name.invisible_character' then
        'name holds an invisible character (zero-width space, soft hyphen, byte order mark, direction mark, Hangul filler, tag...), a symbol drawn as nothing (the braille blank U+2800, the musical null notehead U+1D159) or a private-use character (U+E000-F8FF, planes 15 and 16), which no standard font draws: a reader sees nothing, a box or a vendor''s logo. Names that look alike would differ. ZWNJ and ZWJ between two visible characters other than ASCII letters, the Mongolian vowel separator between two Mongolian letters, the braille blank between two braille cells, a variation selector right after a visible character other than an ASCII letter, and an emoji flag''s tags pass: Persian, Indic, Mongolian, braille and emoji names do.'
    else
        'description holds an invisible character, a symbol drawn as nothing or a private-use character, as name.invisible_character says. A warning: descriptions are not told apart as names are, text pasted from an editor carries them (soft hyphens), and an error would refuse the whole edit, its other fields with it.'
    end
where code in ('name.invisible_character', 'description.invisible_character');
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
