-- The descriptions as migrations 0043 and 0045 wrote them.
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
    when 'name.mixed_script' then
        'name holds a word (a run of letters and marks) that mixes Latin letters with Cyrillic or Greek ones: "Rоse" with a Cyrillic о, "Ваnаna". It looks like a word of one script and differs from it, so it passes for another fragrance''s name. Unicode''s highly restrictive identifiers refuse such words (UTS #39). Each word is judged alone: Russian and Greek names, "Rose Роза", "Eau de Parfum Ω", "Nº5", Vietnamese, Latin beside Chinese, Japanese or Korean pass; a name written wholly in Cyrillic or Greek letters that look Latin ("СОСО") passes too, and is name.lookalike of the Latin name it looks like.'
    else
        'description holds a word that mixes Latin letters with Cyrillic or Greek ones, as name.mixed_script says. A warning: a Greek letter in a Latin word has its uses in a text ("μg" written with a Greek mu), and the CMS sends the description whole with every edit: an error would refuse the whole edit, its other fields with it.'
    end
where code in ('name.mixed_script', 'description.mixed_script');
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
