-- name.invisible_character: selectors and joiners by any Latin, Cyrillic or Greek letter, not only ASCII ones: its description says so
-- depends: 0046-mixed-scripts-cyrillic-with-greek

-- "Rosé" + U+FE0F, or "Crè" ZWJ "éme", showed as the text without it and
-- passed: only ASCII letters counted as no base of a variation sequence
-- and nothing a joiner joins (tenth review). sync_private.invisible_pattern
-- (db/10-rules.sql, loaded after this) counts every Latin, Cyrillic and
-- Greek letter now; here the rule's description, which sync.rule's trigger
-- keeps from anyone but the owner's migration (FS070), as 0045 did. Only a
-- row changes: no table is altered. Rows already at rest open their
-- findings at the next sync.check_catalog (nightly, or
-- select * from sync.run_job('check_catalog')).
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
