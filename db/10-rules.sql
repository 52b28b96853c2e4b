-- Data rules: what a delivery's bytes must be to change a fragrance.
--
-- Every rule is written once, here, and serves every path: the hook's batches,
-- apply_pending, retries, reverts and repairs all judge bodies through
-- sync_private.judge(). A violation is data (a reason on the inbox row), never
-- an exception. Loaded by migrations/9999-database-code.py after every apply;
-- see db/README.md for how this code is organised.

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

-- sync_private.reason
-- Builds one reason: a stable code, a severity, the field it is about and a sentence.
create function sync_private.reason(
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

-- sync_private.show
-- A JSON value for a message, cut short so hostile payloads cannot flood a reason.
create function sync_private.show(p_value jsonb) returns text
    language sql
    immutable
    parallel safe
as $$
    select case when length(p_value::text) > 40 then left(p_value::text, 40) || '...' else p_value::text end;
$$;
comment on function sync_private.show(jsonb) is
    'A JSON value as text for messages, cut to 40 characters.';

-- sync_private.is_blank
-- True when a text shows nothing: only whitespace, control, invisible or combining characters.
create function sync_private.is_blank(p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- Spelled out by code point, so the rule is the same under every locale
    -- ([[:space:]] follows the server's, and C.UTF-8 knows no Unicode space).
    -- Controls and ASCII space (U+0001-0020), DEL, C1 controls and no-break
    -- space (U+007F-00A0), soft hyphen, combining marks with no base to sit on
    -- (U+0300-036F, 1AB0-1AFF, 1DC0-1DFF, 20D0-20FF, FE20-FE2F), combining
    -- grapheme joiner, Arabic letter mark, Hangul fillers, Khmer inherent
    -- vowels, Mongolian selectors and separator, Unicode spaces, zero-width and
    -- direction marks (U+2000-200F), line and paragraph separators, embeddings
    -- and narrow no-break space (U+2028-202F), word joiner, invisible operators
    -- and isolates (U+205F-206F), braille blank, ideographic space, variation
    -- selectors (U+FE00-FE0F, U+E0100-E01EF), byte order mark, halfwidth
    -- filler, musical formatting controls (U+1D173-1D17A) and tag characters.
    select p_text ~ '^[\u0001-\u0020\u007f-\u00a0\u00ad\u0300-\u036f\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u1ab0-\u1aff\u1dc0-\u1dff\u2000-\u200f\u2028-\u202f\u205f-\u206f\u20d0-\u20ff\u2800\u3000\u3164\ufe00-\ufe0f\ufe20-\ufe2f\ufeff\uffa0\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef]*$';
$$;
comment on function sync_private.is_blank(text) is
    'True when a text has no visible character: only whitespace, control, invisible and combining characters (Unicode spaces, zero-width and direction marks, fillers, variation selectors, tags, marks with no base), whatever the database''s locale. The name.blank rule.';

-- sync_private.first_control
-- The first control character in a text (C0, DEL, C1), or null; line breaks and tabs may be allowed.
create function sync_private.first_control(p_text text, p_allow_line_breaks boolean) returns text
    language sql
    immutable
    parallel safe
as $$
    select case when p_allow_line_breaks
                then substring(p_text from '[\u0001-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]')
                else substring(p_text from '[\u0001-\u001f\u007f-\u009f]') end;
$$;
comment on function sync_private.first_control(text, boolean) is
    'The first control character (U+0001-001F, U+007F-009F) of a text, or null; with p_allow_line_breaks, tab, line feed and carriage return are allowed. The <field>.control_character rule.';

-- sync_private.first_bidi_control
-- The first bidirectional embedding, override or isolate in a text, or null.
create function sync_private.first_bidi_control(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- U+202A-202E (embeddings and overrides) and U+2066-2069 (isolates) make
    -- text display in another order than it is stored ("Trojan Source").
    select substring(p_text from '[\u202a-\u202e\u2066-\u2069]');
$$;
comment on function sync_private.first_bidi_control(text) is
    'The first bidirectional embedding, override or isolate (U+202A-202E, U+2066-2069) of a text, or null: they make text display in another order than it is stored. The <field>.bidi_control rule.';

-- sync_private.code_point
-- A character as U+XXXX, for messages.
create function sync_private.code_point(p_char text) returns text
    language sql
    immutable
    parallel safe
as $$
    select 'U+' || upper(lpad(to_hex(ascii(p_char)), 4, '0'));
$$;
comment on function sync_private.code_point(text) is
    'A character written as U+XXXX, for messages.';

-- sync_private.parse_body
-- Decodes raw bytes into jsonb, or says in reasons why they cannot be a change.
create function sync_private.parse_body(p_body bytea, out payload jsonb, out reasons jsonb)
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
                'body holds \u0000, which PostgreSQL cannot store in JSON; the raw bytes are kept in sync.inbox.body'));
            return;
        when others then
            get stacked diagnostics v_detail = pg_exception_detail;
            reasons := jsonb_build_array(sync_private.reason('body.not_json', null,
                format('body is not valid JSON: %s', coalesce(nullif(v_detail, ''), sqlerrm))));
            return;
    end;

    -- jsonb silently keeps the last of duplicate keys; an edit that names a
    -- field twice is ambiguous, so we refuse to guess which value was meant.
    if jsonb_typeof(payload) = 'object' then
        select count(*), count(distinct k) into v_keys, v_unique_keys
        from json_object_keys(v_text::json) as k;
        if v_keys <> v_unique_keys then
            reasons := jsonb_build_array(sync_private.reason('body.duplicate_key', null,
                format('body names %s more than once; each field may appear once',
                    (select string_agg(d.k, ', ' order by d.k)
                     from (select k from json_object_keys(v_text::json) as k
                           group by k having count(*) > 1) as d))));
        end if;
    end if;
end;
$$;
comment on function sync_private.parse_body(bytea) is
    'Decodes a delivery body (bytea) as UTF-8 JSON into jsonb; reasons say why it cannot be (body.empty, body.not_utf8, body.unsupported_unicode, body.not_json, body.duplicate_key).';

-- sync_private.check_text
-- The rules of a text field: a string, not null, within a length, visible, no control or bidi character.
create function sync_private.check_text(
    p_delta jsonb,
    p_field text,
    p_max integer,
    p_allow_blank boolean,
    p_allow_line_breaks boolean
) returns jsonb
    language plpgsql
    immutable
as $$
declare
    v_value jsonb := p_delta -> p_field;
    v_text text;
    v_length integer;
    v_char text;
begin
    if v_value is null then
        return '[]';
    elsif jsonb_typeof(v_value) = 'null' then
        return jsonb_build_array(sync_private.reason(p_field || '.null', p_field,
            format('%s is null; send a string, or leave the field out to keep the current value', p_field)));
    elsif jsonb_typeof(v_value) <> 'string' then
        return jsonb_build_array(sync_private.reason(p_field || '.not_string', p_field,
            format('%s is a JSON %s (%s); it must be a JSON string', p_field, jsonb_typeof(v_value), sync_private.show(v_value))));
    end if;
    v_text := v_value #>> '{}';
    v_length := char_length(v_text);
    if v_length > p_max then
        return jsonb_build_array(sync_private.reason(p_field || '.too_long', p_field,
            format('%s has %s characters; the limit is %s', p_field, v_length, p_max)));
    elsif not p_allow_blank and sync_private.is_blank(v_text) then
        return jsonb_build_array(sync_private.reason(p_field || '.blank', p_field,
            format('%s is blank; it must hold at least one visible character', p_field)));
    end if;
    v_char := sync_private.first_control(v_text, p_allow_line_breaks);
    if v_char is not null then
        return jsonb_build_array(sync_private.reason(p_field || '.control_character', p_field,
            format('%s holds the control character %s at position %s; it would reach the application as is',
                p_field, sync_private.code_point(v_char), strpos(v_text, v_char))));
    end if;
    v_char := sync_private.first_bidi_control(v_text);
    if v_char is not null then
        return jsonb_build_array(sync_private.reason(p_field || '.bidi_control', p_field,
            format('%s holds the bidirectional control %s at position %s; it makes the text display in another order than it is stored',
                p_field, sync_private.code_point(v_char), strpos(v_text, v_char))));
    end if;
    return '[]';
end;
$$;
comment on function sync_private.check_text(jsonb, text, integer, boolean, boolean) is
    'Rules for a text field of a delta: .null, .not_string, .too_long (in characters), .blank (sync_private.is_blank) unless blanks are allowed, .control_character (line breaks and tabs allowed where said) and .bidi_control.';

-- sync_private.check_cost
-- The rules of cost: a JSON number the smart library can serve as it is.
create function sync_private.check_cost(p_delta jsonb) returns jsonb
    language plpgsql
    immutable
as $$
declare
    v_value jsonb := p_delta -> 'cost';
    v_number numeric;
begin
    if v_value is null then
        return '[]';
    elsif jsonb_typeof(v_value) = 'null' then
        return jsonb_build_array(sync_private.reason('cost.null', 'cost',
            'cost is null; send a number, or leave the field out to keep the current value'));
    elsif jsonb_typeof(v_value) <> 'number' then
        return jsonb_build_array(sync_private.reason('cost.not_number', 'cost',
            format('cost is a JSON %s (%s); it must be a JSON number', jsonb_typeof(v_value), sync_private.show(v_value))));
    end if;
    v_number := v_value::numeric;
    -- Finite means what every consumer can hold: a double precision value.
    if abs(v_number) > 1.7976931348623157e308 then
        return jsonb_build_array(sync_private.reason('cost.not_finite', 'cost',
            format('cost %s is too large to be a finite number', sync_private.show(v_value))));
    elsif v_number < 0 then
        return jsonb_build_array(sync_private.reason('cost.negative', 'cost',
            format('cost is %s; it must be 0 or more', sync_private.show(v_value))));
    -- The largest integer every JSON reader (a JavaScript application too) holds exactly.
    elsif v_number > 9007199254740991 then
        return jsonb_build_array(sync_private.reason('cost.too_large', 'cost',
            format('cost %s is above 9007199254740991, the largest whole number a JSON reader holds exactly', sync_private.show(v_value))));
    -- 1e-400 is 0 as a double, and a thousand decimals are noise, not a price.
    elsif scale(v_number) > 2 then
        return jsonb_build_array(sync_private.reason('cost.too_precise', 'cost',
            format('cost %s has %s decimal places; at most 2 are kept', sync_private.show(v_value), scale(v_number))));
    -- The smart library serves int(cost): 12.5 reaches the application as 12.
    elsif v_number <> trunc(v_number) then
        return jsonb_build_array(sync_private.reason('cost.fractional', 'cost',
            format('cost %s has a fractional part; the smart library serves whole numbers, so the application sees %s',
                sync_private.show(v_value), trunc(v_number)), 'warning'));
    end if;
    return '[]';
end;
$$;
comment on function sync_private.check_cost(jsonb) is
    'Rules for cost: .null, .not_number, .not_finite (beyond a double), .negative, .too_large (above 2^53 - 1), .too_precise (more than 2 decimals), and the warning .fractional (the smart library serves int(cost)).';

-- sync.check_delta
-- Checks a parsed delta against every static rule; returns the reasons (errors and warnings).
create function sync.check_delta(p_delta jsonb) returns jsonb
    language plpgsql
    immutable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_reasons jsonb := '[]';
    v_value jsonb;
    v_number numeric;
begin
    -- The delta rules, in one place. Whether the fragrance exists is decided
    -- at merge time (fragrance_id.unknown), under its lock.
    if jsonb_typeof(p_delta) is distinct from 'object' then
        return jsonb_build_array(sync_private.reason('body.not_object', null,
            format('body is a JSON %s; a change must be a JSON object', coalesce(jsonb_typeof(p_delta), 'nothing'))));
    end if;

    v_value := p_delta -> 'fragrance_id';
    if v_value is null then
        v_reasons := v_reasons || sync_private.reason('fragrance_id.missing', 'fragrance_id',
            'fragrance_id is missing; every change must say which fragrance it is about');
    elsif jsonb_typeof(v_value) = 'null' then
        v_reasons := v_reasons || sync_private.reason('fragrance_id.null', 'fragrance_id',
            'fragrance_id is null; it must be an integer');
    elsif jsonb_typeof(v_value) <> 'number' then
        v_reasons := v_reasons || sync_private.reason('fragrance_id.not_integer', 'fragrance_id',
            format('fragrance_id is a JSON %s (%s); it must be a JSON integer', jsonb_typeof(v_value), sync_private.show(v_value)));
    else
        v_number := v_value::numeric;
        if v_number <> trunc(v_number) then
            v_reasons := v_reasons || sync_private.reason('fragrance_id.not_integer', 'fragrance_id',
                format('fragrance_id %s is not a whole number', sync_private.show(v_value)));
        elsif v_number < 0 or v_number > 2147483647 then
            v_reasons := v_reasons || sync_private.reason('fragrance_id.out_of_range', 'fragrance_id',
                format('fragrance_id %s is outside 0 to 2147483647', sync_private.show(v_value)));
        end if;
    end if;

    v_reasons := v_reasons
        || sync_private.check_text(p_delta, 'name', 150, false, false)
        || sync_private.check_text(p_delta, 'description', 1024, true, true)
        || sync_private.check_cost(p_delta);

    v_value := p_delta -> 'forbidden';
    if v_value is null then
        null;
    elsif jsonb_typeof(v_value) = 'null' then
        v_reasons := v_reasons || sync_private.reason('forbidden.null', 'forbidden',
            'forbidden is null; send true or false, or leave the field out to keep the current value');
    elsif jsonb_typeof(v_value) <> 'boolean' then
        v_reasons := v_reasons || sync_private.reason('forbidden.not_boolean', 'forbidden',
            format('forbidden is a JSON %s (%s); it must be true or false', jsonb_typeof(v_value), sync_private.show(v_value)));
    end if;

    -- Unknown keys are schema drift in the CMS: worth seeing, never worth blocking an edit.
    select v_reasons || coalesce(jsonb_agg(sync_private.reason('field.unknown', k,
               format('unknown field %s was ignored; the CMS may have added it', to_jsonb(k)),
               'warning') order by k), '[]')
    into v_reasons
    from jsonb_object_keys(p_delta) as k
    where k <> 'fragrance_id' and k <> all (sync_private.fields());

    return v_reasons;
end;
$$;
comment on function sync.check_delta(jsonb) is
    'Checks a parsed delta against the data rules (types, nulls, lengths, ranges, characters, unknown fields) and returns a JSON array of reasons; whether the fragrance exists is checked at merge time. Usage: SELECT sync.check_delta(''{"fragrance_id": 7, "cost": -1}'');';

-- sync_private.check_parsed
-- The rules once a body is parsed: everything judge() does after parse_body().
create function sync_private.check_parsed(p_inbox_id bigint, p_payload jsonb, p_reasons jsonb)
    returns sync_private.judged
    language plpgsql
    immutable
as $$
declare
    v_result sync_private.judged;
begin
    v_result.inbox_id := p_inbox_id;
    v_result.payload := p_payload;
    v_result.reasons := p_reasons;
    if not sync_private.has_error(v_result.reasons) then
        v_result.reasons := v_result.reasons || sync.check_delta(v_result.payload);
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
comment on function sync_private.check_parsed(bigint, jsonb, jsonb) is
    'Applies the data rules to a parsed body and the reasons parsing gave; returns sync_private.judged.';

-- sync_private.judge_one
-- Parses one body and runs every rule on it: the careful path, one body at a time.
create function sync_private.judge_one(p_inbox_id bigint, p_body bytea) returns sync_private.judged
    language sql
    stable
as $$
    select sync_private.check_parsed(p_inbox_id, p.payload, p.reasons) from sync_private.parse_body(p_body) as p;
$$;
comment on function sync_private.judge_one(bigint, bytea) is
    'Parses one delivery body and checks it against the data rules; the reference that sync_private.judge() must agree with.';

-- sync.prepare
-- Runs the rules on one body by hand, as the sync would judge it.
create function sync.prepare(p_body bytea)
    returns table (payload jsonb, fragrance_id integer, reasons jsonb, valid boolean)
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    select j.payload, j.fragrance_id, j.reasons, j.valid from sync_private.judge_one(null, p_body) as j;
$$;
comment on function sync.prepare(bytea) is
    'Parses a delivery body and checks it against the data rules, as the sync does; returns (payload, fragrance_id, reasons, valid) and changes nothing. Usage: SELECT * FROM sync.prepare(''{"fragrance_id": 7, "cost": -1}'');';

-- sync_private.is_clean
-- A cheap proof that a parsed body breaks no rule and has no warning; false means "not proven".
create function sync_private.is_clean(p_payload jsonb, p_text text) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- May only say true when sync.check_delta would find no reason at all;
    -- false sends the body through the full rules, which is safe but slower.
    select jsonb_typeof(p_payload) = 'object'
        and p_payload - '{fragrance_id,name,description,cost,forbidden}'::text[] = '{}'
        and jsonb_typeof(p_payload -> 'fragrance_id') = 'number'
        and (p_payload ->> 'fragrance_id')::numeric between 0 and 2147483647
        and (p_payload ->> 'fragrance_id')::numeric = trunc((p_payload ->> 'fragrance_id')::numeric)
        and (not p_payload ? 'name'
             or (jsonb_typeof(p_payload -> 'name') = 'string'
                 and char_length(p_payload ->> 'name') <= 150
                 and not sync_private.is_blank(p_payload ->> 'name')
                 and (p_payload ->> 'name') !~ '[\u0001-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]'))
        and (not p_payload ? 'description'
             or (jsonb_typeof(p_payload -> 'description') = 'string'
                 and char_length(p_payload ->> 'description') <= 1024
                 and (p_payload ->> 'description') !~ '[\u0001-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]'))
        and (not p_payload ? 'cost'
             or (jsonb_typeof(p_payload -> 'cost') = 'number'
                 and (p_payload ->> 'cost')::numeric between 0 and 9007199254740991
                 and (p_payload ->> 'cost')::numeric = trunc((p_payload ->> 'cost')::numeric)
                 and scale((p_payload ->> 'cost')::numeric) <= 2))
        and (not p_payload ? 'forbidden' or jsonb_typeof(p_payload -> 'forbidden') = 'boolean')
        -- No duplicate key (jsonb keeps only the last one). In the text each key
        -- takes two quotes and each string value at least two; numbers and
        -- booleans none. The count is exact only when no key is repeated.
        and length(p_text) - length(replace(p_text, '"', '')) = 2 * (1
            + 2 * (p_payload ? 'name')::integer + 2 * (p_payload ? 'description')::integer
            + (p_payload ? 'cost')::integer + (p_payload ? 'forbidden')::integer);
$$;
comment on function sync_private.is_clean(jsonb, text) is
    'True only when a parsed body (and its text) certainly passes every data rule with no reason at all; false sends it through the full rules. Cheap, no exception handling: the fast path of sync_private.judge().';

-- sync_private.judge
-- Parses and checks many bodies in one statement; the careful per-body path only where needed.
create function sync_private.judge(p_ids bigint[], p_bodies bytea[]) returns sync_private.judged[]
    language plpgsql
    stable
    -- Plans. A custom plan for the actual arrays always looks cheaper, so
    -- PostgreSQL would re-plan (and re-inline) every statement on every call,
    -- about 1 ms per small batch; the generic plan is kept for the session
    -- instead. It must then not depend on how big the tables were when it was
    -- made: one made on a fresh, tiny inbox seq-scans it for good (measured).
    -- Every access here and in the merge is by key, so seq scans are off, and
    -- JIT, which their disabled cost would switch on. The same three settings
    -- sit on every set-wise function of the merge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
begin
    if cardinality(p_ids) is distinct from cardinality(p_bodies) then
        raise exception 'judge needs one inbox id per body, got % ids for % bodies',
            cardinality(p_ids), cardinality(p_bodies)
            using errcode = 'FS021';
    end if;
    -- One statement for the batch: parse_body()'s exception blocks cost a
    -- subtransaction each, so only a batch with a body that fails the casts
    -- pays them; clean bodies (is_clean) skip the per-field rules too.
    begin
        return array(
            select case
                when sync_private.is_clean(p.payload, t.body_text)
                    then row(b.id, p.payload, (p.payload ->> 'fragrance_id')::numeric::integer,
                             '[]'::jsonb, true)::sync_private.judged
                when jsonb_typeof(p.payload) <> 'object'
                     or (select count(*) = count(distinct k) from json_object_keys(t.body_text::json) as k)
                    then sync_private.check_parsed(b.id, p.payload, '[]')
                else sync_private.judge_one(b.id, b.body)
            end
            from unnest(p_ids, p_bodies) with ordinality as b (id, body, n)
            cross join lateral (select convert_from(b.body, 'UTF8') as body_text offset 0) as t
            cross join lateral (select t.body_text::jsonb as payload offset 0) as p
            order by b.n);
    exception when others then
        -- Some body is not UTF-8 JSON that jsonb can hold: take the batch body by body.
        return array(
            select sync_private.judge_one(b.id, b.body)
            from unnest(p_ids, p_bodies) with ordinality as b (id, body, n)
            order by b.n);
    end;
end;
$$;
comment on function sync_private.judge(bigint[], bytea[]) is
    'The data rules for many bodies at once, each paired with its inbox id (or batch position), in the given order: clean bodies (sync_private.is_clean) take a fast path, the others sync_private.check_parsed or sync_private.judge_one; same result as judging each body alone.';
