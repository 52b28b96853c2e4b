-- name.lookalike folds Cyrillic and Greek letters that look Latin (Unicode's confusables): the folded-name index anew
-- depends: 0044-settings-and-job-comments

-- The index of migration 0036: names folded by NFKC and lower case only.
-- Open name.lookalike findings of names that folded alike only by their
-- Cyrillic or Greek letters stay open until the next catalog check closes
-- them (select * from sync.run_job('check_catalog');).
drop index public.sync_fragrances_name_key_idx;
create index sync_fragrances_name_key_idx on public.fragrances (
    lower(case when octet_length(name::text) = char_length(name::text) then name::text
               else normalize(name::text, nfkc) end),
    name);
comment on index public.sync_fragrances_name_key_idx is
    'Fragrance sync: names folded (NFKC, lower case), then as written, for name.lookalike (db/45-findings.sql). Changes no row; the rollback of migration 0036 drops it.';

-- The descriptions as migrations 0036 and 0043 wrote them.
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
    when 'name.lookalike' then
        'name differs from another fragrance''s only in case, width or another compatibility form (the same under Unicode NFKC and lower case, e.g. "CHANEL", "Chanel" and full-width "ＣＨＡＮＥＬ"): a reader takes them for one name. List a group with: select fragrance_id, name from public.fragrances where lower(normalize(name, nfkc)) = lower(normalize(''Chanel'', nfkc));'
    else
        'name holds a word (a run of letters and marks) that mixes Latin letters with Cyrillic or Greek ones: "Rоse" with a Cyrillic о, "Ваnаna". It looks like a word of one script and differs from it, so it passes for another fragrance''s name, and NFKC folds no Cyrillic or Greek letter to Latin (no name.lookalike). Unicode''s highly restrictive identifiers refuse such words (UTS #39). Each word is judged alone: Russian and Greek names, "Rose Роза", "Eau de Parfum Ω", "Nº5", Vietnamese, Latin beside Chinese, Japanese or Korean pass.'
    end
where code in ('name.lookalike', 'name.mixed_script');
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
