-- Back to the locale's [[:space:]] for name.blank
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
    elsif not p_allow_blank and (v_value #>> '{}') ~ '^[[:space:]]*$' then
        return jsonb_build_array(sync.reason(p_field || '.blank', p_field,
            format('%s is blank; it must hold at least one visible character', p_field)));
    end if;
    return '[]';
end;
$$;
comment on function sync._check_text(jsonb, text, integer, boolean) is
    'Rules for a text field of a delta: .null, .not_string, .too_long (in characters), and .blank unless blanks are allowed.';

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
                 and (p_payload ->> 'name') !~ '^[[:space:]]*$'))
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

drop function sync._is_blank(text);
