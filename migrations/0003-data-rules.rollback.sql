-- Remove the data rules
drop function sync.prepare(bytea);
drop function sync.has_error(jsonb);
drop function sync.check_delta(jsonb);
drop function sync._check_text(jsonb, text, integer, boolean);
drop function sync.parse_body(bytea);
drop function sync._show(jsonb);
drop function sync.reason(text, text, text, text);
drop type sync.prepared;
