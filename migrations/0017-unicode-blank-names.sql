-- A name is blank when it shows nothing, in any locale: Unicode spaces and invisible characters too
-- depends: 0016-lean-merge

-- name.blank used [[:space:]], which follows the database's locale: under C
-- or C.UTF-8 (this project's test servers, many containers) a name of
-- no-break spaces, ideographic spaces or zero-width characters passed as
-- visible. The README promises "a visible character". The class is spelled
-- out by code point, so the rule is the same on every server.

-- sync._is_blank
-- True when a text shows nothing: only whitespace, control or invisible characters.
create function sync._is_blank(p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- Controls and ASCII space (U+0001-0020), DEL, C1 controls and no-break
    -- space (U+007F-00A0), soft hyphen, combining grapheme joiner, Hangul
    -- fillers, Khmer inherent vowels, Mongolian selectors and separator,
    -- Unicode spaces, zero-width and direction marks (U+2000-200F), line and
    -- paragraph separators, embeddings and narrow no-break space
    -- (U+2028-202F), word joiner, invisible operators and isolates
    -- (U+205F-206F), braille blank, ideographic space, variation selectors
    -- (U+FE00-FE0F, U+E0100-E01EF), byte order mark, Arabic letter mark,
    -- musical formatting controls (U+1D173-1D17A) and tag characters.
    select p_text ~ '^[\u0001-\u0020\u007f-\u00a0\u00ad\u034f\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\u061c\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef]*$';
$$;
comment on function sync._is_blank(text) is
    'True when a text has no visible character: only whitespace, control and invisible characters (Unicode spaces, zero-width and direction marks, fillers, variation selectors, tags), whatever the database''s locale. The name.blank rule.';
grant execute on function sync._is_blank(text) to sync_dba;

-- sync._check_text (0003) and sync._is_clean (0014), with sync._is_blank for the blank test.
create or replace function sync._check_text(p_delta jsonb, p_field text, p_max integer, p_allow_blank boolean)
    returns jsonb
    language plpgsql
    immutable
as $$
declare
    v_value jsonb := p_delta -> p_field;
    v_length integer;
begin
    if v_value is null then
        return '[]';
    elsif jsonb_typeof(v_value) = 'null' then
        return jsonb_build_array(sync.reason(p_field || '.null', p_field,
            format('%s is null; send a string, or leave the field out to keep the current value', p_field)));
    elsif jsonb_typeof(v_value) <> 'string' then
        return jsonb_build_array(sync.reason(p_field || '.not_string', p_field,
            format('%s is a JSON %s (%s); it must be a JSON string', p_field, jsonb_typeof(v_value), sync._show(v_value))));
    end if;
    v_length := char_length(v_value #>> '{}');
    if v_length > p_max then
        return jsonb_build_array(sync.reason(p_field || '.too_long', p_field,
            format('%s has %s characters; the limit is %s', p_field, v_length, p_max)));
    elsif not p_allow_blank and sync._is_blank(v_value #>> '{}') then
        return jsonb_build_array(sync.reason(p_field || '.blank', p_field,
            format('%s is blank; it must hold at least one visible character', p_field)));
    end if;
    return '[]';
end;
$$;
comment on function sync._check_text(jsonb, text, integer, boolean) is
    'Rules for a text field of a delta: .null, .not_string, .too_long (in characters), and .blank (sync._is_blank) unless blanks are allowed.';

create or replace function sync._is_clean(p_payload jsonb, p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    select jsonb_typeof(p_payload) = 'object'
        and p_payload - '{fragrance_id,name,description,cost,forbidden}'::text[] = '{}'
        and jsonb_typeof(p_payload -> 'fragrance_id') = 'number'
        and (p_payload ->> 'fragrance_id')::numeric between 0 and 2147483647
        and (p_payload ->> 'fragrance_id')::numeric = trunc((p_payload ->> 'fragrance_id')::numeric)
        and (not p_payload ? 'name'
             or (jsonb_typeof(p_payload -> 'name') = 'string'
                 and char_length(p_payload ->> 'name') <= 150
                 and not sync._is_blank(p_payload ->> 'name')))
        and (not p_payload ? 'description'
             or (jsonb_typeof(p_payload -> 'description') = 'string'
                 and char_length(p_payload ->> 'description') <= 1024))
        and (not p_payload ? 'cost'
             or (jsonb_typeof(p_payload -> 'cost') = 'number'
                 and (p_payload ->> 'cost')::numeric between 0 and 1.7976931348623157e308))
        and (not p_payload ? 'forbidden' or jsonb_typeof(p_payload -> 'forbidden') = 'boolean')
        -- No duplicate key (jsonb keeps only the last one). In the text each key
        -- takes two quotes and each string value at least two; numbers and
        -- booleans none. The count is exact only when no key is repeated.
        and length(p_text) - length(replace(p_text, '"', '')) = 2 * (1
            + 2 * (p_payload ? 'name')::integer + 2 * (p_payload ? 'description')::integer
            + (p_payload ? 'cost')::integer + (p_payload ? 'forbidden')::integer);
$$;
comment on function sync._is_clean(jsonb, text) is
    'True only when a parsed body (and its text) certainly passes every data rule with no reason at all, so sync.prepare() would return it valid with no reasons; false sends it through sync.prepare(). Cheap, no exception handling.';
