-- The normal-form fixes the rules offer never overflow their column; body.not_json says what was wrong and what to send
-- depends: 0067-earlier-discards-kept

-- Normal form C can lengthen a text (U+0958, Devanagari qa, is two
-- characters in it): the fix name.not_normalized and
-- description.not_normalized offered, "set name = normalize(name)", ran
-- into "value too long for type character varying(150)" on such a row, a
-- raw error a DBA could not place (hostile review). The fix offered now
-- leaves such a row alone, and the rule's sentence says why
-- (sync_private.normal_form_overflow, db/10-rules.sql). body.not_json said
-- only "not JSON": it now says what can be wrong and what the sender must
-- send. Descriptions only: no new version of the rules. sync.rule's trigger
-- refuses a change of a description (FS070), which is for DBAs: the
-- owner's migration sets it aside for this statement, as 0040 did. (The
-- trigger exists only on an upgrade: a fresh install loads db/ after the
-- migrations.)
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
        'name is not in Unicode normal form C (NFC), e.g. an accent written as a combining mark after its letter: it looks like its composed form but compares, sorts and is searched as another name, and is no name.duplicate of it. Fix a row with: update public.fragrances set name = normalize(name) where fragrance_id = ... and char_length(normalize(name)) <= 150; (UPDATE 0: its normal form is longer than the 150 characters the column holds, as the sentence says: NFC writes some characters as two or three; shorten the name in the CMS)'
    when 'description.not_normalized' then
        'description is not in Unicode normal form C (NFC), e.g. an accent written as a combining mark after its letter: it looks like its composed form but compares and is searched as another text, so a search for the composed words misses it. Fix a row with: update public.fragrances set description = normalize(description) where fragrance_id = ... and char_length(normalize(description)) <= 1024; (UPDATE 0: its normal form is longer than the 1,024 characters the column holds, as the sentence says; shorten the description in the CMS)'
    else
        'The body is not valid JSON: a syntax error (a missing quote, comma or brace, a trailing comma, single quotes, a comment), a word JSON does not have (NaN, Infinity, undefined), or nesting deeper than the database reads; the sentence gives the line and the token. The sender must send one JSON object, e.g. {"fragrance_id": 1, "name": "..."}; the raw bytes are kept in sync.inbox.body.'
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
