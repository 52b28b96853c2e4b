-- Data rules: parse a delivery's bytes and check the delta against every field rule
-- depends: 0002-sync-inbox

-- sync.prepared: a delivery after parsing and the static rules, before the merge.
create type sync.prepared as (
    payload jsonb,
    fragrance_id integer,
    reasons jsonb,
    valid boolean
);
comment on type sync.prepared is
    'A delivery after sync.prepare(): parsed payload, its fragrance_id when valid, the reasons found, and whether no error was found.';

-- sync.reason
-- Builds one reason object: a stable code, a severity, the field it is about and a sentence.
create function sync.reason(
    p_code text,
    p_field text,
    p_message text,
    p_severity text default 'error'
) returns jsonb
    language sql
    immutable
    parallel safe
as $$
    select jsonb_build_object('code', p_code, 'severity', p_severity, 'field', p_field, 'message', p_message);
$$;
comment on function sync.reason(text, text, text, text) is
    'Builds one reason {code, severity, field, message}; severity is error (blocks the change), warning or info.';

-- sync._show
-- Renders a JSON value for a message, cut short so hostile payloads cannot flood a reason.
create function sync._show(p_value jsonb) returns text
    language sql
    immutable
    parallel safe
as $$
    select case when length(p_value::text) > 40 then left(p_value::text, 40) || '...' else p_value::text end;
$$;
comment on function sync._show(jsonb) is
    'A JSON value as text for messages, cut to 40 characters.';

-- sync.parse_body
-- Decodes raw bytes into jsonb, or says in reasons why they cannot be a change.
create function sync.parse_body(p_body bytea, out payload jsonb, out reasons jsonb)
    language plpgsql
    stable
as $$
declare
    v_text text;
    v_detail text;
    v_keys bigint;
    v_unique_keys bigint;
begin
    reasons := '[]';
    if p_body is null or length(p_body) = 0 then
        reasons := jsonb_build_array(sync.reason('body.empty', null,
            'body is empty; expected a JSON object such as {"fragrance_id": 1, "name": "..."}'));
        return;
    end if;

    begin
        v_text := convert_from(p_body, 'UTF8');
    exception when others then
        reasons := jsonb_build_array(sync.reason('body.not_utf8', null,
            format('body is not valid UTF-8 (%s); the raw bytes are kept in sync.inbox.body', sqlerrm)));
        return;
    end;

    begin
        payload := v_text::jsonb;
    exception
        when untranslatable_character then
            reasons := jsonb_build_array(sync.reason('body.unsupported_unicode', null,
                'body holds \u0000, which PostgreSQL cannot store in JSON; the raw bytes are kept in sync.inbox.body'));
            return;
        when others then
            get stacked diagnostics v_detail = pg_exception_detail;
            reasons := jsonb_build_array(sync.reason('body.not_json', null,
                format('body is not valid JSON: %s', coalesce(nullif(v_detail, ''), sqlerrm))));
            return;
    end;

    -- jsonb silently keeps the last of duplicate keys; an edit that names a
    -- field twice is ambiguous, so we refuse to guess which value was meant.
    if jsonb_typeof(payload) = 'object' then
        select count(*), count(distinct k) into v_keys, v_unique_keys
        from json_object_keys(v_text::json) as k;
        if v_keys <> v_unique_keys then
            reasons := jsonb_build_array(sync.reason('body.duplicate_key', null,
                format('body names %s more than once; each field may appear once',
                    (select string_agg(d.k, ', ' order by d.k)
                     from (select k from json_object_keys(v_text::json) as k
                           group by k having count(*) > 1) as d)))
            );
        end if;
    end if;
end;
$$;
comment on function sync.parse_body(bytea) is
    'Decodes a delivery body (bytea) as UTF-8 JSON into jsonb; reasons say why it cannot be (body.empty, body.not_utf8, body.unsupported_unicode, body.not_json, body.duplicate_key).';

-- sync._check_text
-- The rules shared by the text fields: a string, not null, within a length, optionally not blank.
create function sync._check_text(p_delta jsonb, p_field text, p_max integer, p_allow_blank boolean)
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

-- sync.check_delta
-- Checks a parsed delta against every static rule; returns the reasons (errors and warnings).
create function sync.check_delta(p_delta jsonb) returns jsonb
    language plpgsql
    immutable
as $$
declare
    v_reasons jsonb := '[]';
    v_value jsonb;
    v_number numeric;
begin
    if jsonb_typeof(p_delta) is distinct from 'object' then
        return jsonb_build_array(sync.reason('body.not_object', null,
            format('body is a JSON %s; a change must be a JSON object', coalesce(jsonb_typeof(p_delta), 'nothing'))));
    end if;

    v_value := p_delta -> 'fragrance_id';
    if v_value is null then
        v_reasons := v_reasons || sync.reason('fragrance_id.missing', 'fragrance_id',
            'fragrance_id is missing; every change must say which fragrance it is about');
    elsif jsonb_typeof(v_value) = 'null' then
        v_reasons := v_reasons || sync.reason('fragrance_id.null', 'fragrance_id',
            'fragrance_id is null; it must be an integer');
    elsif jsonb_typeof(v_value) <> 'number' then
        v_reasons := v_reasons || sync.reason('fragrance_id.not_integer', 'fragrance_id',
            format('fragrance_id is a JSON %s (%s); it must be a JSON integer', jsonb_typeof(v_value), sync._show(v_value)));
    else
        v_number := v_value::numeric;
        if v_number <> trunc(v_number) then
            v_reasons := v_reasons || sync.reason('fragrance_id.not_integer', 'fragrance_id',
                format('fragrance_id %s is not a whole number', sync._show(v_value)));
        elsif v_number < 0 or v_number > 2147483647 then
            v_reasons := v_reasons || sync.reason('fragrance_id.out_of_range', 'fragrance_id',
                format('fragrance_id %s is outside 0 to 2147483647', sync._show(v_value)));
        end if;
    end if;

    v_reasons := v_reasons
        || sync._check_text(p_delta, 'name', 150, false)
        || sync._check_text(p_delta, 'description', 1024, true);

    v_value := p_delta -> 'cost';
    if v_value is null then
        null;
    elsif jsonb_typeof(v_value) = 'null' then
        v_reasons := v_reasons || sync.reason('cost.null', 'cost',
            'cost is null; send a number, or leave the field out to keep the current value');
    elsif jsonb_typeof(v_value) <> 'number' then
        v_reasons := v_reasons || sync.reason('cost.not_number', 'cost',
            format('cost is a JSON %s (%s); it must be a JSON number', jsonb_typeof(v_value), sync._show(v_value)));
    else
        v_number := v_value::numeric;
        -- Finite means what every consumer can hold: a double precision value.
        if abs(v_number) > 1.7976931348623157e308 then
            v_reasons := v_reasons || sync.reason('cost.not_finite', 'cost',
                format('cost %s is too large to be a finite number', sync._show(v_value)));
        elsif v_number < 0 then
            v_reasons := v_reasons || sync.reason('cost.negative', 'cost',
                format('cost is %s; it must be 0 or more', sync._show(v_value)));
        end if;
    end if;

    v_value := p_delta -> 'forbidden';
    if v_value is null then
        null;
    elsif jsonb_typeof(v_value) = 'null' then
        v_reasons := v_reasons || sync.reason('forbidden.null', 'forbidden',
            'forbidden is null; send true or false, or leave the field out to keep the current value');
    elsif jsonb_typeof(v_value) <> 'boolean' then
        v_reasons := v_reasons || sync.reason('forbidden.not_boolean', 'forbidden',
            format('forbidden is a JSON %s (%s); it must be true or false', jsonb_typeof(v_value), sync._show(v_value)));
    end if;

    -- Unknown keys are schema drift in the CMS: worth seeing, never worth blocking an edit.
    select v_reasons || coalesce(jsonb_agg(sync.reason('field.unknown', k,
               format('unknown field %s was ignored; the CMS may have added it', to_jsonb(k)),
               'warning') order by k), '[]')
    into v_reasons
    from jsonb_object_keys(p_delta) as k
    where k not in ('fragrance_id', 'name', 'description', 'cost', 'forbidden');

    return v_reasons;
end;
$$;
comment on function sync.check_delta(jsonb) is
    'Checks a parsed delta against the static data rules (types, nulls, lengths, ranges, unknown fields); returns a JSON array of reasons. Whether the fragrance exists is checked at merge time.';

-- sync.has_error
-- True when a reasons array holds at least one reason of severity error.
create function sync.has_error(p_reasons jsonb) returns boolean
    language sql
    immutable
    parallel safe
as $$
    select p_reasons @> '[{"severity": "error"}]';
$$;
comment on function sync.has_error(jsonb) is
    'True when a reasons array holds at least one reason of severity error.';

-- sync.prepare
-- Parses a body and applies the static rules: everything about a delivery that needs no lock.
create function sync.prepare(p_body bytea) returns sync.prepared
    language plpgsql
    stable
as $$
declare
    v_result sync.prepared;
begin
    select payload, reasons into v_result.payload, v_result.reasons from sync.parse_body(p_body);
    if not sync.has_error(v_result.reasons) then
        v_result.reasons := v_result.reasons || sync.check_delta(v_result.payload);
    end if;
    v_result.valid := not sync.has_error(v_result.reasons);
    if jsonb_typeof(v_result.payload -> 'fragrance_id') = 'number'
        and not v_result.reasons @> '[{"field": "fragrance_id"}]'
    then
        v_result.fragrance_id := (v_result.payload ->> 'fragrance_id')::numeric::integer;
    end if;
    return v_result;
end;
$$;
comment on function sync.prepare(bytea) is
    'Parses a delivery body and checks it against the static data rules; returns sync.prepared (payload, fragrance_id, reasons, valid).';
