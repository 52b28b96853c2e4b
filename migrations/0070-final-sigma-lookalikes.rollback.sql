-- name.lookalike folds Greek final sigma: "ΡΟΔΟΣ" is a lookalike of "ροδος"
-- depends: 0069-punctuation-alone-is-a-placeholder

-- The index of migration 0053: ς, ᲁ, ᲆ, ᲇ and ᲈ kept as written. Open
-- name.lookalike findings of names that folded alike only by them stay
-- open until the next catalog check closes them (select * from
-- sync.run_job('check_catalog');).
drop index public.sync_fragrances_name_key_idx;
create index sync_fragrances_name_key_idx on public.fragrances (
    lower(case when octet_length(name::text) = char_length(name::text)
                   then case when strpos(name::text, '  ') = 0 and left(name::text, 1) <> ' ' and right(name::text, 1) <> ' ' then name::text
                             else btrim(regexp_replace(name::text, '  +', ' ', 'g'), ' ') end
               when name::text ~ E'[\\u00b5\\u0370-\\u052f\\u1c80-\\u1c8f\\u1d00-\\u1dbf\\u1f00-\\u1fff\\u3380-\\u33df\\ua640-\\ua69f\\U0001d400-\\U0001d7ff\\U0001e030-\\U0001e08f]'
                   then btrim(regexp_replace(normalize(translate(normalize(name::text, nfkd),
                       E'\u037f\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5'
                       '\u03a7\u03b1\u03b2\u03b5\u03b6\u03b7\u03b9\u03ba\u03bc\u03bd\u03bf\u03c1\u03c4\u03c5'
                       '\u03c7\u03dc\u03dd\u03f3\u03fa\u03fb\u0405\u0406\u0408\u0410\u0412\u0415\u041a\u041c'
                       '\u041d\u041e\u0420\u0421\u0422\u0423\u0425\u042c\u0430\u0432\u0435\u043a\u043c\u043d'
                       '\u043e\u0440\u0441\u0442\u0443\u0445\u044c\u0455\u0456\u0458\u0474\u0475\u04ae\u04af'
                       '\u04c0\u04cf\u050c\u050d\u051c\u051d\u1c80\u1c82\u1c83\u1c84\u1c85\u1d26',
                       'JABEZHIKMNOPTYXabezhikmnoptyxFfjMmSIJABEKMHOPCTYXbabekmhopctyxbsijVvYyIiGgWwbocttr'), nfkc), '  +', ' ', 'g'), ' ')
               else btrim(regexp_replace(normalize(name::text, nfkc), '  +', ' ', 'g'), ' ') end),
    name);
comment on index public.sync_fragrances_name_key_idx is
    'Fragrance sync: names folded (Cyrillic and Greek letters that look Latin folded to them, NFKC, runs of spaces as one and none at either end, lower case: sync_private.name_key), then as written, for name.lookalike (db/45-findings.sql). Changes no row; the rollback of migration 0053 builds the index of migration 0045 again.';

-- The rule's description of migration 0053 (the trigger that refuses
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
set description = 'name differs from another fragrance''s only in case, width or another compatibility form, in Cyrillic or Greek letters that look like Latin ones, or in its spaces: the same under Unicode NFKC and lower case once such letters are folded to the Latin letters Unicode''s confusables pair them with (UTS #39) and a run of spaces to one, none at either end, e.g. "CHANEL", "Chanel" and full-width "ＣＨＡＮＥＬ", "COCO" and "СОСО" in Cyrillic capitals, or "Rose  Noir" with two spaces and "Rose Noir": a reader takes them for one name (a web page draws a run of spaces as one). sync.open_finding''s shared_with lists the others. A finding, never a reason on a delta: a Russian or Greek name is a name.'
where code = 'name.lookalike';
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
