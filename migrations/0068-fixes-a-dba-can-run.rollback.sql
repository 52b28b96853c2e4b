-- The normal-form fixes the rules offer never overflow their column; body.not_json says what was wrong and what to send
-- depends: 0067-earlier-discards-kept

-- The descriptions of 0021, 0032 and 0051 again (sync.rule's trigger set
-- aside, as in the forward migration).
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
    when 'name.not_normalized' then
        'name is not in Unicode normal form C (NFC), e.g. an accent written as a combining mark after its letter: it looks like its composed form but compares, sorts and is searched as another name, and is no name.duplicate of it. Fix a row with: update public.fragrances set name = normalize(name) where fragrance_id = ...;'
    when 'description.not_normalized' then
        'description is not in Unicode normal form C (NFC), e.g. an accent written as a combining mark after its letter: it looks like its composed form but compares and is searched as another text, so a search for the composed words misses it. Fix a row with: update public.fragrances set description = normalize(description) where fragrance_id = ...;'
    else
        'The body is not JSON (NaN and Infinity are not JSON).'
    end
where code in ('name.not_normalized', 'description.not_normalized', 'body.not_json');
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
