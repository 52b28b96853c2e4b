-- Data rules: what a delivery's bytes must be to change a fragrance, and what
-- the catalog must be at rest.
--
-- Every rule is written once, here, and serves every path: the hook's
-- batches, apply_pending, retries, reverts and repairs judge deltas through
-- sync_private.judge(), and the catalog check (db/45-findings.sql) runs the
-- same field rules over public.fragrances. Each rule's severity and parameter
-- come from sync.rule, a table a DBA tunes (its current version is one JSON
-- object, passed down as p_rules). A violation is data (a reason on the inbox
-- row, or a finding), never an exception.

-- sync_private.judged: a delivery after the rules, before the merge.
create type sync_private.judged as (
    inbox_id bigint,
    payload jsonb,
    fragrance_id integer,
    reasons jsonb,
    valid boolean
);
comment on type sync_private.judged is
    'A delivery after sync_private.judge(): its inbox id (or position in a batch), parsed payload, the fragrance it names when valid, the reasons found, and whether none is an error.';
comment on column sync_private.judged.inbox_id is 'The delivery''s inbox id, or its position in a batch not stored yet.';
comment on column sync_private.judged.payload is 'The parsed body (null when it is not a JSON object).';
comment on column sync_private.judged.fragrance_id is 'The fragrance it names, when that id is valid.';
comment on column sync_private.judged.reasons is 'Every reason the rules gave, errors and warnings (sync_private.reason).';
comment on column sync_private.judged.valid is 'True when no reason is an error: the delta may be merged.';

-- sync_private.reason
-- Builds one reason: a stable code, a severity, the field it is about and a sentence.
create function sync_private.reason(
    p_code text,
    p_field text,
    p_message text,
    p_severity text default 'error'
) returns jsonb
    language sql
    -- Stable, as jsonb_build_object is: PostgreSQL inlines an SQL function only
    -- when it claims no more than its body, and a call that is not inlined
    -- costs a function call per reason (15% of a merge of 1,000, measured).
    stable
    parallel safe
as $$
    select jsonb_build_object('code', p_code, 'severity', p_severity, 'field', p_field, 'message', p_message);
$$;
comment on function sync_private.reason(text, text, text, text) is
    'Builds one reason {code, severity, field, message}; severity is error (blocks the change), warning or info.';

-- sync_private.has_error
-- True when a reasons array holds at least one reason of severity error.
create function sync_private.has_error(p_reasons jsonb) returns boolean
    language sql
    immutable
    parallel safe
as $$
    select p_reasons @> '[{"severity": "error"}]';
$$;
comment on function sync_private.has_error(jsonb) is
    'True when a reasons array holds at least one reason of severity error.';

-- sync_private.hidden_escaped
-- A text for display with what a terminal acts on, reorders or does not draw written as an escape.
create function sync_private.hidden_escaped(p_text text, p_bytes boolean) returns text
    language plpgsql
    immutable
    parallel safe
    -- Written out in sync.quarantine: keep the two alike (tests/test_quarantine.py).
    -- Here, with the rules, since sync_private.show writes what a sender
    -- sent into the sentences of its reasons through it too; PL/pgSQL, so a
    -- call on the hook's path is not planned again each time (a SQL
    -- function with a subquery is never inlined; tests/test_ingest.py).
as $$
begin
    -- A body is text a sender chose, shown to a DBA in psql and on the
    -- status page, and so are the values, keys and tokens the sentences of
    -- its reasons quote (sync_private.show, body.not_json, field.unknown).
    -- Written as it came, a raw ESC ("\x1b[2J") reached the DBA's terminal
    -- through psql -A or a script's output, a right-to-left override
    -- reordered the line it was on, and a raw zero-width space, the reason
    -- the delivery was refused, could not be seen (hostile review). The
    -- controls (C0, DEL, C1), the bidirectional controls and marks, the
    -- line and paragraph separators, and the common invisible characters
    -- (soft hyphen, zero-width space and joiners, word joiner and invisible
    -- operators, byte order mark, Mongolian vowel separator) are written as
    -- \n, \r, \t or \uXXXX, as JSON escapes them; in the octal of bytes
    -- that are not UTF-8 (p_bytes, only ASCII is left), as \ooo beside
    -- encode()'s own. Most texts hold none: one pattern test.
    if p_text is null
        or p_text !~ E'[\\u0001-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]'
    then
        return p_text;
    end if;
    return (select string_agg(
                case when s.c !~ E'[\\u0001-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]'
                         then s.c
                     when p_bytes
                         then E'\\' || (ascii(s.c) / 64)::text || (ascii(s.c) / 8 % 8)::text || (ascii(s.c) % 8)::text
                     when s.c = E'\n' then E'\\n'
                     when s.c = E'\r' then E'\\r'
                     when s.c = E'\t' then E'\\t'
                     else E'\\u' || lpad(to_hex(ascii(s.c)), 4, '0') end,
                '' order by s.n)
            from regexp_split_to_table(p_text, '') with ordinality as s (c, n));
end;
$$;
comment on function sync_private.hidden_escaped(text, boolean) is
    E'A text for display with its controls (C0, DEL, C1), bidirectional controls and marks, line and paragraph separators and common invisible characters written as \\n, \\r, \\t or \\uXXXX (as \\ooo when p_bytes: the ASCII left of bytes encode(..., ''escape'') wrote), so a terminal acts on none, none reorders the line, and each can be seen.';

-- sync_private.show
-- A JSON value for a message, cut short so hostile payloads cannot flood a reason.
create function sync_private.show(p_value jsonb) returns text
    language sql
    immutable
    parallel safe
as $$
    -- JSON escapes the C0 controls only: a right-to-left override, a C1
    -- control or a zero-width space a sender put in a value or a key stood
    -- raw in the sentence, beside a preview that escaped it, and reordered
    -- the DBA's psql line, reached the terminal or hid (hostile review).
    -- Its pattern test here, so a value that holds none (nearly all) costs
    -- no call: this function is inlined into the judge's statement.
    select case when p_value::text ~ E'[\\u0001-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]'
        then sync_private.hidden_escaped(
                 case when length(p_value::text) > 40 then left(p_value::text, 40) || '...' else p_value::text end, false)
        else case when length(p_value::text) > 40 then left(p_value::text, 40) || '...' else p_value::text end end;
$$;
comment on function sync_private.show(jsonb) is
    E'A JSON value as text for messages, cut to 40 characters, with the characters a terminal acts on, that reorder a line or that do not show written as \\uXXXX escapes (sync_private.hidden_escaped).';

-- sync_private.show_argument
-- A DBA's text argument for an error message: quoted as SQL, cut to 100 characters.
create function sync_private.show_argument(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- A verb that names what it did not find echoes it: a 100 KB argument
    -- came back whole in the error, and in the server's log (hostile
    -- review). Quoted so a DBA can copy it into a query; null as null.
    select case when p_text is null then 'null'
                when char_length(p_text) > 100
                    then quote_literal(left(p_text, 100)) || format(' (the first 100 of %s characters)', char_length(p_text))
                else quote_literal(p_text) end;
$$;
comment on function sync_private.show_argument(text) is
    'A text argument as an error message shows it: quoted as SQL, the first 100 characters of a longer one with its length, null as null.';

-- sync_private.is_blank
-- True when a text shows nothing: only whitespace, control, invisible or combining characters.
create function sync_private.is_blank(p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- Spelled out by code point, so the rule is the same under every locale
    -- ([[:space:]] follows the server's, and C.UTF-8 knows no Unicode space),
    -- and generated from Unicode data by devtools/blank_class.py, which says
    -- what is in it: every control (but U+0000), format character (but the
    -- prepended concatenation marks, which show), nonspacing and enclosing
    -- mark, space and separator, in every script; the Hangul fillers, the
    -- braille blank, the musical null notehead, and whole blocks of marks,
    -- selectors and tags. A mark
    -- after a letter is no blank: the letter shows. Do not edit the ranges
    -- by hand: run python -m devtools.blank_class --write.
    select p_text ~ (
        E'^['
        '\\u0001-\\u0020\\u007f-\\u00a0\\u00ad\\u0300-\\u036f\\u0483-\\u0489\\u0591-\\u05bd\\u05bf\\u05c1-\\u05c2'
        '\\u05c4-\\u05c5\\u05c7\\u0610-\\u061a\\u061c\\u064b-\\u065f\\u0670\\u06d6-\\u06dc\\u06df-\\u06e4'
        '\\u06e7-\\u06e8\\u06ea-\\u06ed\\u0711\\u0730-\\u074a\\u07a6-\\u07b0\\u07eb-\\u07f3\\u07fd\\u0816-\\u0819'
        '\\u081b-\\u0823\\u0825-\\u0827\\u0829-\\u082d\\u0859-\\u085b\\u0898-\\u089f\\u08ca-\\u08e1\\u08e3-\\u0902\\u093a'
        '\\u093c\\u0941-\\u0948\\u094d\\u0951-\\u0957\\u0962-\\u0963\\u0981\\u09bc\\u09c1-\\u09c4'
        '\\u09cd\\u09e2-\\u09e3\\u09fe\\u0a01-\\u0a02\\u0a3c\\u0a41-\\u0a42\\u0a47-\\u0a48\\u0a4b-\\u0a4d'
        '\\u0a51\\u0a70-\\u0a71\\u0a75\\u0a81-\\u0a82\\u0abc\\u0ac1-\\u0ac5\\u0ac7-\\u0ac8\\u0acd'
        '\\u0ae2-\\u0ae3\\u0afa-\\u0aff\\u0b01\\u0b3c\\u0b3f\\u0b41-\\u0b44\\u0b4d\\u0b55-\\u0b56'
        '\\u0b62-\\u0b63\\u0b82\\u0bc0\\u0bcd\\u0c00\\u0c04\\u0c3c\\u0c3e-\\u0c40'
        '\\u0c46-\\u0c48\\u0c4a-\\u0c4d\\u0c55-\\u0c56\\u0c62-\\u0c63\\u0c81\\u0cbc\\u0cbf\\u0cc6'
        '\\u0ccc-\\u0ccd\\u0ce2-\\u0ce3\\u0d00-\\u0d01\\u0d3b-\\u0d3c\\u0d41-\\u0d44\\u0d4d\\u0d62-\\u0d63\\u0d81'
        '\\u0dca\\u0dd2-\\u0dd4\\u0dd6\\u0e31\\u0e34-\\u0e3a\\u0e47-\\u0e4e\\u0eb1\\u0eb4-\\u0ebc'
        '\\u0ec8-\\u0ecd\\u0f18-\\u0f19\\u0f35\\u0f37\\u0f39\\u0f71-\\u0f7e\\u0f80-\\u0f84\\u0f86-\\u0f87'
        '\\u0f8d-\\u0f97\\u0f99-\\u0fbc\\u0fc6\\u102d-\\u1030\\u1032-\\u1037\\u1039-\\u103a\\u103d-\\u103e\\u1058-\\u1059'
        '\\u105e-\\u1060\\u1071-\\u1074\\u1082\\u1085-\\u1086\\u108d\\u109d\\u115f-\\u1160\\u135d-\\u135f'
        '\\u1680\\u1712-\\u1714\\u1732-\\u1733\\u1752-\\u1753\\u1772-\\u1773\\u17b4-\\u17b5\\u17b7-\\u17bd\\u17c6'
        '\\u17c9-\\u17d3\\u17dd\\u180b-\\u180f\\u1885-\\u1886\\u18a9\\u1920-\\u1922\\u1927-\\u1928\\u1932'
        '\\u1939-\\u193b\\u1a17-\\u1a18\\u1a1b\\u1a56\\u1a58-\\u1a5e\\u1a60\\u1a62\\u1a65-\\u1a6c'
        '\\u1a73-\\u1a7c\\u1a7f\\u1ab0-\\u1b03\\u1b34\\u1b36-\\u1b3a\\u1b3c\\u1b42\\u1b6b-\\u1b73'
        '\\u1b80-\\u1b81\\u1ba2-\\u1ba5\\u1ba8-\\u1ba9\\u1bab-\\u1bad\\u1be6\\u1be8-\\u1be9\\u1bed\\u1bef-\\u1bf1'
        '\\u1c2c-\\u1c33\\u1c36-\\u1c37\\u1cd0-\\u1cd2\\u1cd4-\\u1ce0\\u1ce2-\\u1ce8\\u1ced\\u1cf4\\u1cf8-\\u1cf9'
        '\\u1dc0-\\u1dff\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u206f\\u20d0-\\u20ff\\u2800\\u2cef-\\u2cf1\\u2d7f'
        '\\u2de0-\\u2dff\\u3000\\u302a-\\u302d\\u3099-\\u309a\\u3164\\ua66f-\\ua672\\ua674-\\ua67d\\ua69e-\\ua69f'
        '\\ua6f0-\\ua6f1\\ua802\\ua806\\ua80b\\ua825-\\ua826\\ua82c\\ua8c4-\\ua8c5\\ua8e0-\\ua8f1'
        '\\ua8ff\\ua926-\\ua92d\\ua947-\\ua951\\ua980-\\ua982\\ua9b3\\ua9b6-\\ua9b9\\ua9bc-\\ua9bd\\ua9e5'
        '\\uaa29-\\uaa2e\\uaa31-\\uaa32\\uaa35-\\uaa36\\uaa43\\uaa4c\\uaa7c\\uaab0\\uaab2-\\uaab4'
        '\\uaab7-\\uaab8\\uaabe-\\uaabf\\uaac1\\uaaec-\\uaaed\\uaaf6\\uabe5\\uabe8\\uabed'
        '\\ufb1e\\ufe00-\\ufe0f\\ufe20-\\ufe2f\\ufeff\\uffa0\\ufff9-\\ufffb\\U000101fd\\U000102e0'
        '\\U00010376-\\U0001037a\\U00010a01-\\U00010a03\\U00010a05-\\U00010a06\\U00010a0c-\\U00010a0f\\U00010a38-\\U00010a3a\\U00010a3f\\U00010ae5-\\U00010ae6\\U00010d24-\\U00010d27'
        '\\U00010eab-\\U00010eac\\U00010f46-\\U00010f50\\U00010f82-\\U00010f85\\U00011001\\U00011038-\\U00011046\\U00011070\\U00011073-\\U00011074\\U0001107f-\\U00011081'
        '\\U000110b3-\\U000110b6\\U000110b9-\\U000110ba\\U000110c2\\U00011100-\\U00011102\\U00011127-\\U0001112b\\U0001112d-\\U00011134\\U00011173\\U00011180-\\U00011181'
        '\\U000111b6-\\U000111be\\U000111c9-\\U000111cc\\U000111cf\\U0001122f-\\U00011231\\U00011234\\U00011236-\\U00011237\\U0001123e\\U000112df'
        '\\U000112e3-\\U000112ea\\U00011300-\\U00011301\\U0001133b-\\U0001133c\\U00011340\\U00011366-\\U0001136c\\U00011370-\\U00011374\\U00011438-\\U0001143f\\U00011442-\\U00011444'
        '\\U00011446\\U0001145e\\U000114b3-\\U000114b8\\U000114ba\\U000114bf-\\U000114c0\\U000114c2-\\U000114c3\\U000115b2-\\U000115b5\\U000115bc-\\U000115bd'
        '\\U000115bf-\\U000115c0\\U000115dc-\\U000115dd\\U00011633-\\U0001163a\\U0001163d\\U0001163f-\\U00011640\\U000116ab\\U000116ad\\U000116b0-\\U000116b5'
        '\\U000116b7\\U0001171d-\\U0001171f\\U00011722-\\U00011725\\U00011727-\\U0001172b\\U0001182f-\\U00011837\\U00011839-\\U0001183a\\U0001193b-\\U0001193c\\U0001193e'
        '\\U00011943\\U000119d4-\\U000119d7\\U000119da-\\U000119db\\U000119e0\\U00011a01-\\U00011a0a\\U00011a33-\\U00011a38\\U00011a3b-\\U00011a3e\\U00011a47'
        '\\U00011a51-\\U00011a56\\U00011a59-\\U00011a5b\\U00011a8a-\\U00011a96\\U00011a98-\\U00011a99\\U00011c30-\\U00011c36\\U00011c38-\\U00011c3d\\U00011c3f\\U00011c92-\\U00011ca7'
        '\\U00011caa-\\U00011cb0\\U00011cb2-\\U00011cb3\\U00011cb5-\\U00011cb6\\U00011d31-\\U00011d36\\U00011d3a\\U00011d3c-\\U00011d3d\\U00011d3f-\\U00011d45\\U00011d47'
        '\\U00011d90-\\U00011d91\\U00011d95\\U00011d97\\U00011ef3-\\U00011ef4\\U00013430-\\U00013442\\U00013447-\\U0001345f\\U00016af0-\\U00016af4\\U00016b30-\\U00016b36'
        '\\U00016f4f\\U00016f8f-\\U00016f92\\U00016fe4\\U0001bc9d-\\U0001bc9e\\U0001bca0-\\U0001bca3\\U0001cf00-\\U0001cf2d\\U0001cf30-\\U0001cf46\\U0001d159'
        '\\U0001d167-\\U0001d169\\U0001d173-\\U0001d182\\U0001d185-\\U0001d18b\\U0001d1aa-\\U0001d1ad\\U0001d242-\\U0001d244\\U0001da00-\\U0001da36\\U0001da3b-\\U0001da6c\\U0001da75'
        '\\U0001da84\\U0001da9b-\\U0001da9f\\U0001daa1-\\U0001daaf\\U0001e000-\\U0001e006\\U0001e008-\\U0001e018\\U0001e01b-\\U0001e021\\U0001e023-\\U0001e024\\U0001e026-\\U0001e02a'
        '\\U0001e130-\\U0001e136\\U0001e2ae\\U0001e2ec-\\U0001e2ef\\U0001e8d0-\\U0001e8d6\\U0001e944-\\U0001e94a\\U000e0000-\\U000e007f\\U000e0100-\\U000e01ef'
        ']*$');
$$;
comment on function sync_private.is_blank(text) is
    'True when a text has no visible character: only controls, format characters, combining marks, spaces and separators of any script, Hangul fillers, the braille blank, the musical null notehead U+1D159, variation selectors and tags (generated from Unicode data by devtools/blank_class.py), whatever the database''s locale. The name.blank rule.';

-- sync_private.first_control
-- The first control character in a text (C0, DEL, C1) or line break, or null; line breaks and tabs may be allowed.
create function sync_private.first_control(p_text text, p_allow_line_breaks boolean) returns text
    language sql
    immutable
    parallel safe
as $$
    -- A name holds no line break of any kind: not a line feed or a carriage
    -- return (C0), nor a next line (C1), nor Unicode's line and paragraph
    -- separators U+2028 and U+2029, which are no controls but break the line
    -- as a line feed does (and end a JavaScript string literal before
    -- ES2019). They passed every rule inside a name. A description keeps
    -- its line breaks: tab, line feed, carriage return and both separators.
    -- Neither holds a noncharacter (U+FDD0-FDEF, and the last two code
    -- points of every plane, U+FFFE, U+FFFF ... U+10FFFF): Unicode keeps
    -- them for a program's internal use, never text, XML cannot carry
    -- U+FFFE or U+FFFF, and they passed every rule (hostile review).
    -- A description's C1 controls (U+0080-009F) are no error here but
    -- description.c1_control, a warning (sync_private.first_c1_control).
    select case when p_allow_line_breaks
                then substring(p_text from E'[\\u0001-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f'
                                           '\\ufdd0-\\ufdef\\ufffe\\uffff'
                                           '\\U0001fffe-\\U0001ffff\\U0002fffe-\\U0002ffff\\U0003fffe-\\U0003ffff\\U0004fffe-\\U0004ffff\\U0005fffe-\\U0005ffff\\U0006fffe-\\U0006ffff\\U0007fffe-\\U0007ffff\\U0008fffe-\\U0008ffff\\U0009fffe-\\U0009ffff\\U000afffe-\\U000affff\\U000bfffe-\\U000bffff\\U000cfffe-\\U000cffff\\U000dfffe-\\U000dffff\\U000efffe-\\U000effff\\U000ffffe-\\U000fffff\\U0010fffe-\\U0010ffff]')
                else substring(p_text from E'[\\u0001-\\u001f\\u007f-\\u009f\\u2028\\u2029'
                                           '\\ufdd0-\\ufdef\\ufffe\\uffff'
                                           '\\U0001fffe-\\U0001ffff\\U0002fffe-\\U0002ffff\\U0003fffe-\\U0003ffff\\U0004fffe-\\U0004ffff\\U0005fffe-\\U0005ffff\\U0006fffe-\\U0006ffff\\U0007fffe-\\U0007ffff\\U0008fffe-\\U0008ffff\\U0009fffe-\\U0009ffff\\U000afffe-\\U000affff\\U000bfffe-\\U000bffff\\U000cfffe-\\U000cffff\\U000dfffe-\\U000dffff\\U000efffe-\\U000effff\\U000ffffe-\\U000fffff\\U0010fffe-\\U0010ffff]') end;
$$;
comment on function sync_private.first_control(text, boolean) is
    'The first control character (U+0001-001F, U+007F-009F), noncharacter (U+FDD0-FDEF, U+FFFE and U+FFFF of every plane) or line or paragraph separator (U+2028, U+2029) of a text, or null; with p_allow_line_breaks (a description), tab, line feed, carriage return, both separators and the C1 controls U+0080-009F (description.c1_control, a warning) are allowed. The <field>.control_character rule.';

-- sync_private.first_c1_control
-- The first C1 control character (U+0080-009F) in a text, or null.
create function sync_private.first_c1_control(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- In real text these are nearly always Windows-1252 read as Latin-1: the
    -- catalog the sync adopted holds descriptions quoting a word with U+0093
    -- and U+0094, which Windows-1252 writes as curly quotes. The CMS sends a
    -- fragrance's description whole with every edit, so as an error (a
    -- control character) every edit of such a fragrance was refused, its
    -- forbidden flip with it, for as long as the CMS kept the text.
    select substring(p_text from E'[\\u0080-\\u009f]');
$$;
comment on function sync_private.first_c1_control(text) is
    'The first C1 control character (U+0080-009F) of a text, or null: in real text, Windows-1252 read as Latin-1 (U+0093 is a curly quote there). The description.c1_control rule.';

-- sync_private.windows_1252
-- The character Windows-1252 writes with the byte a C1 control's code point is, or null.
create function sync_private.windows_1252(p_char text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- By code point, not convert_from(..., 'WIN1252'): that raises on the
    -- five bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D).
    select chr((array[8364, null, 8218, 402, 8222, 8230, 8224, 8225, 710, 8240, 352, 8249, 338, null, 381, null,
                      null, 8216, 8217, 8220, 8221, 8226, 8211, 8212, 732, 8482, 353, 8250, 339, null, 382, 376]
               )[ascii(p_char) - 127]);
$$;
comment on function sync_private.windows_1252(text) is
    'The character Windows-1252 writes with the byte that a C1 control (U+0080-009F) has for code point, e.g. U+0093 gives a left double quotation mark; null for any other character and for the five bytes Windows-1252 leaves undefined. The sentence of description.c1_control.';

-- sync_private.first_bidi_control
-- The first bidirectional embedding, override or isolate in a text, or null.
create function sync_private.first_bidi_control(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- U+202A-202E (embeddings and overrides) and U+2066-2069 (isolates) make
    -- text display in another order than it is stored ("Trojan Source").
    select substring(p_text from E'[\\u202a-\\u202e\\u2066-\\u2069]');
$$;
comment on function sync_private.first_bidi_control(text) is
    'The first bidirectional embedding, override or isolate (U+202A-202E, U+2066-2069) of a text, or null: they make text display in another order than it is stored. The <field>.bidi_control rule.';

-- sync_private.script_class
-- The ranges of a class of letters (latin, cyrillic, greek) or of what a word is made of (word), for sync_private.mixed_script.
create function sync_private.script_class(p_class text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- Ranges without brackets, so that classes join in one bracket
    -- expression ('[' || cyrillic || greek || ']'). A letter's script as
    -- Unicode's Scripts.txt has it, read from Python's Unicode data (its
    -- name, its decomposition, its case: devtools/script_class.py says how
    -- and what it was checked against); a word is letters and marks of every
    -- script and the unassigned code points. Spelled out by code point, as
    -- the other classes (PostgreSQL knows no Unicode script), generated; redo it:
    -- .venv/bin/python -m devtools.script_class --write
    select
        case p_class
        when 'latin' then
            E'\\u0041-\\u005a\\u0061-\\u007a\\u00aa\\u00ba\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u02b8\\u02e0-\\u02e4'
            '\\u1d00-\\u1d25\\u1d2c-\\u1d5c\\u1d62-\\u1d65\\u1d6b-\\u1d77\\u1d79-\\u1dbe\\u1e00-\\u1eff\\u2071\\u207f'
            '\\u2090-\\u209c\\u212a-\\u212b\\u2132\\u214e\\u2183-\\u2184\\u2c60-\\u2c7f\\ua722-\\ua787\\ua78b-\\ua7ca'
            '\\ua7d0-\\ua7d1\\ua7d3\\ua7d5-\\ua7d9\\ua7f2-\\ua7ff\\uab30-\\uab5a\\uab5c-\\uab64\\uab66-\\uab69\\ufb00-\\ufb06'
            '\\uff21-\\uff3a\\uff41-\\uff5a\\U00010780-\\U00010785\\U00010787-\\U000107b0\\U000107b2-\\U000107ba\\U0001df00-\\U0001df1e'
        when 'cyrillic' then
            E'\\u0400-\\u0481\\u048a-\\u052f\\u1c80-\\u1c88\\u1d2b\\u1d78\\ua640-\\ua66e\\ua67f-\\ua69d'
        when 'greek' then
            E'\\u0370-\\u0374\\u0376-\\u0377\\u037a-\\u037d\\u037f\\u0386\\u0388-\\u038a\\u038c\\u038e-\\u03a1'
            '\\u03a3-\\u03e1\\u03f0-\\u03f5\\u03f7-\\u03ff\\u1d26-\\u1d2a\\u1d5d-\\u1d61\\u1d66-\\u1d6a\\u1dbf\\u1f00-\\u1f15'
            '\\u1f18-\\u1f1d\\u1f20-\\u1f45\\u1f48-\\u1f4d\\u1f50-\\u1f57\\u1f59\\u1f5b\\u1f5d\\u1f5f-\\u1f7d'
            '\\u1f80-\\u1fb4\\u1fb6-\\u1fbc\\u1fbe\\u1fc2-\\u1fc4\\u1fc6-\\u1fcc\\u1fd0-\\u1fd3\\u1fd6-\\u1fdb\\u1fe0-\\u1fec'
            '\\u1ff2-\\u1ff4\\u1ff6-\\u1ffc\\u2126\\uab65'
        when 'word' then
            E'\\u0041-\\u005a\\u0061-\\u007a\\u00aa\\u00b5\\u00ba\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u02c1'
            '\\u02c6-\\u02d1\\u02e0-\\u02e4\\u02ec\\u02ee\\u0300-\\u0374\\u0376-\\u037d\\u037f-\\u0383\\u0386'
            '\\u0388-\\u03f5\\u03f7-\\u0481\\u0483-\\u0559\\u0560-\\u0588\\u058b-\\u058c\\u0590-\\u05bd\\u05bf\\u05c1-\\u05c2'
            '\\u05c4-\\u05c5\\u05c7-\\u05f2\\u05f5-\\u05ff\\u0610-\\u061a\\u0620-\\u065f\\u066e-\\u06d3\\u06d5-\\u06dc\\u06df-\\u06e8'
            '\\u06ea-\\u06ef\\u06fa-\\u06fc\\u06ff\\u070e\\u0710-\\u07bf\\u07ca-\\u07f5\\u07fa-\\u07fd\\u0800-\\u082f'
            '\\u083f-\\u085d\\u085f-\\u0887\\u0889-\\u088f\\u0892-\\u08e1\\u08e3-\\u0963\\u0971-\\u09e5\\u09f0-\\u09f1\\u09fc'
            '\\u09fe-\\u0a65\\u0a70-\\u0a75\\u0a77-\\u0ae5\\u0af2-\\u0b65\\u0b71\\u0b78-\\u0be5\\u0bfb-\\u0c65\\u0c70-\\u0c76'
            '\\u0c80-\\u0c83\\u0c85-\\u0ce5\\u0cf0-\\u0d4e\\u0d50-\\u0d57\\u0d5f-\\u0d65\\u0d7a-\\u0de5\\u0df0-\\u0df3\\u0df5-\\u0e3e'
            '\\u0e40-\\u0e4e\\u0e5c-\\u0ecf\\u0eda-\\u0f00\\u0f18-\\u0f19\\u0f35\\u0f37\\u0f39\\u0f3e-\\u0f84'
            '\\u0f86-\\u0fbd\\u0fc6\\u0fcd\\u0fdb-\\u103f\\u1050-\\u108f\\u109a-\\u109d\\u10a0-\\u10fa\\u10fc-\\u135f'
            '\\u137d-\\u138f\\u139a-\\u13ff\\u1401-\\u166c\\u166f-\\u167f\\u1681-\\u169a\\u169d-\\u16ea\\u16f1-\\u1734\\u1737-\\u17d3'
            '\\u17d7\\u17dc-\\u17df\\u17ea-\\u17ef\\u17fa-\\u17ff\\u180b-\\u180d\\u180f\\u181a-\\u193f\\u1941-\\u1943'
            '\\u1950-\\u19cf\\u19db-\\u19dd\\u1a00-\\u1a1d\\u1a20-\\u1a7f\\u1a8a-\\u1a8f\\u1a9a-\\u1a9f\\u1aa7\\u1aae-\\u1b4f'
            '\\u1b6b-\\u1b73\\u1b7f-\\u1baf\\u1bba-\\u1bfb\\u1c00-\\u1c3a\\u1c4a-\\u1c4f\\u1c5a-\\u1c7d\\u1c80-\\u1cbf\\u1cc8-\\u1cd2'
            '\\u1cd4-\\u1fbc\\u1fbe\\u1fc2-\\u1fcc\\u1fd0-\\u1fdc\\u1fe0-\\u1fec\\u1ff0-\\u1ffc\\u1fff\\u2065'
            '\\u2071-\\u2073\\u207f\\u208f-\\u209f\\u20c1-\\u20ff\\u2102\\u2107\\u210a-\\u2113\\u2115'
            '\\u2119-\\u211d\\u2124\\u2126\\u2128\\u212a-\\u212d\\u212f-\\u2139\\u213c-\\u213f\\u2145-\\u2149'
            '\\u214e\\u2183-\\u2184\\u218c-\\u218f\\u2427-\\u243f\\u244b-\\u245f\\u2b74-\\u2b75\\u2b96\\u2c00-\\u2ce4'
            '\\u2ceb-\\u2cf8\\u2d00-\\u2d6f\\u2d71-\\u2dff\\u2e2f\\u2e5e-\\u2e7f\\u2e9a\\u2ef4-\\u2eff\\u2fd6-\\u2fef'
            '\\u2ffc-\\u2fff\\u3005-\\u3006\\u302a-\\u302f\\u3031-\\u3035\\u303b-\\u303c\\u3040-\\u309a\\u309d-\\u309f\\u30a1-\\u30fa'
            '\\u30fc-\\u318f\\u31a0-\\u31bf\\u31e4-\\u31ff\\u321f\\u3400-\\u4dbf\\u4e00-\\ua48f\\ua4c7-\\ua4fd\\ua500-\\ua60c'
            '\\ua610-\\ua61f\\ua62a-\\ua672\\ua674-\\ua67d\\ua67f-\\ua6e5\\ua6f0-\\ua6f1\\ua6f8-\\ua6ff\\ua717-\\ua71f\\ua722-\\ua788'
            '\\ua78b-\\ua827\\ua82c-\\ua82f\\ua83a-\\ua873\\ua878-\\ua8cd\\ua8da-\\ua8f7\\ua8fb\\ua8fd-\\ua8ff\\ua90a-\\ua92d'
            '\\ua930-\\ua95e\\ua960-\\ua9c0\\ua9ce-\\ua9cf\\ua9da-\\ua9dd\\ua9e0-\\ua9ef\\ua9fa-\\uaa4f\\uaa5a-\\uaa5b\\uaa60-\\uaa76'
            '\\uaa7a-\\uaadd\\uaae0-\\uaaef\\uaaf2-\\uab5a\\uab5c-\\uab69\\uab6c-\\uabea\\uabec-\\uabef\\uabfa-\\ud7ff\\uf900-\\ufb28'
            '\\ufb2a-\\ufbb1\\ufbc3-\\ufd3d\\ufd50-\\ufdce\\ufdd0-\\ufdfb\\ufe00-\\ufe0f\\ufe1a-\\ufe2f\\ufe53\\ufe67'
            '\\ufe6c-\\ufefe\\uff00\\uff21-\\uff3a\\uff41-\\uff5a\\uff66-\\uffdf\\uffe7\\uffef-\\ufff8\\ufffe-\\U000100ff'
            '\\U00010103-\\U00010106\\U00010134-\\U00010136\\U0001018f\\U0001019d-\\U0001019f\\U000101a1-\\U000101cf\\U000101fd-\\U000102e0\\U000102fc-\\U0001031f\\U00010324-\\U00010340'
            '\\U00010342-\\U00010349\\U0001034b-\\U0001039e\\U000103a0-\\U000103cf\\U000103d6-\\U0001049f\\U000104aa-\\U0001056e\\U00010570-\\U00010856\\U00010860-\\U00010876\\U00010880-\\U000108a6'
            '\\U000108b0-\\U000108fa\\U00010900-\\U00010915\\U0001091c-\\U0001091e\\U00010920-\\U0001093e\\U00010940-\\U000109bb\\U000109be-\\U000109bf\\U000109d0-\\U000109d1\\U00010a00-\\U00010a3f'
            '\\U00010a49-\\U00010a4f\\U00010a59-\\U00010a7c\\U00010a80-\\U00010a9c\\U00010aa0-\\U00010ac7\\U00010ac9-\\U00010aea\\U00010af7-\\U00010b38\\U00010b40-\\U00010b57\\U00010b60-\\U00010b77'
            '\\U00010b80-\\U00010b98\\U00010b9d-\\U00010ba8\\U00010bb0-\\U00010cf9\\U00010d00-\\U00010d2f\\U00010d3a-\\U00010e5f\\U00010e7f-\\U00010eac\\U00010eae-\\U00010f1c\\U00010f27-\\U00010f50'
            '\\U00010f5a-\\U00010f85\\U00010f8a-\\U00010fc4\\U00010fcc-\\U00011046\\U0001104e-\\U00011051\\U00011070-\\U000110ba\\U000110c2-\\U000110cc\\U000110ce-\\U000110ef\\U000110fa-\\U00011135'
            '\\U00011144-\\U00011173\\U00011176-\\U000111c4\\U000111c9-\\U000111cc\\U000111ce-\\U000111cf\\U000111da\\U000111dc\\U000111e0\\U000111f5-\\U00011237'
            '\\U0001123e-\\U000112a8\\U000112aa-\\U000112ef\\U000112fa-\\U0001144a\\U0001145c\\U0001145e-\\U000114c5\\U000114c7-\\U000114cf\\U000114da-\\U000115c0\\U000115d8-\\U00011640'
            '\\U00011644-\\U0001164f\\U0001165a-\\U0001165f\\U0001166d-\\U000116b8\\U000116ba-\\U000116bf\\U000116ca-\\U0001172f\\U00011740-\\U0001183a\\U0001183c-\\U000118df\\U000118f3-\\U00011943'
            '\\U00011947-\\U0001194f\\U0001195a-\\U000119e1\\U000119e3-\\U00011a3e\\U00011a47-\\U00011a99\\U00011a9d\\U00011aa3-\\U00011c40\\U00011c46-\\U00011c4f\\U00011c6d-\\U00011c6f'
            '\\U00011c72-\\U00011d4f\\U00011d5a-\\U00011d9f\\U00011daa-\\U00011ef6\\U00011ef9-\\U00011fbf\\U00011ff2-\\U00011ffe\\U00012000-\\U000123ff\\U0001246f\\U00012475-\\U00012ff0'
            '\\U00012ff3-\\U0001342f\\U00013439-\\U00016a5f\\U00016a6a-\\U00016a6d\\U00016a70-\\U00016abf\\U00016aca-\\U00016af4\\U00016af6-\\U00016b36\\U00016b40-\\U00016b43\\U00016b46-\\U00016b4f'
            '\\U00016b5a\\U00016b62-\\U00016e7f\\U00016e9b-\\U00016fe1\\U00016fe3-\\U0001bc9b\\U0001bc9d-\\U0001bc9e\\U0001bca4-\\U0001cf4f\\U0001cfc4-\\U0001cfff\\U0001d0f6-\\U0001d0ff'
            '\\U0001d127-\\U0001d128\\U0001d165-\\U0001d169\\U0001d16d-\\U0001d172\\U0001d17b-\\U0001d182\\U0001d185-\\U0001d18b\\U0001d1aa-\\U0001d1ad\\U0001d1eb-\\U0001d1ff\\U0001d242-\\U0001d244'
            '\\U0001d246-\\U0001d2df\\U0001d2f4-\\U0001d2ff\\U0001d357-\\U0001d35f\\U0001d379-\\U0001d6c0\\U0001d6c2-\\U0001d6da\\U0001d6dc-\\U0001d6fa\\U0001d6fc-\\U0001d714\\U0001d716-\\U0001d734'
            '\\U0001d736-\\U0001d74e\\U0001d750-\\U0001d76e\\U0001d770-\\U0001d788\\U0001d78a-\\U0001d7a8\\U0001d7aa-\\U0001d7c2\\U0001d7c4-\\U0001d7cd\\U0001da00-\\U0001da36\\U0001da3b-\\U0001da6c'
            '\\U0001da75\\U0001da84\\U0001da8c-\\U0001e13f\\U0001e14a-\\U0001e14e\\U0001e150-\\U0001e2ef\\U0001e2fa-\\U0001e2fe\\U0001e300-\\U0001e8c6\\U0001e8d0-\\U0001e94f'
            '\\U0001e95a-\\U0001e95d\\U0001e960-\\U0001ec70\\U0001ecb5-\\U0001ed00\\U0001ed3e-\\U0001eeef\\U0001eef2-\\U0001efff\\U0001f02c-\\U0001f02f\\U0001f094-\\U0001f09f\\U0001f0af-\\U0001f0b0'
            '\\U0001f0c0\\U0001f0d0\\U0001f0f6-\\U0001f0ff\\U0001f1ae-\\U0001f1e5\\U0001f203-\\U0001f20f\\U0001f23c-\\U0001f23f\\U0001f249-\\U0001f24f\\U0001f252-\\U0001f25f'
            '\\U0001f266-\\U0001f2ff\\U0001f6d8-\\U0001f6dc\\U0001f6ed-\\U0001f6ef\\U0001f6fd-\\U0001f6ff\\U0001f774-\\U0001f77f\\U0001f7d9-\\U0001f7df\\U0001f7ec-\\U0001f7ef\\U0001f7f1-\\U0001f7ff'
            '\\U0001f80c-\\U0001f80f\\U0001f848-\\U0001f84f\\U0001f85a-\\U0001f85f\\U0001f888-\\U0001f88f\\U0001f8ae-\\U0001f8af\\U0001f8b2-\\U0001f8ff\\U0001fa54-\\U0001fa5f\\U0001fa6e-\\U0001fa6f'
            '\\U0001fa75-\\U0001fa77\\U0001fa7d-\\U0001fa7f\\U0001fa87-\\U0001fa8f\\U0001faad-\\U0001faaf\\U0001fabb-\\U0001fabf\\U0001fac6-\\U0001facf\\U0001fada-\\U0001fadf\\U0001fae8-\\U0001faef'
            '\\U0001faf7-\\U0001faff\\U0001fb93\\U0001fbcb-\\U0001fbef\\U0001fbfa-\\U000e0000\\U000e0002-\\U000e001f\\U000e0080-\\U000effff\\U000ffffe-\\U000fffff\\U0010fffe-\\U0010ffff'
        end;
$$;
comment on function sync_private.script_class(text) is
    'The code point ranges (a bracket expression''s inside) of the letters of one script, latin, cyrillic or greek (as Unicode''s Scripts.txt has them), or of word, what a word is made of (letters and marks of every script, unassigned code points), generated from Unicode data by devtools/script_class.py; null for any other p_class. The <field>.mixed_script rule.';

-- sync_private.invisible_pattern
-- The regular expression of the <field>.invisible_character rule: it matches the first invisible character out of place.
create function sync_private.invisible_pattern() returns text
    language sql
    immutable
    parallel safe
as $$
    -- Which characters, and why some count only out of place:
    -- sync_private.first_invisible. Spelled out by code point, as the other
    -- classes, so every locale judges alike. Each branch matches the one
    -- character it refuses, and what must stand before or after it is a
    -- lookaround written after that character: a text pays for one only
    -- where such a character stands (the flag's lookbehind, written before
    -- the tag, was tried at every position: a description took 14 times as
    -- long as with first_bidi_control's class; written after, no longer,
    -- measured).
    -- "Out of place" means next to whitespace, a control, a bidirectional
    -- control or an invisible character: the class of the lookarounds.
    select
        -- Refused wherever they stand: soft hyphen, combining grapheme joiner,
        -- Arabic letter mark, Hangul choseong and jungseong fillers, Khmer
        -- inherent vowels, zero-width space, left-to-right and right-to-left
        -- marks, word joiner and invisible operators (U+2065 is reserved for
        -- one), the deprecated format characters, Hangul filler, byte order
        -- mark, halfwidth Hangul filler, U+FFF0-FFF8 (reserved) and the
        -- interlinear annotation controls, shorthand format controls, musical
        -- format controls, and every tag but a letter, a digit and the
        -- cancel tag (U+E0001 language tag, unassigned tags too). And two
        -- symbols that show nothing, though no format character: the
        -- musical null notehead U+1D159 (a base for marks, drawn as
        -- nothing); and the private-use characters (U+E000-F8FF, planes 15
        -- and 16), which no standard font draws: a reader sees nothing, a
        -- box or a vendor's logo (U+F8FF is Apple's on Apple's systems),
        -- as their font has it, and names that look alike differ.
        E'[\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u200b\\u200e\\u200f\\u2060-\\u2065\\u206a-\\u206f'
        '\\u3164\\ue000-\\uf8ff\\ufeff\\uffa0\\ufff0-\\ufffb\\U0001bca0-\\U0001bca3\\U0001d159\\U0001d173-\\U0001d17a'
        '\\U000e0000-\\U000e002f\\U000e003a-\\U000e0060\\U000e007b-\\U000e007e\\U000e0080-\\U000e00ff'
        '\\U000e01f0-\\U000e0fff\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]'
        -- The braille blank (U+2800), a symbol drawn as an empty cell, as
        -- wide as a letter: refused but where braille writes a space, between
        -- two cells that show dots. "Rose" and "Rose" + U+2800 look alike,
        -- and it is no whitespace, so no .untrimmed.
        '|\\u2800(?<![\\u2801-\\u28ff]\\u2800)|\\u2800(?![\\u2801-\\u28ff])'
        -- The Mongolian vowel separator only between two Mongolian letters
        -- (before the final forms of a and e, where Mongolian writes it):
        -- between Latin letters it hides as ZWNJ would, with no use there.
        '|\\u180e(?<![\\u1820-\\u1878\\u1880-\\u18aa]\\u180e)|\\u180e(?![\\u1820-\\u1878\\u1880-\\u18aa])'
        -- An Egyptian hieroglyph format control (joiners, insertions,
        -- segments, enclosures: U+13430-1343F) only next to a hieroglyph or
        -- one of its marks, through a run of other such controls (a segment
        -- or an enclosure may begin or end a run): they shape a quadrat of
        -- signs and show nothing of their own, so "Rose" + U+13430 looked
        -- like "Rose" and passed (review).
        '|[\\U00013430-\\U0001343f](?<![\\U00013000-\\U0001342f\\U00013440-\\U000143ff][\\U00013430-\\U0001343f]{1,16})'
        '(?![\\U00013430-\\U0001343f]{0,15}[\\U00013000-\\U0001342f\\U00013440-\\U000143ff])'
        -- A joiner (ZWNJ, ZWJ) or a variation selector (Mongolian free
        -- variation selectors, U+FE00-FE0F, U+E0100-E01EF) at the start.
        '|^[\\u180b-\\u180d\\u180f\\u200c\\u200d\\ufe00-\\ufe0f\\U000e0100-\\U000e01ef]'
        -- A joiner after whitespace, a control or an invisible character
        -- other than a variation selector (the rainbow flag holds U+FE0F
        -- U+200D), or after an ASCII letter ...
        '|[\\u200c\\u200d](?<=['
            '\\u0001-\\u0020A-Za-z\\u007f-\\u00a0\\u00ad\\u034f\\u061c\\u115f\\u1160\\u1680\\u17b4\\u17b5\\u180e'
            '\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u206f\\u3000\\u3164\\ufeff\\uffa0\\ufff0-\\ufffb'
            '\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0000-\\U000e00ff\\U000e01f0-\\U000e0fff'
        '][\\u200c\\u200d])'
        -- ... or before any of them, or at the end. Next to an ASCII letter
        -- neither joins anything a reader sees: Persian, Indic and emoji
        -- sequences hold them between their own characters, and "Ro" ZWJ
        -- "se" shows as "Rose" and differs from it.
        '|[\\u200c\\u200d](?=['
            '\\u0001-\\u0020A-Za-z\\u007f-\\u00a0\\u00ad\\u034f\\u061c\\u115f\\u1160\\u1680\\u17b4\\u17b5\\u180b-\\u180f'
            '\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u206f\\u3000\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufffb'
            '\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0000-\\U000e0fff'
        ']|$)'
        -- A variation selector after whitespace, a control or an invisible
        -- character, another selector too; or after a Latin letter of
        -- ASCII, which no variation sequence of Unicode has for its base
        -- (ASCII bases are digits, # and *: keycaps, a slashed zero), so
        -- "Rose" + U+FE0F shows as "Rose" and differs from it.
        '|[\\u180b-\\u180d\\u180f\\ufe00-\\ufe0f\\U000e0100-\\U000e01ef](?<=['
            '\\u0001-\\u0020A-Za-z\\u007f-\\u00a0\\u00ad\\u034f\\u061c\\u115f\\u1160\\u1680\\u17b4\\u17b5\\u180b-\\u180f'
            '\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u206f\\u3000\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufffb'
            '\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0000-\\U000e0fff'
        '][\\u180b-\\u180d\\u180f\\ufe00-\\ufe0f\\U000e0100-\\U000e01ef])'
        -- A tag letter or digit that does not end a run of 1 to 7 after a
        -- black flag (U+1F3F4), or is not followed by a cancel tag within
        -- them; a cancel tag that does not end such a run.
        '|[\\U000e0030-\\U000e0039\\U000e0061-\\U000e007a](?<!\\U0001f3f4[\\U000e0030-\\U000e0039\\U000e0061-\\U000e007a]{1,7})'
        '|[\\U000e0030-\\U000e0039\\U000e0061-\\U000e007a](?![\\U000e0030-\\U000e0039\\U000e0061-\\U000e007a]{0,6}\\U000e007f)'
        '|\\U000e007f(?<!\\U0001f3f4[\\U000e0030-\\U000e0039\\U000e0061-\\U000e007a]{1,7}\\U000e007f)'
        -- And what is said above of an ASCII letter, of every Latin, Cyrillic
        -- and Greek letter (sync_private.script_class): "Rosé" + U+FE0F or
        -- "Ros" ZWJ "é" showed as "Rosé" and passed (tenth review). No
        -- variation sequence of Unicode has a letter of these scripts for its
        -- base, and a joiner joins none of them to anything a reader sees.
        || E'|[\\u200c\\u200d\\u180b-\\u180d\\u180f\\ufe00-\\ufe0f\\U000e0100-\\U000e01ef](?<=['
        || sync_private.script_class('latin') || sync_private.script_class('cyrillic')
        || sync_private.script_class('greek')
        || E'][\\u200c\\u200d\\u180b-\\u180d\\u180f\\ufe00-\\ufe0f\\U000e0100-\\U000e01ef])'
        || E'|[\\u200c\\u200d](?=['
        || sync_private.script_class('latin') || sync_private.script_class('cyrillic')
        || sync_private.script_class('greek') || '])';
$$;
comment on function sync_private.invisible_pattern() is
    'The regular expression of the <field>.invisible_character rule: where it first matches stands the first invisible character out of place (sync_private.first_invisible says which and why).';

-- sync_private.first_invisible
-- The first invisible format character of a text that stands out of place, or null.
create function sync_private.first_invisible(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- Invisible characters inside a text are bad data at rest: "Rose" and
    -- "Rose" + U+200B look alike, differ as names (no name.duplicate), miss
    -- each other in a search, and reach the application as they are. The
    -- class is Unicode's Default_Ignorable_Code_Point (what a renderer shows
    -- nothing for, assigned or reserved), with the interlinear annotation
    -- controls U+FFF9-FFFB, less the bidirectional embeddings, overrides and
    -- isolates, which <field>.bidi_control refuses first.
    --
    -- Refused wherever they stand, the direction marks (LRM, RLM, ALM) too:
    -- a mark makes no letter display elsewhere, yet a name that holds one
    -- differs from the same name without; the application sets direction by
    -- markup (<bdi>, dir="auto"), and a site that needs stored marks turns
    -- the rule down to a warning.
    --
    -- Allowed where writing systems need them, refused out of place (at the
    -- start, at the end, or next to whitespace, a control or another
    -- invisible character), so no name is refused for being Persian, Indic
    -- or emoji:
    -- - ZWNJ and ZWJ only between two visible characters, neither a Latin,
    --   Cyrillic or Greek letter: Persian and Indic words hold them between
    --   letters, and emoji sequences join emoji with ZWJ (a family:
    --   U+1F468 U+200D U+1F469 U+200D U+1F467), where a variation selector
    --   may stand before it (the rainbow flag: U+1F3F3 U+FE0F U+200D U+1F308).
    -- - variation selectors (U+FE00-FE0F, U+E0100-E01EF, the Mongolian free
    --   variation selectors) only right after a visible character, the one
    --   they choose a form of (a red heart U+2764 U+FE0F, an ideographic
    --   variant U+845B U+E0100), but a Latin, Cyrillic or Greek letter, which no variation
    --   sequence has for its base; a run of them is how data hides behind an
    --   emoji.
    -- - tags only as the flags of England, Scotland and Wales spell them: a
    --   black flag, 1 to 7 tag letters or digits (a subdivision: its region
    --   and up to 4 more), a cancel tag. Anywhere else tags spell ASCII that
    --   no reader sees ("ASCII smuggling").
    -- - the Mongolian vowel separator only between two Mongolian letters.
    -- - the braille blank (U+2800) only between two braille cells that show
    --   dots, where braille writes a space.
    -- - the Egyptian hieroglyph format controls (U+13430-1343F) only next
    --   to a hieroglyph, through a run of other such controls: they arrange
    --   signs in a quadrat, and are no default ignorable, but next to
    --   anything else show nothing.
    -- And, wherever they stand, two symbols that show nothing: the musical
    -- null notehead U+1D159, and the private-use characters (U+E000-F8FF,
    -- planes 15 and 16): no standard font draws one, so a reader sees
    -- nothing, a box or a vendor's logo, as their font has it.
    -- A name of nothing but invisible characters is name.blank, ranked before.
    select substring(p_text from sync_private.invisible_pattern());
$$;
comment on function sync_private.first_invisible(text) is
    'The first invisible character of a text that stands out of place, or null: Unicode''s default ignorable characters and the interlinear annotation controls (zero-width space, soft hyphen, byte order mark, word joiner, direction marks, Hangul fillers, tags...) but the bidirectional controls, the musical null notehead U+1D159, the private-use characters, and the braille blank U+2800 but between two braille cells. ZWNJ and ZWJ count only when not between two visible characters other than Latin, Cyrillic or Greek letters, the Mongolian vowel separator when not between two Mongolian letters, an Egyptian hieroglyph format control (U+13430-1343F) when no hieroglyph stands next to it through such controls, variation selectors when not right after a visible character other than a Latin, Cyrillic or Greek letter, tags outside an emoji flag: Persian, Indic, Mongolian, hieroglyphic and emoji names pass. The <field>.invisible_character rule.';

-- sync_private.mark_class
-- The bracket expression of the marks drawn on the character before them, for sync_private.stacked_marks.
create function sync_private.mark_class() returns text
    language sql
    immutable
    parallel safe
as $$
    -- Nonspacing (Mn) and enclosing (Me) marks, the two categories Unicode's
    -- security mechanisms count (UTS #39, 5.4), but the selectors and the
    -- combining grapheme joiner, drawn as nothing (invisible_character's);
    -- and the blocks of combining marks whole, unassigned code points
    -- included. Spacing marks (Mc) advance as a letter does and stack
    -- nothing. Spelled out by code point, as the other classes (PostgreSQL
    -- knows no Unicode property), generated by devtools/mark_class.py; redo it:
    -- .venv/bin/python -m devtools.mark_class --write
    select
        E'['
        '\\u0300-\\u034e\\u0350-\\u036f\\u0483-\\u0489\\u0591-\\u05bd\\u05bf\\u05c1-\\u05c2\\u05c4-\\u05c5\\u05c7'
        '\\u0610-\\u061a\\u064b-\\u065f\\u0670\\u06d6-\\u06dc\\u06df-\\u06e4\\u06e7-\\u06e8\\u06ea-\\u06ed\\u0711'
        '\\u0730-\\u074a\\u07a6-\\u07b0\\u07eb-\\u07f3\\u07fd\\u0816-\\u0819\\u081b-\\u0823\\u0825-\\u0827\\u0829-\\u082d'
        '\\u0859-\\u085b\\u0898-\\u089f\\u08ca-\\u08e1\\u08e3-\\u0902\\u093a\\u093c\\u0941-\\u0948\\u094d'
        '\\u0951-\\u0957\\u0962-\\u0963\\u0981\\u09bc\\u09c1-\\u09c4\\u09cd\\u09e2-\\u09e3\\u09fe'
        '\\u0a01-\\u0a02\\u0a3c\\u0a41-\\u0a42\\u0a47-\\u0a48\\u0a4b-\\u0a4d\\u0a51\\u0a70-\\u0a71\\u0a75'
        '\\u0a81-\\u0a82\\u0abc\\u0ac1-\\u0ac5\\u0ac7-\\u0ac8\\u0acd\\u0ae2-\\u0ae3\\u0afa-\\u0aff\\u0b01'
        '\\u0b3c\\u0b3f\\u0b41-\\u0b44\\u0b4d\\u0b55-\\u0b56\\u0b62-\\u0b63\\u0b82\\u0bc0'
        '\\u0bcd\\u0c00\\u0c04\\u0c3c\\u0c3e-\\u0c40\\u0c46-\\u0c48\\u0c4a-\\u0c4d\\u0c55-\\u0c56'
        '\\u0c62-\\u0c63\\u0c81\\u0cbc\\u0cbf\\u0cc6\\u0ccc-\\u0ccd\\u0ce2-\\u0ce3\\u0d00-\\u0d01'
        '\\u0d3b-\\u0d3c\\u0d41-\\u0d44\\u0d4d\\u0d62-\\u0d63\\u0d81\\u0dca\\u0dd2-\\u0dd4\\u0dd6'
        '\\u0e31\\u0e34-\\u0e3a\\u0e47-\\u0e4e\\u0eb1\\u0eb4-\\u0ebc\\u0ec8-\\u0ecd\\u0f18-\\u0f19\\u0f35'
        '\\u0f37\\u0f39\\u0f71-\\u0f7e\\u0f80-\\u0f84\\u0f86-\\u0f87\\u0f8d-\\u0f97\\u0f99-\\u0fbc\\u0fc6'
        '\\u102d-\\u1030\\u1032-\\u1037\\u1039-\\u103a\\u103d-\\u103e\\u1058-\\u1059\\u105e-\\u1060\\u1071-\\u1074\\u1082'
        '\\u1085-\\u1086\\u108d\\u109d\\u135d-\\u135f\\u1712-\\u1714\\u1732-\\u1733\\u1752-\\u1753\\u1772-\\u1773'
        '\\u17b4-\\u17b5\\u17b7-\\u17bd\\u17c6\\u17c9-\\u17d3\\u17dd\\u1885-\\u1886\\u18a9\\u1920-\\u1922'
        '\\u1927-\\u1928\\u1932\\u1939-\\u193b\\u1a17-\\u1a18\\u1a1b\\u1a56\\u1a58-\\u1a5e\\u1a60'
        '\\u1a62\\u1a65-\\u1a6c\\u1a73-\\u1a7c\\u1a7f\\u1ab0-\\u1b03\\u1b34\\u1b36-\\u1b3a\\u1b3c'
        '\\u1b42\\u1b6b-\\u1b73\\u1b80-\\u1b81\\u1ba2-\\u1ba5\\u1ba8-\\u1ba9\\u1bab-\\u1bad\\u1be6\\u1be8-\\u1be9'
        '\\u1bed\\u1bef-\\u1bf1\\u1c2c-\\u1c33\\u1c36-\\u1c37\\u1cd0-\\u1cd2\\u1cd4-\\u1ce0\\u1ce2-\\u1ce8\\u1ced'
        '\\u1cf4\\u1cf8-\\u1cf9\\u1dc0-\\u1dff\\u20d0-\\u20ff\\u2cef-\\u2cf1\\u2d7f\\u2de0-\\u2dff\\u302a-\\u302d'
        '\\u3099-\\u309a\\ua66f-\\ua672\\ua674-\\ua67d\\ua69e-\\ua69f\\ua6f0-\\ua6f1\\ua802\\ua806\\ua80b'
        '\\ua825-\\ua826\\ua82c\\ua8c4-\\ua8c5\\ua8e0-\\ua8f1\\ua8ff\\ua926-\\ua92d\\ua947-\\ua951\\ua980-\\ua982'
        '\\ua9b3\\ua9b6-\\ua9b9\\ua9bc-\\ua9bd\\ua9e5\\uaa29-\\uaa2e\\uaa31-\\uaa32\\uaa35-\\uaa36\\uaa43'
        '\\uaa4c\\uaa7c\\uaab0\\uaab2-\\uaab4\\uaab7-\\uaab8\\uaabe-\\uaabf\\uaac1\\uaaec-\\uaaed'
        '\\uaaf6\\uabe5\\uabe8\\uabed\\ufb1e\\ufe20-\\ufe2f\\U000101fd\\U000102e0'
        '\\U00010376-\\U0001037a\\U00010a01-\\U00010a03\\U00010a05-\\U00010a06\\U00010a0c-\\U00010a0f\\U00010a38-\\U00010a3a\\U00010a3f\\U00010ae5-\\U00010ae6\\U00010d24-\\U00010d27'
        '\\U00010eab-\\U00010eac\\U00010f46-\\U00010f50\\U00010f82-\\U00010f85\\U00011001\\U00011038-\\U00011046\\U00011070\\U00011073-\\U00011074\\U0001107f-\\U00011081'
        '\\U000110b3-\\U000110b6\\U000110b9-\\U000110ba\\U000110c2\\U00011100-\\U00011102\\U00011127-\\U0001112b\\U0001112d-\\U00011134\\U00011173\\U00011180-\\U00011181'
        '\\U000111b6-\\U000111be\\U000111c9-\\U000111cc\\U000111cf\\U0001122f-\\U00011231\\U00011234\\U00011236-\\U00011237\\U0001123e\\U000112df'
        '\\U000112e3-\\U000112ea\\U00011300-\\U00011301\\U0001133b-\\U0001133c\\U00011340\\U00011366-\\U0001136c\\U00011370-\\U00011374\\U00011438-\\U0001143f\\U00011442-\\U00011444'
        '\\U00011446\\U0001145e\\U000114b3-\\U000114b8\\U000114ba\\U000114bf-\\U000114c0\\U000114c2-\\U000114c3\\U000115b2-\\U000115b5\\U000115bc-\\U000115bd'
        '\\U000115bf-\\U000115c0\\U000115dc-\\U000115dd\\U00011633-\\U0001163a\\U0001163d\\U0001163f-\\U00011640\\U000116ab\\U000116ad\\U000116b0-\\U000116b5'
        '\\U000116b7\\U0001171d-\\U0001171f\\U00011722-\\U00011725\\U00011727-\\U0001172b\\U0001182f-\\U00011837\\U00011839-\\U0001183a\\U0001193b-\\U0001193c\\U0001193e'
        '\\U00011943\\U000119d4-\\U000119d7\\U000119da-\\U000119db\\U000119e0\\U00011a01-\\U00011a0a\\U00011a33-\\U00011a38\\U00011a3b-\\U00011a3e\\U00011a47'
        '\\U00011a51-\\U00011a56\\U00011a59-\\U00011a5b\\U00011a8a-\\U00011a96\\U00011a98-\\U00011a99\\U00011c30-\\U00011c36\\U00011c38-\\U00011c3d\\U00011c3f\\U00011c92-\\U00011ca7'
        '\\U00011caa-\\U00011cb0\\U00011cb2-\\U00011cb3\\U00011cb5-\\U00011cb6\\U00011d31-\\U00011d36\\U00011d3a\\U00011d3c-\\U00011d3d\\U00011d3f-\\U00011d45\\U00011d47'
        '\\U00011d90-\\U00011d91\\U00011d95\\U00011d97\\U00011ef3-\\U00011ef4\\U00016af0-\\U00016af4\\U00016b30-\\U00016b36\\U00016f4f\\U00016f8f-\\U00016f92'
        '\\U00016fe4\\U0001bc9d-\\U0001bc9e\\U0001cf00-\\U0001cf2d\\U0001cf30-\\U0001cf46\\U0001d167-\\U0001d169\\U0001d17b-\\U0001d182\\U0001d185-\\U0001d18b\\U0001d1aa-\\U0001d1ad'
        '\\U0001d242-\\U0001d244\\U0001da00-\\U0001da36\\U0001da3b-\\U0001da6c\\U0001da75\\U0001da84\\U0001da9b-\\U0001da9f\\U0001daa1-\\U0001daaf\\U0001e000-\\U0001e006'
        '\\U0001e008-\\U0001e018\\U0001e01b-\\U0001e021\\U0001e023-\\U0001e024\\U0001e026-\\U0001e02a\\U0001e130-\\U0001e136\\U0001e2ae\\U0001e2ec-\\U0001e2ef\\U0001e8d0-\\U0001e8d6'
        '\\U0001e944-\\U0001e94a'
        ']';
$$;
comment on function sync_private.mark_class() is
    'The regular expression bracket expression of the combining marks drawn on the character before them: nonspacing and enclosing marks (Mn, Me) but those drawn as nothing (variation selectors, the combining grapheme joiner), generated from Unicode data by devtools/mark_class.py. The <field>.stacked_marks rule.';

-- sync_private.stacked_marks_pattern
-- The regular expression of the <field>.stacked_marks rule: more than p_limit combining marks in a row.
create function sync_private.stacked_marks_pattern(p_limit numeric) returns text
    language sql
    immutable
    parallel safe
as $$
    -- A bound of PostgreSQL's regular expressions goes up to 255; the
    -- rules' parameter_max keeps the limit far below.
    select sync_private.mark_class() || '{' || (p_limit + 1)::integer || ',}';
$$;
comment on function sync_private.stacked_marks_pattern(numeric) is
    'The regular expression of the <field>.stacked_marks rule: a run of more than p_limit combining marks (sync_private.mark_class); where it first matches starts the first run too long, and the match is all of it. Null for a null limit.';

-- sync_private.stacked_marks
-- The first run of more than p_limit combining marks in a row of a text, or null.
create function sync_private.stacked_marks(p_text text, p_limit numeric) returns text
    language sql
    immutable
    parallel safe
as $$
    -- Marks in a row are drawn on one character, one over the other: "o"
    -- with dozens of U+0300-036F, or "Rose" with ten enclosing circles
    -- U+20DD ("Zalgo" text), grows over the lines above and below it in
    -- the application. Legitimate text stacks few: Vietnamese in NFD and
    -- pinyin 2, Thai and Devanagari 2 or 3, Tibetan 3, pointed Biblical
    -- Hebrew up to 5 on one letter (shin: its dot, dagesh, vowel, meteg,
    -- accent). A text of nothing but marks is name.blank, ranked before.
    -- Regular expressions, no loop over the characters. An ASCII text holds
    -- no mark, and counting its bytes is all it costs; then a constant
    -- pattern, two marks in a row, which the planner folds once: only a
    -- text that has two (NFD, Hebrew, Thai...) pays for the pattern made of
    -- the limit, at every row: 2 us a short name without the constant one,
    -- 0.3 us with it (200,000 accented names, measured).
    -- So the limit is 1 or more, as the rules' parameter_min says. The
    -- match is the whole run: the leftmost match of {n,} starts where its
    -- run does. A null limit (the rule is unknown) gives null.
    select case when octet_length(p_text) <> char_length(p_text)
                     and p_text ~ (sync_private.mark_class() || '{2}')
                then substring(p_text from sync_private.stacked_marks_pattern(p_limit)) end;
$$;
comment on function sync_private.stacked_marks(text, numeric) is
    'The first run of more than p_limit combining marks in a row (sync_private.mark_class) of a text, all of it, or null: marks in a row stack on one character, and a long stack is drawn over the text around it ("Zalgo" text). The <field>.stacked_marks rule.';

-- sync_private.mixed_script_pattern
-- The regular expression of the <field>.mixed_script rule: a word that holds letters of two of Latin, Cyrillic and Greek.
create function sync_private.mixed_script_pattern() returns text
    language sql
    immutable
    parallel safe
as $$
    -- The match is the whole word: the leftmost match starts where the
    -- word does (its letters before the mix are word characters too) and
    -- runs to its end, greedy.
    select '[' || sync_private.script_class('word') || ']*(?:'
        || '[' || sync_private.script_class('latin') || '][' || sync_private.script_class('word') || ']*'
        || '[' || sync_private.script_class('cyrillic') || sync_private.script_class('greek') || ']'
        || '|[' || sync_private.script_class('cyrillic') || sync_private.script_class('greek') || ']'
        || '[' || sync_private.script_class('word') || ']*[' || sync_private.script_class('latin') || ']'
        || '|[' || sync_private.script_class('cyrillic') || '][' || sync_private.script_class('word') || ']*'
        || '[' || sync_private.script_class('greek') || ']'
        || '|[' || sync_private.script_class('greek') || '][' || sync_private.script_class('word') || ']*'
        || '[' || sync_private.script_class('cyrillic') || ']'
        || ')[' || sync_private.script_class('word') || ']*';
$$;
comment on function sync_private.mixed_script_pattern() is
    'The regular expression of the <field>.mixed_script rule: a word (a run of letters and marks, sync_private.script_class) that holds letters of two of Latin, Cyrillic and Greek; where it first matches starts the first such word, and the match is all of it.';

-- sync_private.mixed_script
-- The first word of a text that mixes letters of two of Latin, Cyrillic and Greek, or null.
create function sync_private.mixed_script(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- "Rоse" with a Cyrillic о (U+043E), or "Ваnаna", Cyrillic В and а
    -- among Latin n: each looks like a Latin word and differs from it, and
    -- NFKC folds none to Latin, so no name.lookalike either. Unicode's
    -- "highly restrictive" identifiers refuse exactly such words (UTS #39,
    -- 5.2), Latin beside Han, Kana or Hangul allowed: this rule judges
    -- each word alone, so a Russian or Greek word beside a Latin one
    -- passes ("Rose Роза", "Eau de Parfum Ω"), as "Nº5", "Crème",
    -- Vietnamese, Turkish ı and German ß do. A word is a run of letters and
    -- marks; digits, punctuation, symbols and spaces end one. Marks carry no
    -- script here, letters do. The mathematical letters (𝐑) and the micro
    -- sign µ are of no script (Common), as in Scripts.txt. A word mixing
    -- Cyrillic with Greek ("Рοза" with a Greek ο) is one too: it passed
    -- until the tenth review, though UTS #39 refuses it alike and
    -- name.lookalike folds both to Latin only where a letter looks Latin.
    -- An ASCII text holds no Cyrillic or Greek letter, and counting its
    -- bytes is all it costs; then a constant class of the Cyrillic and
    -- Greek letters, which the planner folds once: only a text that holds
    -- one pays for the word pattern.
    select case when octet_length(p_text) <> char_length(p_text)
                     and p_text ~ ('[' || sync_private.script_class('cyrillic')
                                   || sync_private.script_class('greek') || ']')
                then substring(p_text from sync_private.mixed_script_pattern()) end;
$$;
comment on function sync_private.mixed_script(text) is
    'The first word (a run of letters and marks) of a text that mixes letters of two of Latin, Cyrillic and Greek, all of it, or null: such a word looks like a word of one script and differs from it ("Rоse" with a Cyrillic о, "Рοза" with a Greek ο). Words of one script pass, whatever the words beside them. The <field>.mixed_script rule.';

-- sync_private.script_of
-- The script of the first Latin, Cyrillic or Greek letter of a text, for messages.
create function sync_private.script_of(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    select case when substring(p_text from '[' || sync_private.script_class('latin') || sync_private.script_class('cyrillic')
                                   || sync_private.script_class('greek') || ']')
                     ~ ('[' || sync_private.script_class('latin') || ']') then 'Latin'
                when substring(p_text from '[' || sync_private.script_class('cyrillic')
                                   || sync_private.script_class('greek') || ']')
                     ~ ('[' || sync_private.script_class('cyrillic') || ']') then 'Cyrillic'
                when p_text ~ ('[' || sync_private.script_class('greek') || ']') then 'Greek' end;
$$;
comment on function sync_private.script_of(text) is
    'Latin, Cyrillic or Greek: the script of the first letter of a text that is of one of them (sync_private.script_class), or null. For the sentence of <field>.mixed_script.';

-- sync_private.second_script_letter
-- In a word that mixes scripts, the first letter of the script that comes second.
create function sync_private.second_script_letter(p_word text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- Its first letter of another of the three scripts than the one it
    -- starts in.
    select case sync_private.script_of(p_word)
        when 'Latin' then substring(p_word from '[' || sync_private.script_class('cyrillic')
                                                 || sync_private.script_class('greek') || ']')
        when 'Cyrillic' then substring(p_word from '[' || sync_private.script_class('latin')
                                                    || sync_private.script_class('greek') || ']')
        else substring(p_word from '[' || sync_private.script_class('latin')
                                       || sync_private.script_class('cyrillic') || ']') end;
$$;
comment on function sync_private.second_script_letter(text) is
    'In a word that mixes letters of two of Latin, Cyrillic and Greek (sync_private.mixed_script), the first letter of the script that comes second: its first letter of another of the three than the one it starts in. For the sentence of <field>.mixed_script.';

-- sync_private.starts_with_mark
-- True when a text starts with a combining mark: it is drawn on whatever stands before the text.
create function sync_private.starts_with_mark(p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- "\u0301Rose" puts its acute on whatever the application shows before
    -- the name (the end of a label, the name before it in a list), and a
    -- text of nothing but marks is name.blank, ranked before. The marks are
    -- those stacked_marks counts (sync_private.mark_class: nonspacing and
    -- enclosing, drawn on the character before them); a selector or the
    -- combining grapheme joiner at the start is invisible_character's.
    -- Spacing marks advance as a letter does. An ASCII text starts with no
    -- mark; another tests its first character only.
    select octet_length(p_text) <> char_length(p_text)
        and left(p_text, 1) ~ sync_private.mark_class();
$$;
comment on function sync_private.starts_with_mark(text) is
    'True when a text starts with a combining mark (sync_private.mark_class: nonspacing or enclosing), which is drawn on whatever stands before the text on screen. The <field>.leading_mark rule.';

-- sync_private.code_point
-- A character as U+XXXX, for messages.
create function sync_private.code_point(p_char text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- At least four digits, and all of them: lpad() cuts a longer text to
    -- its length, which made U+E0069 U+E006.
    select 'U+' || upper(case when ascii(p_char) < 4096 then lpad(to_hex(ascii(p_char)), 4, '0')
                              else to_hex(ascii(p_char)) end);
$$;
comment on function sync_private.code_point(text) is
    'A character written as U+XXXX (U+XXXXX beyond the first 65,536), for messages.';

-- sync_private.current_rules
-- The rules in force: their version and every rule's severity, parameter and reach.
create function sync_private.current_rules(out version bigint, out rules jsonb)
    language plpgsql
    stable
as $$
begin
    -- The stored rules are compressed (about 3 KB in 700 bytes), and every
    -- lookup of a rule's severity or parameter in the stored value would
    -- decompress it again: 6 per text value, 26 us where 4 will do
    -- (measured). The concatenation hands callers a value in plain form.
    -- PL/pgSQL, not SQL: a SQL function that returns a record is never
    -- inlined, so its query was parsed and planned again at every merge.
    select v.version, v.rules || '{}'::jsonb
    into version, rules
    from sync.rule_version as v
    order by v.version desc
    limit 1;
end;
$$;
comment on function sync_private.current_rules() is
    'The latest sync.rule_version: its number and the rules as {code: {severity, parameter, applies_to}}.';

-- sync_private.severity
-- A rule's severity in a set of rules, or null when it is off (or unknown).
create function sync_private.severity(p_rules jsonb, p_code text) returns text
    language sql
    immutable
    parallel safe
as $$
    select nullif(p_rules #>> array[p_code, 'severity'], 'off');
$$;
comment on function sync_private.severity(jsonb, text) is
    'error or warning for a rule that is on, null for one that is off or does not exist.';

-- sync_private.parameter
-- A rule's parameter in a set of rules.
create function sync_private.parameter(p_rules jsonb, p_code text) returns numeric
    language sql
    immutable
    parallel safe
as $$
    select (p_rules #>> array[p_code, 'parameter'])::numeric;
$$;
comment on function sync_private.parameter(jsonb, text) is
    'The parameter of a rule in a set of rules (a limit), or null.';

-- sync_private.broken
-- One reason as an array, for a rule that is on; an empty array for one that is off.
create function sync_private.broken(p_rules jsonb, p_code text, p_field text, p_message text) returns jsonb
    language sql
    stable  -- so that it is inlined: see sync_private.reason
    parallel safe
as $$
    select case when sync_private.severity(p_rules, p_code) is null then '[]'::jsonb
                else jsonb_build_array(sync_private.reason(p_code, p_field, p_message,
                                                           sync_private.severity(p_rules, p_code))) end;
$$;
comment on function sync_private.broken(jsonb, text, text, text) is
    'The reason of a broken rule as a one-element array, with the rule''s severity; an empty array when the rule is off.';

-- sync_private.is_unnormalized
-- True when a text is not in Unicode normal form C (NFC).
create function sync_private.is_unnormalized(p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- "Rose" with a combining acute (NFD, as macOS and some editors write it)
    -- shows as "Rosé" but is another text: it is no name.duplicate of the
    -- composed one, and a search or a join on the composed one misses it.
    -- An ASCII text is in every normal form, and counting its bytes is all
    -- it costs: the check reads every character (about 2 us for 90,
    -- measured), so it runs on the other texts only.
    select octet_length(p_text) <> char_length(p_text) and not p_text is nfc normalized;
$$;
comment on function sync_private.is_unnormalized(text) is
    'True when a text is not in Unicode normal form C (NFC): it looks like its composed form, normalize(text), but compares, sorts and searches as another text. The <field>.not_normalized rule.';

-- sync_private.first_unnormalized
-- Where a text first differs from its normal form C, or null: for messages.
create function sync_private.first_unnormalized(p_text text) returns integer
    language sql
    immutable
    parallel safe
as $$
    -- The first character that composing changes: "Rose" + U+0301 at 4,
    -- its "e". Called only for a text that breaks <field>.not_normalized.
    select min(i)
    from (select normalize(p_text, nfc) as composed) as n,
         generate_series(1, char_length(p_text)) as i
    where substr(p_text, i, 1) is distinct from substr(n.composed, i, 1);
$$;
comment on function sync_private.first_unnormalized(text) is
    'The position of the first character of a text that Unicode normal form C changes (where it and normalize(text) first differ), or null when it is in NFC. For the sentence of description.not_normalized.';

-- sync_private.is_untrimmed
-- True when a text starts or ends with whitespace (Unicode White_Space).
create function sync_private.is_untrimmed(p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    select p_text ~ E'^[\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]|[\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]$';
$$;
comment on function sync_private.is_untrimmed(text) is
    'True when a text starts or ends with a whitespace character (Unicode White_Space, the same in every locale). The <field>.untrimmed rule.';

-- sync_private.whitespace_run
-- A run of whitespace for messages: "a space", "2 spaces", or its characters as U+XXXX.
create function sync_private.whitespace_run(p_run text) returns text
    language plpgsql
    immutable
    parallel safe
as $$
declare
    v_said text;
begin
    -- Spaces are counted (the catalog's descriptions end in two); any other
    -- run is spelled out, its first 8 characters, since a no-break or an
    -- ideographic space looks like a space and a tab like several.
    -- PL/pgSQL: a SQL function with a subquery is not inlined, and called
    -- from one it was planned again at every call (300 us, measured).
    if p_run is null then
        return null;
    elsif p_run ~ '^ +$' then
        return case when char_length(p_run) = 1 then 'a space' else char_length(p_run) || ' spaces' end;
    end if;
    for i in 1 .. least(char_length(p_run), 8) loop
        v_said := concat_ws(' ', v_said, sync_private.code_point(substr(p_run, i, 1)));
    end loop;
    return v_said || case when char_length(p_run) > 8 then format(' and %s more', char_length(p_run) - 8) else '' end;
end;
$$;
comment on function sync_private.whitespace_run(text) is
    'A run of whitespace as a message says it: "a space", "N spaces", or its first 8 characters as U+XXXX and how many more. For <field>.untrimmed.';

-- sync_private.untrimmed_ends
-- Which end of a text is whitespace, and which: the end of the sentence of <field>.untrimmed.
create function sync_private.untrimmed_ends(p_text text) returns text
    language plpgsql
    immutable
    parallel safe
as $$
declare
    v_start text;
    v_end text;
begin
    -- "starts or ends with whitespace", with the value cut to 40
    -- characters, left a DBA unable to tell the CMS's two trailing spaces
    -- (every description of the catalog) from a leading tab or a trailing
    -- no-break space (hostile review). The class is sync_private.is_untrimmed's.
    -- Written for every CMS delta (each description ends in two spaces):
    -- 5 us (200,000 in one session), where the merge spends 100 to 370 on
    -- a delivery (measured).
    v_start := substring(p_text from E'^[\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+');
    if v_start = p_text then
        return 'is only whitespace: ' || sync_private.whitespace_run(p_text);
    end if;
    v_end := substring(p_text from E'[\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+$');
    return concat_ws(' and ', 'starts with ' || sync_private.whitespace_run(v_start),
                              'ends with ' || sync_private.whitespace_run(v_end));
end;
$$;
comment on function sync_private.untrimmed_ends(text) is
    'Which end of a text is whitespace and what it is ("starts with U+0009 and ends with 2 spaces", "is only whitespace: 3 spaces"); an empty text for a trimmed one. The end of the sentence of <field>.untrimmed.';

-- sync_private.normal_form_overflow
-- What a <field>.not_normalized sentence adds when the text's normal form C is longer than its column holds.
create function sync_private.normal_form_overflow(p_text text, p_column_length integer) returns text
    language sql
    immutable
    parallel safe
as $$
    -- Normal form C can lengthen a text: a composition exclusion such as
    -- U+0958 (Devanagari qa) is written as two characters, a few musical
    -- symbols as three. The fix the rule offers (sync.rule.description,
    -- "normalize(name)") then ran into "value too long for type character
    -- varying(150)", a raw error a DBA could not place (hostile review).
    -- The offered fix now leaves such a row alone (its char_length guard),
    -- and its sentence says why: p_column_length is the column's
    -- (public.fragrances: name varchar(150), description varchar(1024),
    -- migration 0001; tests/test_dba_verbs.py reads them from the catalog).
    select case when char_length(normalize(p_text, nfc)) > p_column_length
        then format('; its normal form C has %s characters, more than the %s the column holds, so normalize() cannot be stored: shorten it in the CMS',
                    char_length(normalize(p_text, nfc)), p_column_length)
        else '' end;
$$;
comment on function sync_private.normal_form_overflow(text, integer) is
    'For the sentence of <field>.not_normalized: when the text''s normal form C (which can be longer than the text) has more than p_column_length characters, the clause that says so and that the change must come from the CMS; else an empty text.';

-- sync_private.parse_body
-- Decodes raw bytes into jsonb, or says in reasons why they cannot be a change.
create function sync_private.parse_body(p_body bytea, out payload jsonb, out reasons jsonb)
    language plpgsql
    stable
as $$
declare
    v_text text;
    v_detail text;
    v_context text;
    v_keys bigint;
    v_unique_keys bigint;
begin
    reasons := '[]';
    if p_body is null or length(p_body) = 0 then
        reasons := jsonb_build_array(sync_private.reason('body.empty', null,
            'body is empty; expected a JSON object such as {"fragrance_id": 1, "name": "..."}'));
        return;
    end if;

    begin
        v_text := convert_from(p_body, 'UTF8');
    exception when others then
        reasons := jsonb_build_array(sync_private.reason('body.not_utf8', null,
            format('body is not valid UTF-8 (%s); the raw bytes are kept in sync.inbox.body', sqlerrm)));
        return;
    end;

    begin
        payload := v_text::jsonb;
    exception
        when untranslatable_character then
            reasons := jsonb_build_array(sync_private.reason('body.unsupported_unicode', null,
                E'body holds \\u0000, which PostgreSQL cannot store in JSON; the raw bytes are kept in sync.inbox.body'));
            return;
        when numeric_value_out_of_range then
            -- Valid JSON, but jsonb holds its numbers as numeric: 1e1000000 is beyond it.
            reasons := jsonb_build_array(sync_private.reason('body.number_out_of_range', null,
                'body holds a number beyond what the database can hold (up to 131,072 digits before the point and 16,383 after); the raw bytes are kept in sync.inbox.body'));
            return;
        when statement_too_complex then
            -- Valid JSON nested past what the server's stack reads (max_stack_depth,
            -- over 10,000 levels by default): "not valid JSON", said before, sent a
            -- DBA looking for a syntax error that is not there.
            reasons := jsonb_build_array(sync_private.reason('body.not_json', null,
                format('body nests deeper than the database reads (%s); the raw bytes are kept in sync.inbox.body', sqlerrm)));
            return;
        when others then
            -- PostgreSQL's detail quotes the offending token whole ('Token
            -- "..." is invalid.'), and a token runs to the next delimiter: an
            -- unterminated string or a run of digits made a 1 MiB body's
            -- reason 1 MiB, stored beside the body and shown on every
            -- listing of the quarantine. The token is cut to 40 characters
            -- (what sync_private.show keeps of a value), and the line it is
            -- on, from the error's context, says where to look.
            get stacked diagnostics v_detail = pg_exception_detail, v_context = pg_exception_context;
            -- The token is the sender's text: what it hides is escaped as
            -- sync_private.show escapes a value (a right-to-left override
            -- in it reordered the DBA's line; hostile review).
            reasons := jsonb_build_array(sync_private.reason('body.not_json', null,
                format('body is not valid JSON%s: %s',
                    coalesce(' at line ' || substring(v_context from E'JSON data, line (\\d+)'), ''),
                    sync_private.hidden_escaped(
                        regexp_replace(coalesce(nullif(v_detail, ''), sqlerrm),
                                       '^([^"]*")(.{40}).+("[^"]*)$', E'\\1\\2...\\3', 's'), false))));
            return;
    end;

    -- jsonb silently keeps the last of duplicate keys; an edit that names a
    -- field twice is ambiguous, so we refuse to guess which value was meant.
    if jsonb_typeof(payload) = 'object' then
        select count(*), count(distinct k) into v_keys, v_unique_keys
        from json_object_keys(v_text::json) as k;
        if v_keys <> v_unique_keys then
            -- The keys as sync_private.show writes a value (quoted, cut to 40
            -- characters), the first 20 by name, the rest counted: they were
            -- written whole, every one, so a reason could be as long as its body.
            reasons := jsonb_build_array(sync_private.reason('body.duplicate_key', null,
                format('body names %s more than once; each field may appear once',
                    (select string_agg(sync_private.show(to_jsonb(d.k)), ', ' order by d.k)
                            || case when max(d.total) > 20 then format(' (and %s more)', max(d.total) - 20) else '' end
                     from (select r.k, r.total
                           from (select k, count(*) over () as total
                                 from json_object_keys(v_text::json) as k
                                 group by k having count(*) > 1) as r
                           order by r.k
                           limit 20) as d))));
        end if;
    end if;
end;
$$;
comment on function sync_private.parse_body(bytea) is
    'Decodes a delivery body (bytea) as UTF-8 JSON into jsonb; reasons say why it cannot be (body.empty, body.not_utf8, body.unsupported_unicode, body.number_out_of_range, body.not_json, body.duplicate_key).';

-- sync_private.unassigned_class
-- The bracket expression of the code points Unicode assigns no character to, for sync_private.first_unassigned.
create function sync_private.unassigned_class() returns text
    language sql
    immutable
    parallel safe
as $$
    -- General_Category Cn as of Unicode 18 (the regex package's tables:
    -- Python 3.11's own are Unicode 14, and would call every emoji and CJK
    -- character assigned since unassigned), but the noncharacters, which
    -- <field>.control_character reports. Spelled out by code point, as the
    -- other classes (PostgreSQL knows no Unicode property), generated by
    -- devtools/unassigned_class.py; redo it after a new Unicode:
    -- .venv/bin/python -m devtools.unassigned_class --write
    select
        E'['
        '\\u0378-\\u0379\\u0380-\\u0383\\u038b\\u038d\\u03a2\\u0530\\u0557\\u0590'
        '\\u05ca-\\u05cf\\u05eb-\\u05ee\\u05f5-\\u05ff\\u070e\\u074b-\\u074c\\u07b2-\\u07bf\\u07fb-\\u07fc\\u082e-\\u082f'
        '\\u083f\\u085c-\\u085d\\u085f\\u086b-\\u086f\\u0892-\\u0896\\u0984\\u098d-\\u098e\\u0991-\\u0992'
        '\\u09a9\\u09b1\\u09b3-\\u09b5\\u09ba-\\u09bb\\u09c5-\\u09c6\\u09c9-\\u09ca\\u09cf-\\u09d6\\u09d8-\\u09db'
        '\\u09de\\u09e4-\\u09e5\\u09ff-\\u0a00\\u0a04\\u0a0b-\\u0a0e\\u0a11-\\u0a12\\u0a29\\u0a31'
        '\\u0a34\\u0a37\\u0a3a-\\u0a3b\\u0a3d\\u0a43-\\u0a46\\u0a49-\\u0a4a\\u0a4e-\\u0a50\\u0a52-\\u0a58'
        '\\u0a5d\\u0a5f-\\u0a65\\u0a77-\\u0a80\\u0a84\\u0a8e\\u0a92\\u0aa9\\u0ab1'
        '\\u0ab4\\u0aba-\\u0abb\\u0ac6\\u0aca\\u0ace-\\u0acf\\u0ad1-\\u0adf\\u0ae4-\\u0ae5\\u0af2-\\u0af8'
        '\\u0b00\\u0b04\\u0b0d-\\u0b0e\\u0b11-\\u0b12\\u0b29\\u0b31\\u0b34\\u0b3a-\\u0b3b'
        '\\u0b45-\\u0b46\\u0b49-\\u0b4a\\u0b4e-\\u0b52\\u0b58-\\u0b5b\\u0b5e\\u0b64-\\u0b65\\u0b78-\\u0b81\\u0b84'
        '\\u0b8b-\\u0b8d\\u0b91\\u0b96-\\u0b98\\u0b9b\\u0b9d\\u0ba0-\\u0ba2\\u0ba5-\\u0ba7\\u0bab-\\u0bad'
        '\\u0bba-\\u0bbd\\u0bc3-\\u0bc5\\u0bc9\\u0bce-\\u0bcf\\u0bd1-\\u0bd6\\u0bd8-\\u0be5\\u0bfb-\\u0bff\\u0c0d'
        '\\u0c11\\u0c29\\u0c3a-\\u0c3b\\u0c45\\u0c49\\u0c4e-\\u0c54\\u0c57\\u0c5b'
        '\\u0c5e-\\u0c5f\\u0c64-\\u0c65\\u0c70-\\u0c76\\u0c8d\\u0c91\\u0ca9\\u0cb4\\u0cba-\\u0cbb'
        '\\u0cc5\\u0cc9\\u0cce-\\u0cd4\\u0cd7-\\u0cdb\\u0cdf\\u0ce4-\\u0ce5\\u0cf0\\u0cf4-\\u0cff'
        '\\u0d0d\\u0d11\\u0d45\\u0d49\\u0d50-\\u0d53\\u0d64-\\u0d65\\u0d80\\u0d84'
        '\\u0d97-\\u0d99\\u0db2\\u0dbc\\u0dbe-\\u0dbf\\u0dc7-\\u0dc9\\u0dcb-\\u0dce\\u0dd5\\u0dd7'
        '\\u0de0-\\u0de5\\u0df0-\\u0df1\\u0df5-\\u0e00\\u0e3b-\\u0e3e\\u0e5c-\\u0e80\\u0e83\\u0e85\\u0e8b'
        '\\u0ea4\\u0ea6\\u0ebe-\\u0ebf\\u0ec5\\u0ec7\\u0ecf\\u0eda-\\u0edb\\u0ee0-\\u0eff'
        '\\u0f48\\u0f6d-\\u0f70\\u0f98\\u0fbd\\u0fcd\\u0fdb-\\u0fff\\u10c6\\u10c8-\\u10cc'
        '\\u10ce-\\u10cf\\u1249\\u124e-\\u124f\\u1257\\u1259\\u125e-\\u125f\\u1289\\u128e-\\u128f'
        '\\u12b1\\u12b6-\\u12b7\\u12bf\\u12c1\\u12c6-\\u12c7\\u12d7\\u1311\\u1316-\\u1317'
        '\\u135b-\\u135c\\u137d-\\u137f\\u139a-\\u139f\\u13f6-\\u13f7\\u13fe-\\u13ff\\u169d-\\u169f\\u16f9-\\u16ff\\u1716-\\u171e'
        '\\u1737-\\u173f\\u1754-\\u175f\\u176d\\u1771\\u1774-\\u177f\\u17de-\\u17df\\u17ea-\\u17ef\\u17fa-\\u17ff'
        '\\u181a-\\u181f\\u1879-\\u187f\\u18ab-\\u18af\\u18f6-\\u18ff\\u191f\\u192c-\\u192f\\u193c-\\u193f\\u1941-\\u1943'
        '\\u196e-\\u196f\\u1975-\\u197f\\u19ac-\\u19af\\u19ca-\\u19cf\\u19db-\\u19dd\\u1a1c-\\u1a1d\\u1a5f\\u1a7d-\\u1a7e'
        '\\u1a8a-\\u1a8f\\u1a9a-\\u1a9f\\u1aae-\\u1aaf\\u1af1-\\u1aff\\u1b4d\\u1bf4-\\u1bfb\\u1c38-\\u1c3a\\u1c4a-\\u1c4c'
        '\\u1c8b-\\u1c8f\\u1cbb-\\u1cbc\\u1cc8-\\u1ccf\\u1cfb-\\u1cff\\u1f16-\\u1f17\\u1f1e-\\u1f1f\\u1f46-\\u1f47\\u1f4e-\\u1f4f'
        '\\u1f58\\u1f5a\\u1f5c\\u1f5e\\u1f7e-\\u1f7f\\u1fb5\\u1fc5\\u1fd4-\\u1fd5'
        '\\u1fdc\\u1ff0-\\u1ff1\\u1ff5\\u1fff\\u2065\\u2072-\\u2073\\u20c5-\\u20cf\\u20f1-\\u20ff'
        '\\u218c-\\u218f\\u242a-\\u243f\\u244b-\\u245f\\u2b74-\\u2b75\\u2cf4-\\u2cf8\\u2d26\\u2d28-\\u2d2c\\u2d2e-\\u2d2f'
        '\\u2d68-\\u2d6e\\u2d71-\\u2d7e\\u2d97-\\u2d9f\\u2da7\\u2daf\\u2db7\\u2dbf\\u2dc7'
        '\\u2dcf\\u2dd7\\u2ddf\\u2e5e-\\u2e5f\\u2e64-\\u2e7f\\u2e9a\\u2ef4-\\u2eff\\u2fd6-\\u2fef'
        '\\u3040\\u3097-\\u3098\\u3100-\\u3104\\u3130\\u318f\\u31e6-\\u31ee\\u321f\\ua48d-\\ua48f'
        '\\ua4c7-\\ua4cf\\ua62c-\\ua63f\\ua6f8-\\ua6ff\\ua7de-\\ua7e1\\ua7e3-\\ua7f0\\ua82d-\\ua82f\\ua83a-\\ua83f\\ua878-\\ua87f'
        '\\ua8c6-\\ua8cd\\ua8da-\\ua8df\\ua954-\\ua95e\\ua97d-\\ua97f\\ua9ce\\ua9da-\\ua9dd\\ua9ff\\uaa37-\\uaa3f'
        '\\uaa4e-\\uaa4f\\uaa5a-\\uaa5b\\uaac3-\\uaada\\uaaf7-\\uab00\\uab07-\\uab08\\uab0f-\\uab10\\uab17-\\uab1f\\uab27'
        '\\uab2f\\uab6e-\\uab6f\\uabee-\\uabef\\uabfa-\\uabff\\ud7a4-\\ud7af\\ud7c7-\\ud7ca\\ud7fc-\\ud7ff\\ufa6e-\\ufa6f'
        '\\ufada-\\ufaff\\ufb07-\\ufb12\\ufb18-\\ufb1c\\ufb37\\ufb3d\\ufb3f\\ufb42\\ufb45'
        '\\ufe1a-\\ufe1f\\ufe53\\ufe67\\ufe6c-\\ufe6f\\ufe75\\ufefd-\\ufefe\\uff00\\uffbf-\\uffc1'
        '\\uffc8-\\uffc9\\uffd0-\\uffd1\\uffd8-\\uffd9\\uffdd-\\uffdf\\uffe7\\uffef-\\ufff8\\U0001000c\\U00010027'
        '\\U0001003b\\U0001003e\\U0001004e-\\U0001004f\\U0001005e-\\U0001007f\\U000100fb-\\U000100ff\\U00010103-\\U00010106\\U00010134-\\U00010136\\U0001018f'
        '\\U0001019d-\\U0001019f\\U000101a1-\\U000101cf\\U000101fe-\\U0001027f\\U0001029d-\\U0001029f\\U000102d1-\\U000102df\\U000102fc-\\U000102ff\\U00010324-\\U0001032c\\U0001034b-\\U0001034f'
        '\\U0001037b-\\U0001037f\\U0001039e\\U000103c4-\\U000103c7\\U000103d6-\\U000103ff\\U0001049e-\\U0001049f\\U000104aa-\\U000104af\\U000104d4-\\U000104d7\\U000104fc-\\U000104ff'
        '\\U00010528-\\U0001052f\\U00010564-\\U0001056e\\U0001057b\\U0001058b\\U00010593\\U00010596\\U000105a2\\U000105b2'
        '\\U000105ba\\U000105bd-\\U000105bf\\U000105f4-\\U000105ff\\U00010737-\\U0001073f\\U00010756-\\U0001075f\\U00010768-\\U0001077f\\U00010786\\U000107b1'
        '\\U000107c0-\\U000107ff\\U00010806-\\U00010807\\U00010809\\U00010836\\U00010839-\\U0001083b\\U0001083d-\\U0001083e\\U00010856\\U0001089f-\\U000108a6'
        '\\U000108b0-\\U000108df\\U000108f3\\U000108f6-\\U000108fa\\U0001091c-\\U0001091e\\U0001093a-\\U0001093e\\U0001095a-\\U0001097f\\U000109b8-\\U000109bb\\U000109d0-\\U000109d1'
        '\\U00010a04\\U00010a07-\\U00010a0b\\U00010a14\\U00010a18\\U00010a36-\\U00010a37\\U00010a3b-\\U00010a3e\\U00010a49-\\U00010a4f\\U00010a59-\\U00010a5f'
        '\\U00010aa0-\\U00010abf\\U00010ae7-\\U00010aea\\U00010af7-\\U00010aff\\U00010b36-\\U00010b38\\U00010b56-\\U00010b57\\U00010b73-\\U00010b77\\U00010b92-\\U00010b98\\U00010b9d-\\U00010ba8'
        '\\U00010bb0-\\U00010bff\\U00010c49-\\U00010c7f\\U00010cb3-\\U00010cbf\\U00010cf3-\\U00010cf9\\U00010d28-\\U00010d2f\\U00010d3a-\\U00010d3f\\U00010d66-\\U00010d68\\U00010d86-\\U00010d8d'
        '\\U00010d90-\\U00010e5f\\U00010e7f\\U00010eaa\\U00010eae-\\U00010eaf\\U00010eb2-\\U00010ec1\\U00010ec8\\U00010eef\\U00010f28-\\U00010f2f'
        '\\U00010f5a-\\U00010f6f\\U00010f8a-\\U00010faf\\U00010fcc-\\U00010fdf\\U00010ff7-\\U00010fff\\U0001104e-\\U00011051\\U00011076-\\U0001107e\\U000110c3-\\U000110cc\\U000110ce-\\U000110cf'
        '\\U000110e9-\\U000110ef\\U000110fa-\\U000110ff\\U00011135\\U00011148-\\U0001114f\\U00011177-\\U0001117f\\U000111e0\\U000111f5-\\U000111ff\\U00011212'
        '\\U00011242-\\U0001127f\\U00011287\\U00011289\\U0001128e\\U0001129e\\U000112aa-\\U000112af\\U000112eb-\\U000112ef\\U000112fa-\\U000112ff'
        '\\U00011304\\U0001130d-\\U0001130e\\U00011311-\\U00011312\\U00011329\\U00011331\\U00011334\\U0001133a\\U00011345-\\U00011346'
        '\\U00011349-\\U0001134a\\U0001134e-\\U0001134f\\U00011351-\\U00011356\\U00011358-\\U0001135c\\U00011364-\\U00011365\\U0001136d-\\U0001136f\\U00011375-\\U0001137f\\U0001138a'
        '\\U0001138c-\\U0001138d\\U0001138f\\U000113b6\\U000113c1\\U000113c3-\\U000113c4\\U000113c6\\U000113cb\\U000113d6'
        '\\U000113d9-\\U000113e0\\U000113e3-\\U000113ff\\U0001145c\\U00011462-\\U0001147f\\U000114c8-\\U000114cf\\U000114da-\\U0001157f\\U000115b6-\\U000115b7\\U000115de-\\U000115ff'
        '\\U00011645-\\U0001164f\\U0001165a-\\U0001165f\\U0001166d-\\U0001167f\\U000116ba-\\U000116bf\\U000116ca-\\U000116cf\\U000116e4-\\U000116ff\\U0001171b-\\U0001171c\\U0001172c-\\U0001172f'
        '\\U00011747-\\U000117ff\\U0001183c-\\U0001189f\\U000118f3-\\U000118fe\\U00011907-\\U00011908\\U0001190a-\\U0001190b\\U00011914\\U00011917\\U00011936'
        '\\U00011939-\\U0001193a\\U00011947-\\U0001194f\\U0001195a-\\U0001199f\\U000119a8-\\U000119a9\\U000119d8-\\U000119d9\\U000119e5-\\U000119ff\\U00011a48-\\U00011a4f\\U00011aa3-\\U00011aaf'
        '\\U00011af9-\\U00011aff\\U00011b0b-\\U00011b5f\\U00011b68-\\U00011bbf\\U00011be2-\\U00011bef\\U00011bfa-\\U00011bff\\U00011c09\\U00011c37\\U00011c46-\\U00011c4f'
        '\\U00011c6d-\\U00011c6f\\U00011c90-\\U00011c91\\U00011ca8\\U00011cb7-\\U00011cff\\U00011d07\\U00011d0a\\U00011d37-\\U00011d39\\U00011d3b'
        '\\U00011d3e\\U00011d48-\\U00011d4f\\U00011d5a-\\U00011d5f\\U00011d66\\U00011d69\\U00011d8f\\U00011d92\\U00011d99-\\U00011d9f'
        '\\U00011daa-\\U00011daf\\U00011ddc-\\U00011ddf\\U00011dea-\\U00011def\\U00011df2-\\U00011edf\\U00011ef9-\\U00011eff\\U00011f11\\U00011f3b-\\U00011f3d\\U00011f5b-\\U00011faf'
        '\\U00011fb1-\\U00011fbf\\U00011ff2-\\U00011ffe\\U0001239a-\\U000123ff\\U00012544-\\U0001254f\\U00012687-\\U00012f8f\\U00012ff3-\\U00012fff\\U00013456-\\U0001345f\\U000143fb-\\U000143ff'
        '\\U00014647-\\U000160ff\\U0001613a-\\U000167ff\\U00016a39-\\U00016a3f\\U00016a5f\\U00016a6a-\\U00016a6d\\U00016abf\\U00016aca-\\U00016acf\\U00016aee-\\U00016aef'
        '\\U00016af6-\\U00016aff\\U00016b46-\\U00016b4f\\U00016b5a\\U00016b62\\U00016b78-\\U00016b7c\\U00016b90-\\U00016d3f\\U00016d7a-\\U00016e3f\\U00016e9b-\\U00016e9f'
        '\\U00016eb9-\\U00016eba\\U00016ed4-\\U00016eff\\U00016f4b-\\U00016f4e\\U00016f88-\\U00016f8e\\U00016fa0-\\U00016fdf\\U00016fe5-\\U00016fef\\U00016ff7-\\U00016fff\\U00018cdb-\\U00018cfe'
        '\\U00018d21-\\U00018d7f\\U00018df3-\\U00018dff\\U00019192-\\U0001919f\\U000191d3-\\U0001afef\\U0001aff4\\U0001affc\\U0001afff\\U0001b129-\\U0001b131'
        '\\U0001b133-\\U0001b14f\\U0001b153-\\U0001b154\\U0001b156-\\U0001b163\\U0001b169-\\U0001b16f\\U0001b2fc-\\U0001bbff\\U0001bc6b-\\U0001bc6f\\U0001bc7d-\\U0001bc7f\\U0001bc89-\\U0001bc8f'
        '\\U0001bc9a-\\U0001bc9b\\U0001bca4-\\U0001cbff\\U0001ccfd-\\U0001ccff\\U0001ceb4-\\U0001ceb9\\U0001ced1\\U0001ced5-\\U0001cedc\\U0001cefe-\\U0001ceff\\U0001cf2e-\\U0001cf2f'
        '\\U0001cf47-\\U0001cf4f\\U0001cfc4-\\U0001cfff\\U0001d0f6-\\U0001d0ff\\U0001d246-\\U0001d24f\\U0001d282-\\U0001d2bf\\U0001d2d4-\\U0001d2df\\U0001d2f4-\\U0001d2ff\\U0001d357-\\U0001d35f'
        '\\U0001d379-\\U0001d3ff\\U0001d455\\U0001d49d\\U0001d4a0-\\U0001d4a1\\U0001d4a3-\\U0001d4a4\\U0001d4a7-\\U0001d4a8\\U0001d4ad\\U0001d4ba'
        '\\U0001d4bc\\U0001d4c4\\U0001d506\\U0001d50b-\\U0001d50c\\U0001d515\\U0001d51d\\U0001d53a\\U0001d53f'
        '\\U0001d545\\U0001d547-\\U0001d549\\U0001d551\\U0001d6a7\\U0001d7cc-\\U0001d7cd\\U0001da8c-\\U0001da9a\\U0001daa0\\U0001dab0-\\U0001daff'
        '\\U0001db1d-\\U0001deff\\U0001df82-\\U0001df8f\\U0001df97-\\U0001dfcc\\U0001e007\\U0001e019-\\U0001e01a\\U0001e022\\U0001e025\\U0001e02b-\\U0001e02f'
        '\\U0001e06e-\\U0001e08e\\U0001e090-\\U0001e0ff\\U0001e12d-\\U0001e12f\\U0001e13e-\\U0001e13f\\U0001e14a-\\U0001e14d\\U0001e150-\\U0001e28f\\U0001e2af-\\U0001e2bf\\U0001e2fa-\\U0001e2fe'
        '\\U0001e300-\\U0001e4cf\\U0001e4fa-\\U0001e5cf\\U0001e5fb-\\U0001e5fe\\U0001e600-\\U0001e6bf\\U0001e6df\\U0001e6f6-\\U0001e6fd\\U0001e700-\\U0001e7df\\U0001e7e7'
        '\\U0001e7ec\\U0001e7ef\\U0001e7ff\\U0001e8c5-\\U0001e8c6\\U0001e8d7-\\U0001e8ff\\U0001e94c-\\U0001e94f\\U0001e95a-\\U0001e95d\\U0001e960-\\U0001ec70'
        '\\U0001ecb5-\\U0001ed00\\U0001ed3e-\\U0001edff\\U0001ee04\\U0001ee20\\U0001ee23\\U0001ee25-\\U0001ee26\\U0001ee28\\U0001ee33'
        '\\U0001ee38\\U0001ee3a\\U0001ee3c-\\U0001ee41\\U0001ee43-\\U0001ee46\\U0001ee48\\U0001ee4a\\U0001ee4c\\U0001ee50'
        '\\U0001ee53\\U0001ee55-\\U0001ee56\\U0001ee58\\U0001ee5a\\U0001ee5c\\U0001ee5e\\U0001ee60\\U0001ee63'
        '\\U0001ee65-\\U0001ee66\\U0001ee6b\\U0001ee73\\U0001ee78\\U0001ee7d\\U0001ee7f\\U0001ee8a\\U0001ee9c-\\U0001eea0'
        '\\U0001eea4\\U0001eeaa\\U0001eebc-\\U0001eeef\\U0001eef2-\\U0001efff\\U0001f02c-\\U0001f02f\\U0001f094-\\U0001f09f\\U0001f0af-\\U0001f0b0\\U0001f0c0'
        '\\U0001f0d0\\U0001f0f6-\\U0001f0ff\\U0001f1af-\\U0001f1e5\\U0001f203-\\U0001f20f\\U0001f23c-\\U0001f23f\\U0001f249-\\U0001f24f\\U0001f252-\\U0001f25f\\U0001f266-\\U0001f2ff'
        '\\U0001f6da-\\U0001f6db\\U0001f6ed-\\U0001f6ef\\U0001f6fd-\\U0001f6ff\\U0001f7dc-\\U0001f7df\\U0001f7ec-\\U0001f7ef\\U0001f80c-\\U0001f80f\\U0001f848-\\U0001f84f\\U0001f85a-\\U0001f85f'
        '\\U0001f888-\\U0001f88f\\U0001f8ae-\\U0001f8af\\U0001f8bc-\\U0001f8bf\\U0001f8c2-\\U0001f8cf\\U0001f8d9-\\U0001f8ff\\U0001fa58-\\U0001fa5f\\U0001fa6e-\\U0001fa6f\\U0001fa7d-\\U0001fa7f'
        '\\U0001fac7\\U0001fac9-\\U0001facb\\U0001fade\\U0001faec-\\U0001faee\\U0001fafb-\\U0001faff\\U0001fb93\\U0001fbfb-\\U0001fffd\\U0002a6e0-\\U0002a6ff'
        '\\U0002b81f\\U0002ceae-\\U0002ceaf\\U0002ebe1-\\U0002ebef\\U0002ee5e-\\U0002f7ff\\U0002fa1e-\\U0002fffd\\U0003134b-\\U0003134f\\U0003347a-\\U0003cfff\\U0003fc40-\\U0003fffd'
        '\\U00040000-\\U0004fffd\\U00050000-\\U0005fffd\\U00060000-\\U0006fffd\\U00070000-\\U0007fffd\\U00080000-\\U0008fffd\\U00090000-\\U0009fffd\\U000a0000-\\U000afffd\\U000b0000-\\U000bfffd'
        '\\U000c0000-\\U000cfffd\\U000d0000-\\U000dfffd\\U000e0000\\U000e0002-\\U000e001f\\U000e0080-\\U000e00ff\\U000e01f0-\\U000efffd'
        ']';
$$;
comment on function sync_private.unassigned_class() is
    'The regular expression bracket expression of the code points Unicode (18) assigns no character to (General_Category Cn) but the noncharacters, generated from Unicode data by devtools/unassigned_class.py. The <field>.unassigned_character rule.';

-- sync_private.first_unassigned
-- The first code point of a text that Unicode assigns no character to, or null.
create function sync_private.first_unassigned(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- No font draws such a code point: a reader sees a box or nothing, and
    -- two texts that look alike differ. Every code point below U+0378 is
    -- assigned, so a text of them (the catalog's names and descriptions,
    -- nearly every delta) costs a count of its bytes and one cheap pattern.
    select case when octet_length(p_text) <> char_length(p_text)
                     and p_text ~ E'[^\\u0001-\\u0377]'
                then substring(p_text from sync_private.unassigned_class()) end;
$$;
comment on function sync_private.first_unassigned(text) is
    'The first code point of a text that Unicode (18) assigns no character to (sync_private.unassigned_class), or null: no font draws it. The <field>.unassigned_character rule.';

-- sync_private.first_replacement
-- The first character of a text that stands for one lost before it arrived (U+FFFD, U+FFFC), or null.
create function sync_private.first_replacement(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- U+FFFD is what a decoder writes for bytes it could not read (text
    -- saved in one encoding and read in another); U+FFFC what an editor
    -- leaves where an image or another object was pasted. Both are drawn, so
    -- no other rule sees them, and what stood there is gone from the text.
    -- An ASCII text (the catalog's, nearly every delta) costs a count of its
    -- bytes.
    select case when octet_length(p_text) <> char_length(p_text)
                then substring(p_text from E'[\\uFFFC\\uFFFD]') end;
$$;
comment on function sync_private.first_replacement(text) is
    'The first U+FFFD (the replacement character a decoder writes for bytes it could not read) or U+FFFC (the placeholder of a pasted object) of a text, or null: a character was lost before the text arrived. The <field>.replacement_character rule.';

-- sync_private.starts_with_formula
-- True when a text starts as a spreadsheet formula does: =, +, -, @, a tab or a carriage return.
create function sync_private.starts_with_formula(p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- The smart library's readers export the catalog (pandas' to_csv, a
    -- COPY to CSV, the API's JSON turned into a sheet) and open it in a
    -- spreadsheet, which reads a cell that starts with one of these as a
    -- formula ("CSV injection", OWASP): "=HYPERLINK(...)" shows a link the
    -- text's author chose, "=cmd|' /C calc'!A0" asks to run a program, and
    -- "-Rose" shows #NAME? instead of the text. Some spreadsheets strip a
    -- leading tab or carriage return first, so those count too. Valid JSON
    -- and valid text: every rule let it through. One character compared.
    select left(p_text, 1) in ('=', '+', '-', '@', chr(9), chr(13));
$$;
comment on function sync_private.starts_with_formula(text) is
    'True when a text starts with =, +, -, @, a tab or a carriage return: a spreadsheet that opens an export of the catalog reads such a cell as a formula (CSV injection). The <field>.spreadsheet_formula rule.';

-- sync_private.first_double_encoding
-- The first characters of a text that read as one character's UTF-8 bytes decoded as Windows-1252, or null.
create function sync_private.first_double_encoding(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- "CafÃ©" is "Café" whose UTF-8 bytes (C3 A9) were read as Windows-1252
    -- (or Latin-1) and encoded again on their way into the CMS: every
    -- character is valid and drawn, so no other rule sees it, and the
    -- application shows "CafÃ©". Each byte of a UTF-8 sequence becomes one
    -- character: a lead byte (Â to ß for two bytes, á to ï for three, ð for
    -- four) then continuation bytes (0x80 to 0xBF, which Windows-1252 draws
    -- as € ‚ ƒ ... Ÿ and Latin-1 as NBSP to ¿). Real text seldom puts a
    -- symbol of 0xA1 to 0xBF right after an accented capital, but a
    -- capital before ‘ ’ “ ” … – — ™ is English and French ("JOSÉ’S",
    -- "CRÈME™"), and French puts a no-break space after "ÉTÉ" before "!":
    -- after a lead other than Â and Ã those nine pass (ł, ę or Cyrillic Р
    -- read twice are missed alone, found beside other letters). After à
    -- and í, the three-byte leads whose next byte has half the range, only
    -- that half; four-byte leads stop at ð (planes 1 to 3: beyond them only
    -- tags and private use). The five bytes Windows-1252 leaves undefined
    -- come out as C1 controls, a control-character rule's. An ASCII text
    -- (the catalog's, nearly every delta) costs a count of its bytes.
    select case when octet_length(p_text) <> char_length(p_text)
                then substring(p_text from
                    E'[\\u00c2\\u00c3][\\u00a0-\\u00bf]|[\\u00c4-\\u00df][\\u00a1-\\u00bf]|\\u00c3[\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178]'
                    '|[\\u00c4-\\u00df][\\u20ac\\u201a\\u0192\\u201e\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2022\\u02dc\\u0161\\u203a\\u0153\\u017e\\u0178]'
                    '|\\u00e0[\\u00a0-\\u00bf][\\u00a0-\\u00bf\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178]'
                    '|\\u00ed[\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178][\\u00a0-\\u00bf\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178]'
                    '|[\\u00e1-\\u00ec\\u00ee\\u00ef][\\u00a0-\\u00bf\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178][\\u00a0-\\u00bf\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178]'
                    '|\\u00f0[\\u00a0-\\u00bf\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178][\\u00a0-\\u00bf\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178][\\u00a0-\\u00bf\\u20ac\\u201a\\u0192\\u201e\\u2026\\u2020\\u2021\\u02c6\\u2030\\u0160\\u2039\\u0152\\u017d\\u2018\\u2019\\u201c\\u201d\\u2022\\u2013\\u2014\\u02dc\\u2122\\u0161\\u203a\\u0153\\u017e\\u0178]') end;
$$;
comment on function sync_private.first_double_encoding(text) is
    'The first run of characters of a text that are one character''s UTF-8 bytes read as Windows-1252 ("Ã©" for é, "â€™" for ’), or null: the text was encoded twice on its way in. The <field>.double_encoded rule; sync_private.rule_message says which character was meant.';

-- sync_private.placeholder
-- The placeholder a text is ("null", "undefined", "[object Object]", "TBD", "Lorem ipsum..."), or null.
create function sync_private.placeholder(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- What a form, a script or a draft leaves where no value was given:
    -- "null", "undefined", "NaN" and "[object Object]" are what JavaScript
    -- writes for a missing value or an object turned into text, "string" is
    -- what an API's documentation page sends when tried as it stands, and
    -- "TBD", "TODO", "test", "xxx", "untitled" or "Lorem ipsum" are an
    -- editor's filler. Valid text, so every other rule let it through, and
    -- the application shows "undefined" as a fragrance's name. The whole
    -- text, trimmed and in any case, must be one of them (a name that
    -- holds "Test" among other words passes); "Lorem ipsum" may start a
    -- longer text. Words a fragrance may be named (Sample, Example,
    -- Default) are not on the list. Most texts cost one look at their
    -- first character: none of the list starts with another (or with
    -- white space, which the comparison trims). The others pay lower() of
    -- at most 20 characters: 0.35 us, measured, where the look costs 0.05.
    --
    -- A text of punctuation alone ("?", ".", "...", "…", "—", "N/A"'s
    -- slash without its letters), between spaces or not, is a placeholder
    -- too: what an editor types where a form wants a value and none is
    -- known, and every other rule let "?" through as a fragrance's name
    -- (hostile review). The characters are listed, not a locale's
    -- [[:punct:]] (the database's locale decides that class beyond ASCII):
    -- ASCII's punctuation and symbols, Latin-1's punctuation, Unicode's
    -- general punctuation (dashes, quotes, bullets, the ellipsis), the CJK
    -- and full-width ones. Letters, digits, marks and the other symbols
    -- (an emoji, a star, a currency sign beyond ASCII) are a name: "No. 5",
    -- "?!Rose", "🌹" and "薔薇。" pass. Only a text whose first character
    -- is such a one, a space or beyond ASCII pays for the pattern.
    select case when (ascii(p_text) between 33 and 47 or ascii(p_text) between 58 and 64
                      or ascii(p_text) between 91 and 96 or ascii(p_text) between 123 and 126
                      or ascii(p_text) in (9, 10, 13, 32) or ascii(p_text) > 160)
                     and p_text !~ E'[^ \\t\\r\\n\\u00a0\\u3000\\u0021-\\u002f\\u003a-\\u0040\\u005b-\\u0060\\u007b-\\u007e'
                                     '\\u00a1\\u00a7\\u00ab\\u00b6\\u00b7\\u00bb\\u00bf\\u2010-\\u2027\\u2030-\\u205e'
                                     '\\u3001-\\u3003\\u3008-\\u3011\\u3014-\\u301f\\u30fb'
                                     '\\uff01-\\uff0f\\uff1a-\\uff20\\uff3b-\\uff40\\uff5b-\\uff65]'
                     and btrim(p_text, E' \t\r\n\u00a0\u3000') <> ''
                    then btrim(p_text, E' \t\r\n')
                when ascii(p_text) not in (9, 10, 13, 32, 70, 76, 78, 83, 84, 85, 88, 91,
                                           102, 108, 110, 115, 116, 117, 120)
                    then null
                when char_length(p_text) <= 20
                     and lower(btrim(p_text, E' \t\r\n')) = any ('{"null",undefined,none,nil,nan,n/a,tbd,tba,todo,fixme,test,xxx,untitled,"[object object]",string}')
                    then btrim(p_text, E' \t\r\n')
                when ascii(p_text) in (76, 108) and lower(left(p_text, 11)) = 'lorem ipsum'
                    then left(p_text, 11) end;
$$;
comment on function sync_private.placeholder(text) is
    'The placeholder a text is, trimmed, or null: null, undefined, none, nil, NaN, n/a, TBD, TBA, TODO, FIXME, test, xxx, untitled, [object Object] or string in any case, a text that starts with Lorem ipsum, or a text of punctuation alone ("?", "...", "—", between spaces or not). What a form, a script, a draft or an editor leaves where no value was given. The <field>.placeholder rule.';

-- sync_private.first_html
-- The first HTML tag or character reference of a text ("<b>", "</p>", "&amp;", "&#39;"), or null.
create function sync_private.first_html(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- A CMS with a rich-text editor, or an export that escapes for a web
    -- page, leaves markup in a plain text: "Rose &amp; Oud", "Rose&#39;s",
    -- "<p>Petals</p>", "Cr&egrave;me". Valid text, so every other rule let
    -- it through; the application shows the markup as characters (or, were
    -- it to write the text into a page unescaped, runs it: "<img src=x
    -- onerror=...>"), and a reader's search for "Rose & Oud" misses it. A
    -- tag is "<" then a letter, "/" and a letter, or "!" (a comment or
    -- doctype), up to the next ">" with no "<" between: "<3 Rose", "a < b"
    -- and "Rose <> Oud" pass. A character reference is "&" then a name of
    -- 2 to 32 letters and digits, "#" and decimal digits, or "#x" and hex
    -- digits, then ";": "Rose & Oud" and "R&D" pass. Most texts cost two
    -- byte searches: the expression runs only on a text holding "<" or "&".
    select case when strpos(p_text, '<') > 0 or strpos(p_text, '&') > 0
                then (regexp_match(p_text,
                    '(<(?:/?[A-Za-z]|!)[^<>]*>|&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});)'))[1] end;
$$;
comment on function sync_private.first_html(text) is
    'The first HTML tag ("<b>", "</p>", "<!-- -->") or character reference ("&amp;", "&#39;", "&#x27;") of a text, or null: markup a rich-text editor or an escaping export left in a plain text. "<3", "a < b", "Rose & Oud" and "R&D" pass. The <field>.html rule.';

-- sync_private.rule_rank
-- Where a broken rule stands among a field's: errors before warnings, then by position; null when off.
create function sync_private.rule_rank(p_rules jsonb, p_code text, p_position integer) returns integer
    language sql
    immutable
    parallel safe
as $$
    -- Positions run from 1 to 99: an error ranks p_position, a warning
    -- 100 + p_position, so the least rank is the first error, else the first
    -- warning, and rank % 100 gives the position back. (It was 10 and % 10,
    -- for 1 to 9: a 10th rule would have ranked 10 as an error, 20 as a
    -- warning, and % 10 made both 0, no rule: the value passed. The text
    -- rules came to 10 with .stacked_marks.)
    select case sync_private.severity(p_rules, p_code) when 'error' then p_position
                                                       when 'warning' then 100 + p_position end;
$$;
comment on function sync_private.rule_rank(jsonb, text, integer) is
    'The rank of a broken rule among the rules of one field: its position (1 to 99) when its severity in p_rules is error, 100 more when warning, null when off or unknown. The least rank is the rule a field is reported by.';

-- sync_private.broken_text_rule
-- The rule a text value is reported by: the first error it breaks, else the first warning; null when none.
create function sync_private.broken_text_rule(p_field text, p_text text, p_rules jsonb) returns text
    language sql
    immutable
    parallel safe
as $$
    -- One expression, so a query over a million rows evaluates it inline;
    -- each test runs once, and a rule's severity is looked up only when the
    -- value breaks it (most values break none, and a lookup in the rules
    -- costs more than these patterns). A rule that is off is passed over; a
    -- warning never hides an error that comes after it (a name with a bell
    -- and a right-to-left override is refused for the override when the
    -- bell is only a warning). The messages: sync_private.rule_message.
    -- A description's .untrimmed is position 99, the last (the array's
    -- 18th to 97th are null): every description of the catalog and of the
    -- CMS ends in two spaces, and ranked 8th it was the first warning of
    -- them all, so no warning after it (.stacked_marks, .mixed_script,
    -- .leading_mark, .unassigned_character) was ever told of one, on a
    -- delta or at rest (hostile review). Its .not_normalized is 98th, for
    -- the same reason: marks stacked on a letter are seldom in normal form
    -- C, and a warning that the text is decomposed would hide them. A
    -- name's stay 8th and 9th.
    select p_field || (array['.null', '.too_long', '.blank', '.control_character', '.c1_control', '.bidi_control',
                             '.invisible_character', '.untrimmed', '.not_normalized', '.stacked_marks',
                             '.mixed_script', '.leading_mark', '.unassigned_character',
                             '.replacement_character', '.spreadsheet_formula', '.double_encoded',
                             '.placeholder', '.html']
                       || array_fill(null::text, array[79]) || array['.not_normalized', '.untrimmed'])[least(
        case when p_text is null then sync_private.rule_rank(p_rules, p_field || '.null', 1) end,
        case when char_length(p_text) > sync_private.parameter(p_rules, p_field || '.too_long')
            then sync_private.rule_rank(p_rules, p_field || '.too_long', 2) end,
        -- description has no .blank rule: its rank is null.
        case when sync_private.is_blank(p_text)
            then sync_private.rule_rank(p_rules, p_field || '.blank', 3) end,
        case when sync_private.first_control(p_text, p_field = 'description') is not null
            then sync_private.rule_rank(p_rules, p_field || '.control_character', 4) end,
        case when sync_private.is_untrimmed(p_text)
            then sync_private.rule_rank(p_rules, p_field || '.untrimmed',
                                        case when p_field = 'description' then 99 else 8 end) end,
        -- After the fourteen before it (migration 0052), for the same reason.
        case when sync_private.starts_with_formula(p_text)
            then sync_private.rule_rank(p_rules, p_field || '.spreadsheet_formula', 15) end,
        -- The rules of characters beyond ASCII, tested only on a text that
        -- holds one: on an ASCII text (the catalog's, nearly every delta)
        -- none of them can match (no C1 control, bidirectional control,
        -- invisible character or mark is ASCII; an ASCII text is in every
        -- normal form, holds letters of no script but Latin, every code
        -- point of it is assigned, and a double encoding starts with Â to ð),
        -- so one count of its bytes stands for all ten (their own counts,
        -- three patterns): the judge's CPU 0.79 to 0.83 x, a backlog's merge
        -- 0.96 x in instructions (bench/README.md, step 43b). least() takes
        -- the same ranks either way, and the positions say the order;
        -- tests/test_rules_ascii.py asks each of the ten of every ASCII
        -- character.
        case when octet_length(p_text) <> char_length(p_text) then least(
            -- Only description has the rule: a name's C1 controls are name.control_character.
            -- Ranked before .untrimmed, which every padded description of the catalog breaks.
            case when p_field = 'description' and sync_private.first_c1_control(p_text) is not null
                then sync_private.rule_rank(p_rules, p_field || '.c1_control', 5) end,
            case when sync_private.first_bidi_control(p_text) is not null
                then sync_private.rule_rank(p_rules, p_field || '.bidi_control', 6) end,
            -- A text of nothing but invisible characters is .blank (a name's) instead.
            case when sync_private.first_invisible(p_text) is not null
                then sync_private.rule_rank(p_rules, p_field || '.invisible_character', 7) end,
            -- description's since migration 0051: searched for words, a decomposed
            -- one is missed by a search for the composed word. Its rank: above.
            case when sync_private.is_unnormalized(p_text)
                then sync_private.rule_rank(p_rules, p_field || '.not_normalized',
                                            case when p_field = 'description' then 98 else 9 end) end,
            -- Last: among errors, a name's invisible or control characters are
            -- told first (they make names differ, this makes one unreadable);
            -- and an error, it still outranks the warnings before it. Its limit
            -- is looked up only for a text with two marks in a row
            -- (sync_private.stacked_marks inlined: the lookup is its last step).
            case when sync_private.stacked_marks(p_text, sync_private.parameter(p_rules, p_field || '.stacked_marks')) is not null
                then sync_private.rule_rank(p_rules, p_field || '.stacked_marks', 10) end,
            -- After the ten before them (migration 0043): a value that breaks one
            -- of those is told as it was, so no finding of a row at rest changes
            -- its rule when these come, and, errors both, a name that mixes
            -- scripts and stacks marks is told for its marks, as before.
            case when sync_private.mixed_script(p_text) is not null
                then sync_private.rule_rank(p_rules, p_field || '.mixed_script', 11) end,
            case when sync_private.starts_with_mark(p_text)
                then sync_private.rule_rank(p_rules, p_field || '.leading_mark', 12) end,
            -- After the twelve before it (migration 0048), for the same reason.
            case when sync_private.first_unassigned(p_text) is not null
                then sync_private.rule_rank(p_rules, p_field || '.unassigned_character', 13) end,
            -- After the thirteen before it (migration 0050): a value that breaks
            -- one of those errors is told as it was. An error for a name, it
            -- outranks the warnings before it.
            case when sync_private.first_replacement(p_text) is not null
                then sync_private.rule_rank(p_rules, p_field || '.replacement_character', 14) end,
            -- After the fifteen before it (migration 0054), for the same reason.
            case when sync_private.first_double_encoding(p_text) is not null
                then sync_private.rule_rank(p_rules, p_field || '.double_encoded', 16) end) end,
        -- After the sixteen before it (migration 0055), for the same reason.
        case when sync_private.placeholder(p_text) is not null
            then sync_private.rule_rank(p_rules, p_field || '.placeholder', 17) end,
        -- After the seventeen before it (migration 0060), for the same reason.
        case when sync_private.first_html(p_text) is not null
            then sync_private.rule_rank(p_rules, p_field || '.html', 18) end) % 100];
$$;
comment on function sync_private.broken_text_rule(text, text, jsonb) is
    'The code of the rule a text value of name or description is reported by, or null: of the rules it breaks (.null, .too_long, .blank for name, .control_character with line breaks, tabs and C1 controls allowed in a description, .c1_control for description, .bidi_control, .invisible_character, .untrimmed and .not_normalized for name, .stacked_marks, .mixed_script, .leading_mark, .unassigned_character, .replacement_character, .spreadsheet_formula, .double_encoded, .placeholder, .html, .not_normalized and .untrimmed for description, in this order), the first of severity error in p_rules, else the first warning; rules that are off are passed over.';

-- sync_private.broken_cost_rule
-- The rule a cost is reported by: the first error it breaks, else the first warning; null when none.
create function sync_private.broken_cost_rule(p_cost numeric, p_rules jsonb) returns text
    language sql
    immutable
    parallel safe
as $$
    -- As sync_private.broken_text_rule: one expression, each test once, the
    -- first error before the first warning, rules that are off passed over.
    select 'cost' || (array['.null', '.not_finite', '.negative', '.too_large', '.too_precise',
                            '.fractional', '.implausible'])[least(
        case when p_cost is null then sync_private.rule_rank(p_rules, 'cost.null', 1) end,
        -- Finite means what every consumer can hold: a double precision value.
        case when abs(p_cost) > 1.7976931348623157e308 then sync_private.rule_rank(p_rules, 'cost.not_finite', 2) end,
        case when p_cost < 0 then sync_private.rule_rank(p_rules, 'cost.negative', 3) end,
        case when p_cost > sync_private.parameter(p_rules, 'cost.too_large')
            then sync_private.rule_rank(p_rules, 'cost.too_large', 4) end,
        -- Decimal places that hold a digit: 12.000 is exactly 12 and keeps nothing less.
        case when scale(trim_scale(p_cost)) > sync_private.parameter(p_rules, 'cost.too_precise')
            then sync_private.rule_rank(p_rules, 'cost.too_precise', 5) end,
        -- The smart library serves int(cost): 12.5 reaches the application as 12.
        case when p_cost <> trunc(p_cost) then sync_private.rule_rank(p_rules, 'cost.fractional', 6) end,
        -- After the six before it (migration 0060), so no finding at rest
        -- changes its rule: above a limit no catalog cost comes near, a
        -- cost in cents or with a digit too many (7500 for 75).
        case when p_cost > sync_private.parameter(p_rules, 'cost.implausible')
            then sync_private.rule_rank(p_rules, 'cost.implausible', 7) end) % 100];
$$;
comment on function sync_private.broken_cost_rule(numeric, jsonb) is
    'The code of the rule a cost is reported by, or null: of the rules it breaks (.null, .not_finite beyond a double, .negative, .too_large, .too_precise, .fractional since the smart library serves int(cost), .implausible above a plausible cost, in this order), the first of severity error in p_rules, else the first warning; rules that are off are passed over.';

-- sync_private.broken_rule
-- The rule a value of one field is reported by (its first error, else its first warning): for deltas and the catalog alike.
create function sync_private.broken_rule(p_field text, p_value jsonb, p_rules jsonb) returns text
    language sql
    immutable
    parallel safe
as $$
    -- p_value has the field's JSON type, or is a JSON null: a catalog row's
    -- column, or a delta's field once sync_private.check_field has checked its type.
    select case p_field
        when 'name' then sync_private.broken_text_rule(p_field, p_value #>> '{}', p_rules)
        when 'description' then sync_private.broken_text_rule(p_field, p_value #>> '{}', p_rules)
        when 'cost' then sync_private.broken_cost_rule((p_value #>> '{}')::numeric, p_rules)
        when 'forbidden' then case when jsonb_typeof(p_value) = 'null' then 'forbidden.null' end
        -- A catalog row's id only (sync_private.violations): a delta's is
        -- judged by sync_private.check_delta, before any field. The column
        -- is an integer, so only a negative id breaks it at rest: written
        -- by hand or adopted, since no delta or snapshot can write one.
        when 'fragrance_id' then case when (p_value #>> '{}')::numeric < 0 then 'fragrance_id.out_of_range' end
    end;
$$;
comment on function sync_private.broken_rule(text, jsonb, jsonb) is
    'The code of the data rule a value of one field of public.fragrances is reported by, or null: the first rule of severity error in p_rules that it breaks, else the first warning. What a delta''s field and a catalog row''s column are both judged by; a catalog row''s fragrance_id too (fragrance_id.out_of_range when negative), which a delta''s is judged apart from. The value must have the field''s type or be JSON null.';

-- sync_private.rule_message
-- The sentence for a rule a value breaks.
create function sync_private.rule_message(p_code text, p_field text, p_value jsonb, p_rules jsonb) returns text
    language sql
    -- One expression, which the judge's statement evaluates inline: as a
    -- PL/pgSQL function it cost a call per broken field, a fifth of the
    -- judge's time (measured). Stable, as format() is: see sync_private.reason.
    stable
    parallel safe
as $$
    select case
        when p_code in ('name.null', 'description.null') then
            format('%s is null; it must be a string (a delta leaves a field out to keep its value)', p_field)
        when p_code = 'cost.null' then
            'cost is null; it must be a number (the smart library serves int(cost), which fails on null)'
        when p_code = 'forbidden.null' then
            'forbidden is null; it must be true or false (a delta leaves a field out to keep its value)'
        when p_code in ('name.too_long', 'description.too_long') then
            format('%s has %s characters; the limit is %s', p_field, char_length(p_value #>> '{}'),
                   sync_private.parameter(p_rules, p_code))
        when p_code = 'fragrance_id.out_of_range' then
            -- At rest only (a delta's sentence is sync_private.check_delta's).
            format('fragrance_id %s is outside 0 to 2147483647: every delta of the CMS that names it is refused, so the sync never changes this fragrance',
                   p_value #>> '{}')
        when p_code = 'name.blank' then
            format('%s is blank; it must hold at least one visible character', p_field)
        when p_code in ('name.control_character', 'description.control_character') then
            format('%s holds the %s %s at position %s; it would reach the application as is',
                p_field,
                case when sync_private.first_control(p_value #>> '{}', p_field = 'description') in (chr(8232), chr(8233))
                         then 'line break'
                     when ascii(sync_private.first_control(p_value #>> '{}', p_field = 'description')) >= 64976
                         then 'noncharacter'
                     else 'control character' end,
                sync_private.code_point(sync_private.first_control(p_value #>> '{}', p_field = 'description')),
                strpos(p_value #>> '{}', sync_private.first_control(p_value #>> '{}', p_field = 'description')))
        when p_code = 'description.c1_control' then
            -- What the text meant, where Windows-1252 has a character for it.
            format('%s holds the C1 control character %s at position %s%s; it reaches the application as is',
                p_field,
                sync_private.code_point(sync_private.first_c1_control(p_value #>> '{}')),
                strpos(p_value #>> '{}', sync_private.first_c1_control(p_value #>> '{}')),
                ', ' || sync_private.windows_1252(sync_private.first_c1_control(p_value #>> '{}'))
                     || ' in Windows-1252: text from Windows read as Latin-1')
        when p_code in ('name.bidi_control', 'description.bidi_control') then
            format('%s holds the bidirectional control %s at position %s; it makes the text display in another order than it is stored',
                p_field,
                sync_private.code_point(sync_private.first_bidi_control(p_value #>> '{}')),
                strpos(p_value #>> '{}', sync_private.first_bidi_control(p_value #>> '{}')))
        when p_code in ('name.invisible_character', 'description.invisible_character') then
            -- The position of the first out of place, which strpos() would not
            -- give: an emoji before it may hold the same ZWJ in its place.
            -- A private-use character may show as a logo: it is named for what it is.
            format('%s holds the %s %s at position %s; %s',
                p_field,
                case when sync_private.first_invisible(p_value #>> '{}')
                          ~ E'[\\ue000-\\uf8ff\\U000f0000-\\U0010fffd]'
                         then 'private-use character, which no standard font shows,'
                     else 'invisible character' end,
                sync_private.code_point(sync_private.first_invisible(p_value #>> '{}')),
                regexp_instr(p_value #>> '{}', sync_private.invisible_pattern()),
                case p_field when 'name' then 'names that look alike would differ'
                             else 'text that looks alike would not match in a search' end)
        when p_code in ('name.untrimmed', 'description.untrimmed') then
            format('%s %s %s', p_field, sync_private.show(p_value), sync_private.untrimmed_ends(p_value #>> '{}'))
        when p_code = 'name.not_normalized' then
            format('name %s is not in Unicode normal form C: it looks like %s but compares, sorts and is searched as another name%s',
                sync_private.show(p_value), sync_private.show(to_jsonb(normalize(p_value #>> '{}', nfc))),
                sync_private.normal_form_overflow(p_value #>> '{}', 150))
        when p_code = 'description.not_normalized' then
            -- Where, and what a reader sees there: a description is long,
            -- and its first 40 characters may be in NFC.
            format('description is not in Unicode normal form C at position %s, where it looks like %s: it compares and is searched as another text, so a search for the composed words misses it%s',
                sync_private.first_unnormalized(p_value #>> '{}'),
                sync_private.show(to_jsonb(substr(normalize(p_value #>> '{}', nfc),
                                                  sync_private.first_unnormalized(p_value #>> '{}'), 10))),
                sync_private.normal_form_overflow(p_value #>> '{}', 1024))
        when p_code in ('name.stacked_marks', 'description.stacked_marks') then
            -- The run and where it starts: the first that is longer than the limit.
            format('%s holds %s combining marks in a row at position %s, stacked on one character; the limit is %s: more are drawn over the text around it',
                p_field,
                char_length(sync_private.stacked_marks(p_value #>> '{}', sync_private.parameter(p_rules, p_code))),
                regexp_instr(p_value #>> '{}', sync_private.stacked_marks_pattern(sync_private.parameter(p_rules, p_code))),
                sync_private.parameter(p_rules, p_code))
        when p_code in ('name.mixed_script', 'description.mixed_script') then
            -- The word, and the first letter of the script that comes second in it.
            format('%s holds the word %s, which mixes %s letters with %s ones (%s at position %s): it looks like a word of one script and differs from it',
                p_field,
                sync_private.show(to_jsonb(sync_private.mixed_script(p_value #>> '{}'))),
                sync_private.script_of(sync_private.mixed_script(p_value #>> '{}')),
                sync_private.script_of(sync_private.second_script_letter(sync_private.mixed_script(p_value #>> '{}'))),
                sync_private.code_point(sync_private.second_script_letter(sync_private.mixed_script(p_value #>> '{}'))),
                regexp_instr(p_value #>> '{}', sync_private.mixed_script_pattern())
                    + strpos(sync_private.mixed_script(p_value #>> '{}'),
                             sync_private.second_script_letter(sync_private.mixed_script(p_value #>> '{}'))) - 1)
        when p_code in ('name.leading_mark', 'description.leading_mark') then
            format('%s starts with the combining mark %s; it is drawn on whatever stands before the %s on screen',
                p_field, sync_private.code_point(left(p_value #>> '{}', 1)), p_field)
        when p_code in ('name.unassigned_character', 'description.unassigned_character') then
            format('%s holds %s at position %s, a code point Unicode assigns no character to: no font draws it, so it shows as a box or nothing',
                p_field,
                sync_private.code_point(sync_private.first_unassigned(p_value #>> '{}')),
                strpos(p_value #>> '{}', sync_private.first_unassigned(p_value #>> '{}')))
        when p_code in ('name.replacement_character', 'description.replacement_character') then
            format('%s holds %s at position %s, %s: what stood there was lost before it reached the CMS',
                p_field,
                sync_private.code_point(sync_private.first_replacement(p_value #>> '{}')),
                strpos(p_value #>> '{}', sync_private.first_replacement(p_value #>> '{}')),
                case sync_private.first_replacement(p_value #>> '{}')
                    when E'\uFFFD' then 'the replacement character a decoder writes for bytes it could not read'
                    else 'the placeholder an editor leaves for a pasted image or object' end)
        when p_code in ('name.spreadsheet_formula', 'description.spreadsheet_formula') then
            format('%s starts with %s, which a spreadsheet reads as the start of a formula: a reader who opens an export of the catalog gets a formula run (a link, a command) or an error where the %s should be',
                p_field, sync_private.show(to_jsonb(left(p_value #>> '{}', 1))), p_field)
        when p_code in ('name.double_encoded', 'description.double_encoded') then
            -- What was meant: the characters' Windows-1252 bytes read as UTF-8,
            -- valid by the pattern's construction.
            format('%s holds %s at position %s where %s (%s) was meant: its UTF-8 bytes were read as Windows-1252, so the text was encoded twice on its way into the CMS',
                p_field,
                sync_private.show(to_jsonb(sync_private.first_double_encoding(p_value #>> '{}'))),
                strpos(p_value #>> '{}', sync_private.first_double_encoding(p_value #>> '{}')),
                sync_private.show(to_jsonb(convert_from(convert_to(sync_private.first_double_encoding(p_value #>> '{}'), 'WIN1252'), 'UTF8'))),
                sync_private.code_point(convert_from(convert_to(sync_private.first_double_encoding(p_value #>> '{}'), 'WIN1252'), 'UTF8')))
        when p_code in ('name.placeholder', 'description.placeholder') then
            format('%s is %s, a placeholder left where no value was given (by a form, a script or a draft): the application shows it as the %s',
                p_field, sync_private.show(to_jsonb(sync_private.placeholder(p_value #>> '{}'))), p_field)
        when p_code in ('name.html', 'description.html') then
            format('%s holds the HTML %s %s at position %s: markup left by a rich-text editor or an escaping export; the application shows it as characters, and a search for the text it stands for misses it',
                p_field,
                case when left(sync_private.first_html(p_value #>> '{}'), 1) = '<' then 'tag' else 'character reference' end,
                sync_private.show(to_jsonb(sync_private.first_html(p_value #>> '{}'))),
                strpos(p_value #>> '{}', sync_private.first_html(p_value #>> '{}')))
        when p_code = 'cost.not_finite' then
            -- No delta carries NaN or an infinity (JSON has neither), but the
            -- numeric column at rest does, and to_jsonb makes them strings.
            case when p_value #>> '{}' = 'NaN' then 'cost NaN is not a number'
                 when p_value #>> '{}' in ('Infinity', '-Infinity')
                     then format('cost %s is not a finite number', p_value #>> '{}')
                 else format('cost %s is too large to be a finite number', sync_private.show(p_value))
            end
        when p_code = 'cost.negative' then
            format('cost is %s; it must be 0 or more', sync_private.show(p_value))
        when p_code = 'cost.too_large' then
            format('cost %s is above %s, the largest cost accepted', sync_private.show(p_value),
                   sync_private.parameter(p_rules, p_code))
        when p_code = 'cost.too_precise' then
            format('cost %s has %s decimal places; at most %s are kept', sync_private.show(p_value),
                   scale(trim_scale((p_value #>> '{}')::numeric)), sync_private.parameter(p_rules, p_code))
        when p_code = 'cost.fractional' then
            format('cost %s has a fractional part; the smart library serves whole numbers, so the application sees %s',
                   sync_private.show(p_value), trunc((p_value #>> '{}')::numeric))
        when p_code = 'cost.implausible' then
            format('cost %s is above %s, the most a fragrance plausibly costs: a cost in cents, or with a digit too many?',
                   sync_private.show(p_value), sync_private.parameter(p_rules, p_code))
        else format('%s breaks rule %s', p_field, p_code)
    end;
$$;
comment on function sync_private.rule_message(text, text, jsonb, jsonb) is
    'The sentence of a rule broken by a value (see sync_private.broken_rule): what is wrong and, where it helps, what is allowed.';

-- sync_private.check_field
-- The rules of one field of a delta: its JSON type, then the rules it shares with the catalog.
create function sync_private.check_field(p_field text, p_value jsonb, p_rules jsonb) returns jsonb
    language plpgsql
    immutable
as $$
declare
    v_type text := case p_field when 'cost' then 'number' when 'forbidden' then 'boolean' else 'string' end;
    v_code text;
begin
    if p_value is null then
        return '[]';
    elsif jsonb_typeof(p_value) not in ('null', v_type) then
        return sync_private.broken(p_rules,
            p_field || case v_type when 'number' then '.not_number' when 'boolean' then '.not_boolean' else '.not_string' end,
            p_field,
            format('%s is a JSON %s (%s); it must be %s', p_field, jsonb_typeof(p_value), sync_private.show(p_value),
                   case v_type when 'number' then 'a JSON number' when 'boolean' then 'true or false'
                               else 'a JSON string' end));
    end if;
    v_code := sync_private.broken_rule(p_field, p_value, p_rules);
    if v_code is null then
        return '[]';
    end if;
    return sync_private.broken(p_rules, v_code, p_field, sync_private.rule_message(v_code, p_field, p_value, p_rules));
end;
$$;
comment on function sync_private.check_field(text, jsonb, jsonb) is
    'The rules of one field of a delta (SQL null: the field is absent): its JSON type (.not_string, .not_number, .not_boolean), then the rule sync_private.broken_rule reports (the first error it breaks, else the first warning), with its sentence and its severity in p_rules. Returns at most one reason.';

-- sync_private.check_delta
-- Checks a parsed delta against every rule that needs no lock; returns the reasons.
create function sync_private.check_delta(p_delta jsonb, p_rules jsonb) returns jsonb
    language plpgsql
    immutable
as $$
declare
    -- Unknown fields named one by one; the rest are counted in one reason.
    v_named constant integer := 20;
    v_reasons jsonb := '[]';
    v_value jsonb;
    v_number numeric;
begin
    -- Whether the fragrance exists is decided at merge time (fragrance_id.unknown), under its lock.
    if jsonb_typeof(p_delta) is distinct from 'object' then
        return sync_private.broken(p_rules, 'body.not_object', null,
            format('body is a JSON %s; a change must be a JSON object', coalesce(jsonb_typeof(p_delta), 'nothing')));
    end if;

    v_value := p_delta -> 'fragrance_id';
    if v_value is null then
        v_reasons := v_reasons || sync_private.broken(p_rules, 'fragrance_id.missing', 'fragrance_id',
            'fragrance_id is missing; every change must say which fragrance it is about');
    elsif jsonb_typeof(v_value) = 'null' then
        v_reasons := v_reasons || sync_private.broken(p_rules, 'fragrance_id.null', 'fragrance_id',
            'fragrance_id is null; it must be an integer');
    elsif jsonb_typeof(v_value) <> 'number' then
        v_reasons := v_reasons || sync_private.broken(p_rules, 'fragrance_id.not_integer', 'fragrance_id',
            format('fragrance_id is a JSON %s (%s); it must be a JSON integer', jsonb_typeof(v_value), sync_private.show(v_value)));
    else
        v_number := v_value::numeric;
        if v_number <> trunc(v_number) then
            v_reasons := v_reasons || sync_private.broken(p_rules, 'fragrance_id.not_integer', 'fragrance_id',
                format('fragrance_id %s is not a whole number', sync_private.show(v_value)));
        elsif v_number < 0 or v_number > 2147483647 then
            v_reasons := v_reasons || sync_private.broken(p_rules, 'fragrance_id.out_of_range', 'fragrance_id',
                format('fragrance_id %s is outside 0 to 2147483647', sync_private.show(v_value)));
        end if;
    end if;

    select v_reasons || coalesce(jsonb_agg(r order by f.n), '[]')
    into v_reasons
    from unnest(sync_private.fields()) with ordinality as f (field, n)
    cross join lateral jsonb_array_elements(sync_private.check_field(f.field, p_delta -> f.field, p_rules)) as r;

    -- Unknown keys are schema drift in the CMS: worth seeing, never worth
    -- blocking an edit. The first 20 by name get a reason each, the rest one
    -- reason that counts them: a body of 60,000 unknown keys (900 KB, under
    -- the body limit) made 60,000 reasons, 9 MB stored with it (measured).
    select v_reasons || coalesce(jsonb_agg(r order by k.nth), '[]')
    into v_reasons
    from (select u.key, row_number() over (order by u.key) as nth, count(*) over () as total
          from jsonb_object_keys(p_delta) as u (key)
          where u.key <> 'fragrance_id' and u.key <> all (sync_private.fields())) as k
    cross join lateral jsonb_array_elements(case
        -- The key once, as the reason's field (sync.unknown_field counts by
        -- it), its first 200 characters ('...' marks a key cut; the body has
        -- it whole); the sentence shows it as any value, cut to 40. Both held
        -- it whole: 20 keys of 45 KB made 1.8 MB of reasons for one body.
        -- What the key hides is escaped (sync_private.hidden_escaped): JSON's
        -- "\u001b" is a raw ESC once parsed, and sync.unknown_field wrote it
        -- to a DBA's psql -A as it was (hostile review).
        when k.nth <= v_named then sync_private.broken(p_rules, 'field.unknown',
            sync_private.hidden_escaped(case when char_length(k.key) > 200 then left(k.key, 200) || '...' else k.key end, false),
            format('unknown field %s was ignored; the CMS may have added it', sync_private.show(to_jsonb(k.key))))
        when k.nth = v_named + 1 then sync_private.broken(p_rules, 'field.unknown', null,
            format('%s more unknown fields were ignored (%s in all, the first %s named above)',
                   k.total - v_named, k.total, v_named))
        else '[]' end) as r;

    return v_reasons;
end;
$$;
comment on function sync_private.check_delta(jsonb, jsonb) is
    'Checks a parsed delta against the data rules in p_rules: the object, fragrance_id, each field (sync_private.check_field) and unknown fields (the first 20 by name each named, the rest counted in one reason); returns a JSON array of reasons.';

-- sync.check_delta
-- Checks a parsed delta against the rules in force, by hand.
create function sync.check_delta(p_delta jsonb) returns jsonb
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    select sync_private.check_delta(p_delta, (sync_private.current_rules()).rules);
$$;
comment on function sync.check_delta(jsonb) is
    'Checks a parsed delta against the data rules in force (sync.rule) and returns a JSON array of reasons; whether the fragrance exists is checked at merge time. Usage: SELECT sync.check_delta(''{"fragrance_id": 7, "cost": -1}'');';

-- sync_private.stored_payload
-- A judged delta as the merge writes it: a cost's zeros past the places the rules keep dropped.
create function sync_private.stored_payload(p_payload jsonb, p_rules jsonb) returns jsonb
    language sql
    -- Stable, as to_jsonb is: see sync_private.reason (it is inlined).
    stable
    parallel safe
as $$
    -- jsonb keeps a number's written scale, and so did the numeric column:
    -- a cost of 12 written with 16,000 zeros after the point passed every
    -- rule (cost.too_precise counts the places that hold a digit) and was
    -- 12.000...0 at rest, 16,003 characters in every listing, export and
    -- history row (hostile review). The zeros past the places
    -- cost.too_precise keeps, or past the last digit when it lets more
    -- through, are dropped: the same number, 12.50 stays 12.50. A cost
    -- with no point, the most of them, costs a strpos.
    select case when strpos(p_payload ->> 'cost', '.') > 0
                     and jsonb_typeof(p_payload -> 'cost') = 'number'
                     and scale((p_payload ->> 'cost')::numeric)
                         > greatest(scale(trim_scale((p_payload ->> 'cost')::numeric)),
                                    coalesce(sync_private.parameter(p_rules, 'cost.too_precise'), 0))
                then jsonb_set(p_payload, '{cost}', to_jsonb(round((p_payload ->> 'cost')::numeric,
                         greatest(scale(trim_scale((p_payload ->> 'cost')::numeric)),
                                  coalesce(sync_private.parameter(p_rules, 'cost.too_precise'), 0))::integer)))
                else p_payload end;
$$;
comment on function sync_private.stored_payload(jsonb, jsonb) is
    'A judged delta as the merge writes it: a cost written with zeros past the decimal places cost.too_precise keeps (in p_rules), or past its last digit, loses them (12.000 becomes 12.00; 12.50 stays); the same number, never rounded. Anything else as it came.';

-- sync_private.check_parsed
-- The rules once a body is parsed: everything judge() does after parse_body().
create function sync_private.check_parsed(p_inbox_id bigint, p_payload jsonb, p_reasons jsonb, p_rules jsonb)
    returns sync_private.judged
    language plpgsql
    immutable
as $$
declare
    v_result sync_private.judged;
begin
    v_result.inbox_id := p_inbox_id;
    v_result.payload := sync_private.stored_payload(p_payload, p_rules);
    v_result.reasons := p_reasons;
    if not sync_private.has_error(v_result.reasons) then
        v_result.reasons := v_result.reasons || sync_private.check_delta(v_result.payload, p_rules);
    end if;
    v_result.valid := not sync_private.has_error(v_result.reasons);
    -- Checked here too: with a duplicate key the rules did not run, and an id
    -- out of range must not abort storing the delivery.
    if jsonb_typeof(v_result.payload -> 'fragrance_id') = 'number'
        and not v_result.reasons @> '[{"field": "fragrance_id"}]'
        and (v_result.payload ->> 'fragrance_id')::numeric between 0 and 2147483647
        and (v_result.payload ->> 'fragrance_id')::numeric = trunc((v_result.payload ->> 'fragrance_id')::numeric)
    then
        v_result.fragrance_id := (v_result.payload ->> 'fragrance_id')::numeric::integer;
    end if;
    return v_result;
end;
$$;
comment on function sync_private.check_parsed(bigint, jsonb, jsonb, jsonb) is
    'Applies the data rules in p_rules to a parsed body and the reasons parsing gave; returns sync_private.judged.';

-- sync_private.judge_one
-- Parses one body and runs every rule on it: the careful path, one body at a time.
create function sync_private.judge_one(p_inbox_id bigint, p_body bytea, p_rules jsonb) returns sync_private.judged
    language sql
    stable
as $$
    select sync_private.check_parsed(p_inbox_id, p.payload, p.reasons, p_rules)
    from sync_private.parse_body(p_body) as p;
$$;
comment on function sync_private.judge_one(bigint, bytea, jsonb) is
    'Parses one delivery body and checks it against the rules in p_rules; the reference that sync_private.judge() must agree with.';

-- sync.prepare
-- Runs the rules in force on one body by hand, as the sync would judge it.
create function sync.prepare(p_body bytea)
    returns table (payload jsonb, fragrance_id integer, reasons jsonb, valid boolean)
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    select j.payload, j.fragrance_id, j.reasons, j.valid
    from sync_private.judge_one(null, p_body, (sync_private.current_rules()).rules) as j;
$$;
comment on function sync.prepare(bytea) is
    'Parses a delivery body and checks it against the data rules in force, as the sync does; returns (payload, fragrance_id, reasons, valid) and changes nothing. Usage: SELECT * FROM sync.prepare(''{"fragrance_id": 7, "cost": -1}'');';

-- sync_private.is_plain
-- A cheap proof that a parsed body is an ordinary delta: only the field rules can object to it.
create function sync_private.is_plain(p_payload jsonb, p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- May only say true when, of all the rules sync_private.check_delta runs,
    -- only the field rules of sync_private.broken_rule could give a reason:
    -- an object of known keys, each once, with a valid fragrance_id and values
    -- of their fields' JSON types. False sends the body through the full
    -- rules, which is safe but slower.
    select jsonb_typeof(p_payload) = 'object'
        and p_payload - '{fragrance_id,name,description,cost,forbidden}'::text[] = '{}'
        and jsonb_typeof(p_payload -> 'fragrance_id') = 'number'
        and (p_payload ->> 'fragrance_id')::numeric between 0 and 2147483647
        and (p_payload ->> 'fragrance_id')::numeric = trunc((p_payload ->> 'fragrance_id')::numeric)
        and (not p_payload ? 'name' or jsonb_typeof(p_payload -> 'name') = 'string')
        and (not p_payload ? 'description' or jsonb_typeof(p_payload -> 'description') = 'string')
        and (not p_payload ? 'cost' or jsonb_typeof(p_payload -> 'cost') = 'number')
        and (not p_payload ? 'forbidden' or jsonb_typeof(p_payload -> 'forbidden') = 'boolean')
        -- No duplicate key (jsonb keeps only the last one). In the text each key
        -- takes two quotes and each string value at least two; numbers and
        -- booleans none. The count is exact only when no key is repeated.
        and length(p_text) - length(replace(p_text, '"', '')) = 2 * (1
            + 2 * (p_payload ? 'name')::integer + 2 * (p_payload ? 'description')::integer
            + (p_payload ? 'cost')::integer + (p_payload ? 'forbidden')::integer);
$$;
comment on function sync_private.is_plain(jsonb, text) is
    'True only when a parsed body (and its text) is an ordinary delta: an object of known keys, each once, a valid fragrance_id, values of their fields'' JSON types; then only the field rules (sync_private.broken_rule) can give it a reason, and sync_private.judge() finds them in its own statement. False sends the body through the full rules. Cheap, no exception handling.';

-- sync_private.judge
-- Parses and checks many bodies in one statement; the careful per-body path only where needed.
create function sync_private.judge(p_ids bigint[], p_bodies bytea[], p_rules jsonb) returns sync_private.judged[]
    language plpgsql
    stable
    -- Plans. A custom plan for the actual arrays always looks cheaper, so
    -- PostgreSQL would re-plan (and re-inline) every statement on every call,
    -- about 1 ms per small batch; the generic plan is kept for the session
    -- instead. It must then not depend on how big the tables were when it was
    -- made: one made on a fresh, tiny inbox seq-scans it for good (measured).
    -- Every access here and in the merge is by key, so seq scans are off, and
    -- JIT, which their disabled cost would switch on. The same three settings
    -- sit on every set-wise function of the merge. Here, also no Memoize: it
    -- would hash every body's text as a cache key that never hits (each body
    -- is parsed once).
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
    set enable_memoize = off
as $$
begin
    if cardinality(p_ids) is distinct from cardinality(p_bodies) then
        raise exception 'judge needs one inbox id per body, got % ids for % bodies',
            cardinality(p_ids), cardinality(p_bodies)
            using errcode = 'FS021';
    end if;
    -- One statement for the batch: parse_body()'s exception blocks cost a
    -- subtransaction each, so only a batch with a body that fails the casts
    -- pays them. An ordinary delta (is_plain) gets its field rules here, in
    -- the order and words sync_private.check_delta would give (a warning,
    -- such as a padded description, is the rule rather than the exception);
    -- the others go through check_parsed or judge_one.
    begin
        return array(
            select case
                when sync_private.is_plain(p.payload, t.body_text)
                    then (select row(b.id, sync_private.stored_payload(p.payload, p_rules),
                                     (p.payload ->> 'fragrance_id')::numeric::integer,
                                     r.reasons, not sync_private.has_error(r.reasons))::sync_private.judged
                          from (select coalesce(jsonb_agg(x.reason order by f.n), '[]') as reasons
                                from unnest(sync_private.fields()) with ordinality as f (field, n)
                                -- The field's value read from the body once (offset 0):
                                -- passed as an expression, the inlined rules read it from
                                -- the body again at every place they use it (about 0.88 x
                                -- the statement's CPU so, bench/README.md step 42).
                                cross join lateral (select p.payload -> f.field as value offset 0) as v
                                cross join lateral (select sync_private.broken_rule(f.field, v.value, p_rules)
                                                        as code offset 0) as c
                                cross join lateral jsonb_array_elements(sync_private.broken(p_rules, c.code, f.field,
                                    sync_private.rule_message(c.code, f.field, v.value, p_rules))) as x (reason)
                                where p.payload ? f.field and c.code is not null) as r)
                when jsonb_typeof(p.payload) <> 'object'
                     or (select count(*) = count(distinct k) from json_object_keys(t.body_text::json) as k)
                    then sync_private.check_parsed(b.id, p.payload, '[]', p_rules)
                else sync_private.judge_one(b.id, b.body, p_rules)
            end
            from unnest(p_ids, p_bodies) with ordinality as b (id, body, n)
            cross join lateral (select convert_from(b.body, 'UTF8') as body_text offset 0) as t
            cross join lateral (select t.body_text::jsonb as payload offset 0) as p
            order by b.n);
    exception when others then
        -- Some body is not UTF-8 JSON that jsonb can hold: take the batch body by body.
        return array(
            select sync_private.judge_one(b.id, b.body, p_rules)
            from unnest(p_ids, p_bodies) with ordinality as b (id, body, n)
            order by b.n);
    end;
end;
$$;
comment on function sync_private.judge(bigint[], bytea[], jsonb) is
    'The data rules in p_rules for many bodies at once, each paired with its inbox id (or batch position), in the given order: ordinary deltas (sync_private.is_plain) get their field rules in one statement, the others go through sync_private.check_parsed or sync_private.judge_one; same result as judging each body alone.';

-- sync_private.check_rule_change
-- Trigger: refuses a change to a rule that the rule cannot take, with what it can.
create function sync_private.check_rule_change() returns trigger
    language plpgsql
    -- It fires in the writer's session, with its search_path: comparing the
    -- rule's columns (tunable a text[]) took an = (text[], text[]) that any
    -- login could create in a schema public open to all, and ran it as the
    -- DBA who tuned the rule (hostile review; tests/test_search_path.py).
    set search_path = pg_catalog, pg_temp
as $$
begin
    if (new.code, new.field, new.applies_to, new.default_severity, new.default_parameter, new.tunable,
        new.parameter_min, new.parameter_max, new.description)
        is distinct from
       (old.code, old.field, old.applies_to, old.default_severity, old.default_parameter, old.tunable,
        old.parameter_min, old.parameter_max, old.description)
    then
        -- Said for what this rule can take: the hint once set a severity
        -- whatever the rule, and run for name.too_long it raised FS071.
        raise exception '%', case when cardinality(old.tunable) = 0
                then format('rule %s cannot be changed', old.code)
                else format('only the %s of rule %s can change', array_to_string(old.tunable, ' and the '), old.code)
            end
            using errcode = 'FS070',
                  hint = case
                      when 'severity' = any (old.tunable)
                          then format('UPDATE sync.rule SET severity = ''warning'' WHERE code = %L;', old.code)
                      when 'parameter' = any (old.tunable)
                          then format('UPDATE sync.rule SET parameter = %s WHERE code = %L;', old.default_parameter, old.code)
                      else 'The rules that can be tuned: SELECT code, tunable FROM sync.rule WHERE tunable <> ''{}'';'
                  end;
    end if;
    if new.severity is distinct from old.severity and not 'severity' = any (old.tunable) then
        raise exception 'rule % is always an error: the merge could not store a value that breaks it', old.code
            using errcode = 'FS071',
                  hint = 'Rules whose severity can change: SELECT code FROM sync.rule WHERE ''severity'' = ANY (tunable);';
    end if;
    -- Said here, before the column's check: a severity that does not exist
    -- ('fatal', 'Warning', null) met a bare constraint violation, no hint.
    if new.severity is distinct from old.severity and (new.severity is null or new.severity <> all ('{error,warning,off}')) then
        raise exception 'rule % takes the severity error, warning or off, got %', old.code,
            coalesce(quote_literal(new.severity), 'null')
            using errcode = 'FS087',
                  hint = format('off turns a rule off: UPDATE sync.rule SET severity = %L WHERE code = %L;',
                      case when lower(new.severity) in ('error', 'warning') then lower(new.severity) else 'off' end,
                      old.code);
    end if;
    if new.parameter is distinct from old.parameter then
        if not 'parameter' = any (old.tunable) then
            raise exception 'rule % has no parameter to change', old.code
                using errcode = 'FS072',
                      hint = 'Rules with a parameter: SELECT code, parameter FROM sync.rule WHERE ''parameter'' = ANY (tunable);';
        end if;
        if new.parameter is null or new.parameter < old.parameter_min or new.parameter > old.parameter_max
            or new.parameter <> trunc(new.parameter)
        then
            -- The hint is the statement to run, filled in: the whole number
            -- nearest to the one given, within the bounds (its default for
            -- null). It said only "Its default is 150.", and the DBA had to
            -- write the UPDATE again (review).
            raise exception 'rule % takes a whole number from % to %, got %', old.code, old.parameter_min,
                old.parameter_max, coalesce(new.parameter::text, 'null')
                using errcode = 'FS073',
                      hint = format('The nearest it takes: UPDATE sync.rule SET parameter = %s WHERE code = %L; its default is %s.',
                          trim_scale(coalesce(greatest(old.parameter_min, least(old.parameter_max, round(new.parameter))),
                                              old.default_parameter)),
                          old.code, trim_scale(old.default_parameter));
        end if;
    end if;
    -- A whole number as one: 100.0 passed the check above and was kept with
    -- its point, in the rules' version and in every sentence that states
    -- the limit ("the limit is 100.0").
    new.parameter := trim_scale(new.parameter);
    return new;
end;
$$;
comment on function sync_private.check_rule_change() is
    'Trigger function of sync.rule''s _100_check_rule_change: only severity and parameter change (FS070); a severity only where the rule allows it (FS071), and only error, warning or off (FS087); a parameter only where it has one (FS072), a whole number within its bounds (FS073), kept without a point (100.0 is 100).';

create trigger _100_check_rule_change
    before update on sync.rule
    for each row execute function sync_private.check_rule_change();
comment on trigger _100_check_rule_change on sync.rule is
    'Refuses a change a rule cannot take, with an SQLSTATE and a hint (FS070 to FS073, FS087).';

-- sync_private.serialize_rule_changes
-- Trigger: one change of the rules at a time, each recorded over the last one committed.
create function sync_private.serialize_rule_changes() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- sync_private.record_rule_version records the whole table as the
    -- writer's snapshot sees it. Two DBAs who tuned two rules at once each
    -- recorded a version without the other's change: sync.rule said
    -- name.too_long 100, the rules in force kept 150 (hostile review). So a
    -- change of the rules waits for one in progress to commit: every row is
    -- locked, in code order, before the statement changes any (a lock taken
    -- after, row by row, would deadlock two writers of two rows). READ
    -- COMMITTED then reads the rows the other committed; REPEATABLE READ
    -- and SERIALIZABLE raise a serialization failure (40001): run it again.
    -- NO KEY UPDATE: a finding written meanwhile (its foreign key takes
    -- KEY SHARE) does not wait for it.
    perform from sync.rule as r order by r.code for no key update;
    return null;
end;
$$;
comment on function sync_private.serialize_rule_changes() is
    'Trigger function of sync.rule''s _010_serialize_rule_changes: before a statement changes the rules, locks every rule (NO KEY UPDATE, in code order) until commit, so a change waits for one in progress and sync_private.record_rule_version records both; findings written meanwhile do not wait.';

create trigger _010_serialize_rule_changes
    before insert or update or delete on sync.rule
    for each statement execute function sync_private.serialize_rule_changes();
comment on trigger _010_serialize_rule_changes on sync.rule is
    'Makes changes of the rules take turns, so each new sync.rule_version holds every change committed before it.';

-- sync_private.record_rule_version
-- Trigger: every change of the rules makes a new version.
create function sync_private.record_rule_version() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_rules jsonb;
    v_before jsonb := (sync_private.current_rules()).rules;
    v_catalog text;
begin
    select jsonb_object_agg(r.code, jsonb_build_object(
               'severity', r.severity, 'parameter', r.parameter, 'applies_to', r.applies_to))
    into v_rules
    from sync.rule as r;
    -- An UPDATE that sets what was already there is not a new version.
    if v_rules is distinct from v_before then
        insert into sync.rule_version (rules) values (v_rules);
        -- The findings at rest are judged again by the catalog check, not
        -- here: rejudging the catalog in the DBA's transaction would hold
        -- the findings every merge writes until it commits. A DBA who
        -- turned an error rule off saw sync.health warn that fragrances
        -- "break an error rule" for up to a day, told nothing (hostile
        -- review): said now, with the call that brings them in line.
        select string_agg(n.key, ', ' order by n.key) into v_catalog
        from jsonb_each(v_rules) as n
        where (n.value ->> 'applies_to' in ('catalog', 'both')
               or v_before #>> array[n.key, 'applies_to'] in ('catalog', 'both'))
          and n.value is distinct from v_before -> n.key;
        if v_catalog is not null then
            raise notice 'the findings at rest (sync.open_finding, sync.health) follow the change of % at the next catalog check', v_catalog
                using hint = 'Judge the catalog by the new rules now: SELECT * FROM sync.run_job(''check_catalog''); '
                    || 'deliveries a loosened rule refused: SELECT * FROM sync.retry_all();';
        end if;
    end if;
    return null;
end;
$$;
comment on function sync_private.record_rule_version() is
    'Trigger function of sync.rule''s _900_record_rule_version: after a statement that changed the rules, records them as a new sync.rule_version, which later decisions and findings carry; when a rule of the catalog changed, a NOTICE says its findings at rest follow at the next catalog check, with the call that runs it.';

create trigger _900_record_rule_version
    after insert or update or delete on sync.rule
    for each statement execute function sync_private.record_rule_version();
comment on trigger _900_record_rule_version on sync.rule is
    'Makes a new sync.rule_version after every change of the rules.';

-- sync_private.edit_distance
-- How many characters to insert, delete or change to turn one short text into another.
create function sync_private.edit_distance(p_from text, p_to text) returns integer
    language plpgsql
    immutable
    parallel safe
    set search_path = pg_catalog, pg_temp
as $$
declare
    -- Levenshtein's, row by row; the texts cut to 100 characters, so a
    -- hostile statement costs at most 10,000 steps a rule. fuzzystrmatch
    -- would need an extension the deploy cannot count on.
    v_from constant text := left(p_from, 100);
    v_to constant text := left(p_to, 100);
    v_previous integer[] := array(select generate_series(0, char_length(left(p_to, 100))));
    v_current integer[];
begin
    if p_from is null or p_to is null then
        return null;
    end if;
    for i in 1 .. char_length(v_from) loop
        v_current := array[i];
        for j in 1 .. char_length(v_to) loop
            v_current := v_current || least(
                v_previous[j + 1] + 1,
                v_current[j] + 1,
                v_previous[j] + case when substr(v_from, i, 1) = substr(v_to, j, 1) then 0 else 1 end);
        end loop;
        v_previous := v_current;
    end loop;
    return v_previous[char_length(v_to) + 1];
end;
$$;
comment on function sync_private.edit_distance(text, text) is
    'The Levenshtein distance between two texts (each cut to 100 characters): how many characters to insert, delete or change; null when either is null. Names the rules nearest a misspelt code (sync_private.say_no_rule_changed).';

-- sync_private.say_no_rule_changed
-- Trigger: an UPDATE of sync.rule that matched no rule says so, naming the codes nearest the one asked.
create function sync_private.say_no_rule_changed() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_asked text[];
    v_nearest text;
begin
    -- A DBA who typed WHERE code = 'name.lookalke' read "UPDATE 0" and
    -- believed the rule tuned (review). A WARNING, not an error: a WHERE
    -- that matches nothing is legal SQL, and a tuning script run twice
    -- (... WHERE code = 'x' AND severity = 'error') or a migration that
    -- tunes a rule a site removed must go on; an error would abort the
    -- transaction around it. psql shows it above "UPDATE 0", with its
    -- SQLSTATE FS088 for scripts that look for it.
    if exists (select from changed) then
        return null;
    end if;
    -- The trigger does not see the WHERE: the codes asked are read from the
    -- statement's text, its quoted constants that look like a code
    -- (field.rule) and name none. A statement given its code as a bound
    -- parameter ($1) names none: the warning then lists no code.
    select array_agg(distinct a.literal order by a.literal) into v_asked
    from (select replace(m[1], '''''', '''') as literal
          from regexp_matches(current_query(), '''((?:[^'']|'''')*)''', 'g') as m) as a
    where a.literal ~ '^[^.[:space:]]+[.][^[:space:]]+$'
      and char_length(a.literal) <= 100
      and not exists (select from sync.rule as r where r.code = a.literal);
    if v_asked is null then
        raise warning 'UPDATE sync.rule changed no rule: its WHERE matched none'
            using errcode = 'FS088',
                  hint = 'Every rule and what it takes: SELECT code, severity, parameter, tunable FROM sync.rule ORDER BY code;';
        return null;
    end if;
    select string_agg(format('%s: %s', quote_literal(a.asked), n.codes), '; ' order by a.asked)
    into v_nearest
    from unnest(v_asked) as a (asked)
    cross join lateral (
        select string_agg(c.code, ', ' order by c.distance, c.code) as codes
        from (select r.code, sync_private.edit_distance(a.asked, r.code) as distance
              from sync.rule as r
              order by 2, 1
              limit 3) as c
    ) as n;
    raise warning 'UPDATE sync.rule changed no rule: no rule has the code %',
        array_to_string(array(select quote_literal(a) from unnest(v_asked) as a), ' nor ')
        using errcode = 'FS088',
              hint = format('The nearest codes to %s. Every rule: SELECT code, severity, parameter, tunable FROM sync.rule ORDER BY code;',
                            v_nearest);
    return null;
end;
$$;
comment on function sync_private.say_no_rule_changed() is
    'Trigger function of sync.rule''s _950_say_no_rule_changed: after an UPDATE that matched no rule, a WARNING (FS088, not an error: a WHERE matching nothing is legal SQL) naming the codes its statement asked for that no rule has, each with the three nearest codes (sync_private.edit_distance).';

create trigger _950_say_no_rule_changed
    after update on sync.rule
    referencing new table as changed
    for each statement execute function sync_private.say_no_rule_changed();
comment on trigger _950_say_no_rule_changed on sync.rule is
    'Warns (FS088) when an UPDATE of the rules matched none, naming the codes nearest a misspelt one: psql said only UPDATE 0.';

-- sync_private.refuse_truncate
-- Trigger: a TRUNCATE is refused, its hint (the trigger's argument) saying what to do instead.
create function sync_private.refuse_truncate() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- A table that is no history (the rules, the settings) is refused with
    -- its own code and sentence, the trigger's second and third arguments.
    if tg_nargs > 1 then
        raise exception using errcode = tg_argv[1], message = tg_argv[2], hint = tg_argv[0];
    end if;
    -- A TRUNCATE fires no row trigger and no DELETE trigger, and with CASCADE
    -- it empties every table that refers to the one named: the owner's
    -- TRUNCATE sync.rule_version CASCADE emptied every finding, and a
    -- TRUNCATE of the history, the inbox or the field clock erased the
    -- audit, the deliveries, or which delivery is newer, with no trace
    -- (hostile review). Each such table carries this trigger, its hint as
    -- the trigger's argument: the verb that purges what may go, or that
    -- nothing does. The trigger of the first table PostgreSQL truncates
    -- raises, so a TRUNCATE naming several tables says that one's. Nothing
    -- of ours truncates them: rollbacks drop the tables, which fires no
    -- TRUNCATE trigger. sync.cms_snapshot is loaded by a TRUNCATE and a COPY
    -- (docs/drift-and-undo.md) and carries none.
    raise exception '% cannot be truncated: its rows are history, and a TRUNCATE leaves no trace of what it removed',
        format('%I.%I', tg_table_schema, tg_table_name)
        using errcode = 'FS092',
              hint = tg_argv[0];
end;
$$;
comment on function sync_private.refuse_truncate() is
    'Trigger function (BEFORE TRUNCATE on sync.rule_version, sync.finding, sync.fragrance_history, sync.field_version, sync.inbox and sync.job_run): refuses a TRUNCATE, with or without CASCADE, with FS092; the hint, the trigger''s argument, names the verb that purges what may go, or says that nothing does. On sync.rule (FS089) and sync.settings (FS095), which are no history, the trigger''s second and third arguments are the code and the message.';

-- A TRUNCATE of sync.rule fires no row trigger and no DELETE trigger: it
-- emptied the rules (and, with CASCADE, every finding) without a new
-- sync.rule_version, so the rules in force said one thing and sync.rule
-- another (review). Nothing of ours truncates it: the rollback of migration
-- 0021 drops the table, which fires no TRUNCATE trigger, and a later
-- rollback deletes its rules' rows. A rule is turned off by an UPDATE.
create trigger _010_refuse_truncate
    before truncate on sync.rule
    for each statement execute function sync_private.refuse_truncate(
        'Turn off every rule that can be, versioned: UPDATE sync.rule SET severity = ''off'' WHERE ''severity'' = ANY (tunable); to remove fragrance sync altogether, roll its migrations back (docs/operations.md).',
        'FS089',
        'sync.rule cannot be truncated: every change of the rules is versioned, and the merge judges by them');
comment on trigger _010_refuse_truncate on sync.rule is
    'Refuses a TRUNCATE of the rules (FS089): it would drop every rule, unversioned.';

create trigger _010_refuse_truncate_rule_version
    before truncate on sync.rule_version
    for each statement execute function sync_private.refuse_truncate(
        'Each decision and finding names the rules'' version that judged it: nothing purges them (one row per change of the rules, docs/operations.md, "What grows"). Tune or turn a rule off, versioned: UPDATE sync.rule SET severity = ''off'' WHERE code = ''...'';');
comment on trigger _010_refuse_truncate_rule_version on sync.rule_version is
    'Refuses a TRUNCATE of the rules'' versions (FS092): with CASCADE it emptied every finding too, with no trace.';

-- sync_private.refuse_rule_delete
-- Trigger: a DELETE of sync.rule is refused outside a migration; a rule is turned off by an UPDATE instead.
create function sync_private.refuse_rule_delete() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- The owner's DELETE FROM sync.rule was versioned, but the code judges
    -- by every rule it knows: a rule deleted was silently no rule at all (its
    -- findings went with it, 0033), and one the merge needs is not tunable
    -- for a reason (review). The rollback of the migration that added a rule
    -- deletes it while yoyo holds its lock (sync_private.deploy_running).
    -- yoyo's lock row alone let any psql through, and a killed deploy leaves
    -- it behind (hostile review): the session that wrote it must still be
    -- connected (ADR 0040). A DELETE in psql while a deploy runs goes
    -- through: the same login could as well roll the migration back.
    if sync_private.deploy_running() then
        return null;
    end if;
    raise exception 'a rule of sync.rule cannot be deleted: the merge and the catalog check judge by every rule they know'
        using errcode = 'FS093',
              hint = 'Turn it off, versioned: UPDATE sync.rule SET severity = ''off'' WHERE code = ''...''; '
                  || '(or loosen it: its tunable column says what it takes; a rule with none cannot be turned off). '
                  || 'A rule goes with a rollback of the migration that added it (docs/operations.md).';
end;
$$;
comment on function sync_private.refuse_rule_delete() is
    'Trigger function of sync.rule''s _005_refuse_delete: refuses a DELETE with FS093, since the code judges by every rule it knows; a rule is turned off or loosened by an UPDATE. Lets it through while a deploy runs (sync_private.deploy_running), so the rollback of the migration that added a rule deletes it; a lock row left by a killed deploy lets nothing through.';

create trigger _005_refuse_delete
    before delete on sync.rule
    for each statement execute function sync_private.refuse_rule_delete();
comment on trigger _005_refuse_delete on sync.rule is
    'Refuses a DELETE of rules (FS093) outside a migration''s rollback: a rule is turned off by an UPDATE of its severity, versioned.';

-- sync_private.refuse_rule_version_change
-- Trigger: an UPDATE or DELETE of sync.rule_version is refused; its latest row is the rules in force.
create function sync_private.refuse_rule_version_change() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- The merge and the catalog check judge by the latest row of
    -- sync.rule_version (sync_private.current_rules), not by sync.rule: the
    -- owner's UPDATE of its rules, or a DELETE of it (a clean-up of old
    -- versions; no finding refers to a version before the catalog is
    -- checked by it), silently put other rules in force while sync.rule
    -- still showed the tuned ones, and rewrote what judged each delivery
    -- (hostile review). Nothing of ours updates or deletes a version: the
    -- trigger on sync.rule and the migrations that add rules insert one.
    raise exception 'sync.rule_version cannot be changed: its latest row is the rules in force, and each row what judged the deliveries and findings that name it'
        using errcode = 'FS092',
              hint = 'Change the rules through sync.rule, which records a new version: UPDATE sync.rule SET severity = ''off'' WHERE code = ''...''; '
                  || '(or its parameter, as its tunable column allows). Nothing purges the versions: one row per change of the rules.';
end;
$$;
comment on function sync_private.refuse_rule_version_change() is
    'Trigger function of sync.rule_version''s _010_refuse_change: refuses an UPDATE or DELETE with FS092, since the latest version is the rules in force (sync_private.current_rules) and each is what judged the decisions and findings naming it; the rules change through sync.rule.';

create trigger _010_refuse_change
    before update or delete on sync.rule_version
    for each statement execute function sync_private.refuse_rule_version_change();
comment on trigger _010_refuse_change on sync.rule_version is
    'Refuses an UPDATE or DELETE of the rules'' versions (FS092): it changed the rules in force behind sync.rule.';

-- sync_private.refuse_hand_change
-- Trigger: a row of history written by a statement typed in psql is refused; the sync's own code, a cascade and a deploy write on.
create function sync_private.refuse_hand_change() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_stack text;
begin
    -- TRUNCATE was refused (FS092), but the owner's psql could still UPDATE
    -- or DELETE one row of the history or of the findings, rewriting the
    -- audit, revert and sync.fragrance_at, or closing a finding the catalog
    -- still breaks; and INSERT a sync.rule_version by hand, which put other
    -- rules in force while sync.rule showed the tuned ones (hostile review).
    -- Grants cannot tell the owner's psql from the owner's functions: both
    -- run as the same role. What tells them apart (ADR 0040):
    -- - pg_trigger_depth() > 1: another trigger ran the statement, ours
    --   (sync.rule's _900_record_rule_version inserts a version) or a
    --   foreign key's cascade (a rollback's rule takes its findings along);
    -- - the statement runs inside a function of schema sync or sync_private
    --   (the code load's, which refuses a function there it did not make):
    --   PL/pgSQL names each function the statement runs in, schema first
    --   (each sets search_path = pg_catalog, pg_temp, or is called from one
    --   that does), in the context below this trigger's own line; a
    --   statement typed in psql has none, a DO block only inline_code_block;
    -- - a deploy's session (sync_private.deploy_running): the landed
    --   migrations insert versions with their rules.
    -- Not a setting: any session can set any custom setting.
    -- The merge's own statements fire this at every call: the cheap tests
    -- first, the deploy's (a catalog lookup and pg_locks) last.
    if pg_catalog.pg_trigger_depth() > 1 then
        return null;
    end if;
    -- Inside sync_private.write (the merge marks its transaction in
    -- sync_private.merging while it writes, and no caller can write that
    -- table): every statement then runs in a function of sync_private, which
    -- the context below would say, at 36 us a merge call for the context and
    -- its pattern; the look-up by key costs a few (bench/README.md, step 45).
    if exists (select from sync_private.merging as m where m.xid = pg_catalog.pg_current_xact_id()) then
        return null;
    end if;
    get diagnostics v_stack = pg_context;
    if v_stack ~ E'\\nPL/pgSQL function sync(_private)?\\.' then
        return null;
    end if;
    if sync_private.deploy_running() then
        return null;
    end if;
    raise exception '% cannot be changed by hand (%): its rows are history, written only by the sync',
        format('%I.%I', tg_table_schema, tg_table_name), tg_op
        using errcode = 'FS094',
              hint = tg_argv[0];
end;
$$;
comment on function sync_private.refuse_hand_change() is
    'Trigger function (BEFORE statement on sync.fragrance_history and sync.finding for UPDATE and DELETE, on sync.rule_version for INSERT): refuses with FS094 a statement that runs in no function of schema sync or sync_private, under no other trigger and outside a deploy''s session (sync_private.deploy_running); the hint, the trigger''s argument, names the verb to use. ADR 0040.';

create trigger _020_refuse_hand_insert
    before insert on sync.rule_version
    for each statement execute function sync_private.refuse_hand_change(
        'A version inserted by hand puts other rules in force while sync.rule shows the tuned ones. Change the rules through sync.rule, which records a new version: UPDATE sync.rule SET severity = ''off'' WHERE code = ''...''; (or its parameter, as its tunable column allows).');
comment on trigger _020_refuse_hand_insert on sync.rule_version is
    'Refuses a version inserted by hand (FS094): the rules change through sync.rule; its trigger and the migrations that add rules insert versions.';
