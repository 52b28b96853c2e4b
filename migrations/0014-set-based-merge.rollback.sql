-- Back to processing every claimed delivery one by one
drop function sync._process_claimed(bigint[]);
drop function sync._merge_many(sync.prepared_delivery[]);
drop aggregate sync._merge_objects(jsonb);
drop function sync._prepare_many(bigint[]);
drop function sync._is_clean(jsonb, text);
drop type sync.prepared_delivery;

-- sync.prepare as 0003 made it, before the rules it calls go
create or replace function sync.prepare(p_body bytea) returns sync.prepared
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
drop function sync._check_parsed(jsonb, jsonb);
revoke execute on function sync._check_text(jsonb, text, integer, boolean), sync._show(jsonb) from sync_dba;
alter function sync._process_claimed_rowwise(bigint[]) rename to _process_claimed;
comment on function sync._process_claimed(bigint[]) is
    'Processes the given (already locked) inbox rows in receipt order and stores each outcome; returns the counts.';

-- The history trigger as 0005 made it
drop trigger _900_sync_record_history on public.fragrances;
create trigger _900_sync_record_history
    after insert or update or delete on public.fragrances
    for each row execute function sync._record_history();
