-- name.invisible_character refuses symbols drawn as nothing, private use, and selectors and joiners by ASCII letters: its description says so
-- depends: 0039-description-c1-controls

-- The descriptions of the release rolled back to (migration 0029's).
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
        'name holds an invisible character (zero-width space, soft hyphen, byte order mark, direction mark, Hangul filler, tag...): names that look alike would differ. ZWNJ and ZWJ between two visible characters, a variation selector right after one and an emoji flag''s tags pass: Persian, Indic and emoji names do.'
    else
        'description holds an invisible character, as name.invisible_character says. A warning: descriptions are not told apart as names are, text pasted from an editor carries them (soft hyphens), and an error would refuse the whole edit, its other fields with it.'
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
