-- <field>.mixed_script also refuses a word mixing Cyrillic with Greek letters: the rules' descriptions say so
-- depends: 0045-lookalikes-across-scripts

-- "Рοза", a Cyrillic word with a Greek ο, passed name.mixed_script, which
-- looked only for Latin beside Cyrillic or Greek; UTS #39's highly
-- restrictive level refuses it alike (tenth review). The rule itself is
-- sync_private.mixed_script (db/10-rules.sql, loaded after this); here its
-- two descriptions, which sync.rule's trigger keeps from anyone but the
-- owner's migration (FS070), as 0045 did. Only rows change: no table is
-- altered. Rows already at rest open their findings at the next
-- sync.check_catalog (nightly, or select * from sync.run_job('check_catalog')).
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
        'name holds a word (a run of letters and marks) that mixes letters of two of Latin, Cyrillic and Greek: "Rоse" with a Cyrillic о, "Ваnаna", "Рοза" with a Greek ο. It looks like a word of one script and differs from it, so it passes for another fragrance''s name. Unicode''s highly restrictive identifiers refuse such words (UTS #39). Each word is judged alone: Russian and Greek names, "Rose Роза", "Eau de Parfum Ω", "Nº5", Vietnamese, Latin beside Chinese, Japanese or Korean pass; a name written wholly in Cyrillic or Greek letters that look Latin ("СОСО") passes too, and is name.lookalike of the Latin name it looks like.'
    else
        'description holds a word that mixes letters of two of Latin, Cyrillic and Greek, as name.mixed_script says. A warning: a Greek letter in a Latin word has its uses in a text ("μg" written with a Greek mu), and the CMS sends the description whole with every edit: an error would refuse the whole edit, its other fields with it.'
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
