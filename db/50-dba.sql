-- What DBAs run from psql: the quarantine, the pending backlog, and what to do about them.
--
-- Every verb here goes through the one merge (sync_private.process,
-- db/30-inbox.sql). Wrong calls raise our SQLSTATEs with a hint: FS001 no
-- such inbox row, FS002 a row in the wrong state, FS003 a reason is missing,
-- FS004 a bad limit, FS005 an inbox id given as null, FS006 a reason code
-- nothing has.

-- sync_private.preview
-- A body cut to 200 characters for display: readable text, what it hides escaped; bytes not UTF-8 in octal.
create function sync_private.preview(p_body bytea, p_reasons jsonb default null) returns text
    language plpgsql
    immutable
    parallel safe
as $$
declare
    v_cut integer;
    v_text text;
begin
    -- A body that is UTF-8 is shown as text: encode(..., 'escape') wrote
    -- every byte of a letter that is not ASCII in octal, so a Russian or a
    -- French name read "\320\240\320\276..." in the quarantine and on the
    -- status page (hostile review). Its first 804 bytes at most (200
    -- characters of 4 bytes, and a character cut at the end left out:
    -- the byte after the cut is no continuation byte), so a body of a MiB
    -- is never decoded whole. Judged not UTF-8 (p_reasons), or failing to
    -- decode when not judged yet, it is cut to 200 bytes in octal as before.
    if p_body is null then
        return null;
    end if;
    if not coalesce(p_reasons @> '[{"code": "body.not_utf8"}]', false) then
        v_cut := case when length(p_body) <= 804 then length(p_body)
                      when get_byte(p_body, 804) & 192 <> 128 then 804
                      when get_byte(p_body, 803) & 192 <> 128 then 803
                      when get_byte(p_body, 802) & 192 <> 128 then 802
                      else 801 end;
        begin
            v_text := convert_from(substring(p_body from 1 for v_cut), 'UTF8');
            return sync_private.hidden_escaped(left(v_text, 200), false)
                || case when char_length(v_text) > 200 or length(p_body) > v_cut then '...' else '' end;
        exception when others then
            null;
        end;
    end if;
    return sync_private.hidden_escaped(encode(substring(p_body from 1 for 200), 'escape'), true)
        || case when length(p_body) > 200 then '...' else '' end;
end;
$$;
comment on function sync_private.preview(bytea, jsonb) is
    'A delivery body for display: a UTF-8 one as its first 200 characters, with controls, bidirectional controls and invisible characters escaped (sync_private.hidden_escaped); one judged not UTF-8 (body.not_utf8 in p_reasons), or that does not decode, as its first 200 bytes with the bytes that are not ASCII and the control bytes in octal. "..." when cut.';

-- sync.quarantine: rejected deliveries waiting for a retry or a discard.
create view sync.quarantine as
select
    i.id as inbox_id,
    i.received_at,
    i.fragrance_id,
    array(select r ->> 'code' from jsonb_array_elements(i.reasons) as r
          where r ->> 'severity' = 'error') as codes,
    (select string_agg(r ->> 'message', '; ') from jsonb_array_elements(i.reasons) as r
     where r ->> 'severity' = 'error') as messages,
    i.attempts,
    i.origin,
    -- As sync_private.preview() and sync_private.hidden_escaped(), written
    -- out: a view may only call what its readers may. A rejected delivery
    -- is judged, so body.not_utf8 among its reasons says whether its body
    -- decodes; but a row an owner rejected by hand (its status and reasons
    -- are processing columns, sync_private.protect_receipt), or one of a
    -- path we do not know, need not say so, and convert_from() then failed
    -- the whole view for every DBA (hostile review). A view catches no
    -- exception: the bytes it decodes are checked first, in hex, against
    -- what PostgreSQL's UTF-8 accepts (no NUL, no overlong form, no
    -- surrogate, nothing past U+10FFFF), and shown in octal when they fail.
    (select case when v.t ~ E'[\\u0001-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]'
                 then (select string_agg(
                           case when s.c !~ E'[\\u0001-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]'
                                    then s.c
                                when v.bytes
                                    then E'\\' || (ascii(s.c) / 64)::text || (ascii(s.c) / 8 % 8)::text || (ascii(s.c) % 8)::text
                                when s.c = E'\n' then E'\\n'
                                when s.c = E'\r' then E'\\r'
                                when s.c = E'\t' then E'\\t'
                                else E'\\u' || lpad(to_hex(ascii(s.c)), 4, '0') end,
                           '' order by s.n)
                       from regexp_split_to_table(v.t, '') with ordinality as s (c, n))
                 else v.t end || v.more
     from (select case when b.bytes then encode(substring(i.body from 1 for 200), 'escape')
                       else left(b.text, 200) end as t,
                  case when b.bytes and length(i.body) > 200 then '...'
                       when not b.bytes and (char_length(b.text) > 200 or length(i.body) > b.cut) then '...'
                       else '' end as more,
                  b.bytes
           from (select c.bytes, c.cut,
                        case when not c.bytes then convert_from(substring(i.body from 1 for c.cut), 'UTF8') end as text
                 from (select u.cut,
                              i.reasons @> '[{"code": "body.not_utf8"}]'
                              or encode(substring(i.body from 1 for u.cut), 'hex') !~ ('^(?:0[1-9a-f]|[1-7][0-9a-f]'
                                  '|(?:c[2-9a-f]|d[0-9a-f])[89ab][0-9a-f]'
                                  '|e0[ab][0-9a-f][89ab][0-9a-f]|e[1-9a-cef](?:[89ab][0-9a-f]){2}|ed[89][0-9a-f][89ab][0-9a-f]'
                                  '|f0[9ab][0-9a-f](?:[89ab][0-9a-f]){2}|f[1-3](?:[89ab][0-9a-f]){3}|f48[0-9a-f](?:[89ab][0-9a-f]){2}'
                                  ')*$') as bytes
                       from (select case when length(i.body) <= 804 then length(i.body)
                                         when get_byte(i.body, 804) & 192 <> 128 then 804
                                         when get_byte(i.body, 803) & 192 <> 128 then 803
                                         when get_byte(i.body, 802) & 192 <> 128 then 802
                                         else 801 end as cut) as u) as c) as b) as v) as body_preview
from sync.inbox as i
where i.status = 'rejected'
order by i.id;
comment on view sync.quarantine is
    'Rejected deliveries, oldest first, with their error codes and sentences. Fix, then SELECT * FROM sync.retry(inbox_id); or SELECT * FROM sync.discard(inbox_id, ''why'');';
comment on column sync.quarantine.inbox_id is 'The delivery (sync.inbox.id): what sync.retry() and sync.discard() take.';
comment on column sync.quarantine.received_at is 'When the delivery was received.';
comment on column sync.quarantine.fragrance_id is 'The fragrance it is about, when the body names a valid one.';
comment on column sync.quarantine.codes is 'Error reason codes (README, "Data rules"), e.g. {name.too_long}.';
comment on column sync.quarantine.messages is 'The error sentences, joined by "; ".';
comment on column sync.quarantine.attempts is 'How many times it has been processed (first attempt plus retries).';
comment on column sync.quarantine.origin is 'Who made it: webhook (the CMS, through the hook), revert or repair.';
comment on column sync.quarantine.body_preview is E'The body''s first 200 characters, its controls, bidirectional controls and invisible characters written as \\n, \\r, \\t or \\uXXXX; a body that is not UTF-8 as its first 200 bytes, those not ASCII and the control bytes in octal (\\377); "..." when cut. The exact bytes are in sync.inbox.body.';

-- sync.unknown_field: keys the CMS sent that the rules do not know (schema drift).
create view sync.unknown_field as
select
    r ->> 'field' as field,
    count(*) as deliveries,
    min(i.received_at) as first_seen,
    max(i.received_at) as last_seen,
    max(i.id) as latest_inbox_id
from sync.inbox as i
cross join lateral jsonb_array_elements(i.reasons) as r
where i.reasons @> '[{"code": "field.unknown"}]'
  and r ->> 'code' = 'field.unknown'
  and r ->> 'field' is not null
group by r ->> 'field';
comment on view sync.unknown_field is
    'Fields the CMS sent that the data rules do not know, with how often and when they were seen, over every delivery kept: a sign the CMS schema changed. A delivery names its first 20 unknown fields by name; its reasons count the rest. sync.health and the status page show the last day''s.';
comment on column sync.unknown_field.field is E'The unknown key as the CMS sent it, to its first 200 characters (''...'' marks a key cut; the body has it whole), its controls, bidirectional controls and invisible characters written as \\uXXXX.';
comment on column sync.unknown_field.deliveries is 'How many deliveries carried it.';
comment on column sync.unknown_field.first_seen is 'When the first of them was received.';
comment on column sync.unknown_field.last_seen is 'When the latest of them was received.';
comment on column sync.unknown_field.latest_inbox_id is 'The latest delivery that carried it (sync.inbox.id).';

-- sync_private.check_limit
-- Refuses a limit that is not a positive number of deliveries, with the call to run instead.
create function sync_private.check_limit(p_limit integer, p_instead text) returns void
    language plpgsql
    immutable
as $$
begin
    -- The hint is the caller's own call with a good limit: "For example
    -- 1000." named no command, and a DBA had to guess which call and which
    -- argument it meant (hostile review).
    if p_limit is null or p_limit < 1 then
        raise exception 'p_limit must be a positive number of deliveries, got %', coalesce(p_limit::text, 'null')
            using errcode = 'FS004', hint = 'For example: ' || p_instead;
    end if;
end;
$$;
comment on function sync_private.check_limit(integer, text) is
    'Raises FS004 unless p_limit is a positive number of deliveries; its hint is p_instead, the call with a good limit.';

-- sync.apply_pending
-- Applies up to p_limit pending deliveries in receipt order; safe to run from several sessions.
create function sync.apply_pending(p_limit integer default 1000) returns sync.batch_result
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- Each call holds its fragrances' locks about 50 ms per 1,000 deliveries,
    -- so live deliveries barely wait; larger batches drain a quiet backlog
    -- somewhat faster (bench/README.md). The claim, and the passing over of
    -- a claim made only of deliveries of a held fragrance, are
    -- sync.apply_received's (sync_private.process_pending), with every
    -- origin: a DBA's staged revert or repair too.
    perform sync_private.check_limit(p_limit, 'SELECT * FROM sync.apply_pending(1000);');
    return sync_private.count_outcomes(sync_private.process_pending(p_limit, false));
end;
$$;
comment on function sync.apply_pending(integer) is
    'Judges and merges up to p_limit pending deliveries in receipt order, and at most 64 MiB of bodies (sync_private.merge_bytes; always the first), and returns the counts; call it again until processed is 0. Rows another session is processing are skipped, so concurrent calls never apply a delivery twice; the deliveries of a fragrance whose row another transaction holds (a DBA''s open transaction) stay pending, named in a NOTICE, and are applied by a later call once it ends (when all p_limit claimed are such, the call goes on to the next p_limit, so they hold back no other fragrance). Usage: SELECT * FROM sync.apply_pending(1000);';

-- sync_private.claim_rejected
-- Locks one rejected delivery (or, with p_discarded_too, a discarded one) for a DBA verb, or says why it cannot be taken.
create function sync_private.claim_rejected(p_inbox_id bigint, p_verb text, p_discarded_too boolean default false)
    returns void
    language plpgsql
as $$
declare
    v_status text;
    v_lock_timeout constant text := current_setting('lock_timeout');
begin
    if p_inbox_id is null then
        raise exception 'the inbox id of the delivery to be % is null', p_verb
            using errcode = 'FS005', hint = 'List quarantined deliveries with SELECT * FROM sync.quarantine;';
    end if;
    -- A row another transaction holds (a second DBA's retry or discard of
    -- it, left open in psql) made the verb wait without a word for as long
    -- as that lasted (hostile review). After 2 s it says so, as a merge
    -- waiting for a fragrance does, then waits on (a caller's own
    -- lock_timeout of 2 s or less is left to act alone).
    if not coalesce(v_lock_timeout::interval between interval '1 microsecond' and interval '2s', false) then
        begin
            perform set_config('lock_timeout', '2s', true);
            perform from sync.inbox where id = p_inbox_id for update;
            perform set_config('lock_timeout', v_lock_timeout, true);
        exception when lock_not_available then
            perform set_config('lock_timeout', v_lock_timeout, true);
            raise notice 'inbox row % is held by another transaction; it can be % once that ends', p_inbox_id, p_verb
                using hint = 'It goes on by itself then. A retry or discard of it left open in another session? '
                    || 'The sessions holding rows of sync.inbox for update: SELECT DISTINCT l.pid, a.usename, '
                    || 'a.application_name, a.xact_start FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid) '
                    || 'WHERE l.relation = ''sync.inbox''::regclass AND l.mode = ''RowShareLock'' '
                    || 'AND l.pid <> pg_backend_pid();';
        end;
    end if;
    select status into v_status from sync.inbox where id = p_inbox_id for update;
    if not found and p_inbox_id > 0 and exists (select from sync.inbox as i where i.id > p_inbox_id) then
        -- Below a kept id: deleted by the purge (or an id a rolled back
        -- store drew). "Does not exist" and a look at the quarantine had a
        -- DBA check again and again the id of a discard purged a year on
        -- (hostile review): the delivery is gone, and the runs say when.
        raise exception 'inbox row % is not kept: purged, or never stored (an id a rolled back store drew)', p_inbox_id
            using errcode = 'FS001',
                  hint = 'The purge deletes applied and ignored deliveries sync.settings.purge_after after they were '
                      'processed, discarded ones discarded_purge_after after the discard; its runs, with what each '
                      'deleted: SELECT started_at, status, detail FROM sync.job_run WHERE job = ''purge_inbox'' '
                      'ORDER BY id DESC;';
    end if;
    if not found then
        raise exception 'inbox row % does not exist', p_inbox_id
            using errcode = 'FS001', hint = 'List quarantined deliveries with SELECT * FROM sync.quarantine;';
    end if;
    if v_status <> 'rejected' and not (p_discarded_too and v_status = 'discarded') then
        -- Said for its status: a pending delivery is not in the quarantine
        -- the hint once listed, and nothing there told how to merge it.
        raise exception 'inbox row % is %; only % deliveries can be %', p_inbox_id, v_status,
            case when p_discarded_too then 'rejected or discarded' else 'rejected' end, p_verb
            using errcode = 'FS002',
                  hint = case v_status
                      when 'pending' then 'It waits for the merge, not in quarantine; merge what is pending: '
                          'SELECT * FROM sync.apply_pending(1000);'
                      -- A look first: a second DBA retrying the same row meets this
                      -- once the first one's retry applied it, and must not undo it.
                      when 'applied' then format('It is applied already: SELECT status, applied_fields, processed_at '
                          'FROM sync.inbox WHERE id = %s; (sync.revert(%s) would undo its change)', p_inbox_id, p_inbox_id)
                      when 'discarded' then format('It was written off: SELECT discarded_by, discard_reason '
                          'FROM sync.inbox WHERE id = %s; (if by mistake, sync.retry(%s) judges it again)',
                          p_inbox_id, p_inbox_id)
                      else format('It changed nothing, and its reasons say why: '
                          'SELECT status, reasons FROM sync.inbox WHERE id = %s;', p_inbox_id)
                  end;
    end if;
end;
$$;
comment on function sync_private.claim_rejected(bigint, text, boolean) is
    'Locks inbox row p_inbox_id for sync.retry or sync.discard (a wait of more than 2 s for another transaction that holds it is said in a NOTICE); raises FS001 when it does not exist (below a kept id: said to be purged, with the purge''s runs in the hint) and FS002 when it is not rejected (nor discarded, with p_discarded_too: sync.retry''s), its hint saying what to do for that status.';

-- sync.retry
-- Processes one quarantined delivery again, after a rule or data fix.
create function sync.retry(p_inbox_id bigint) returns sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_receipt sync.receipt;
begin
    -- A discarded delivery too: a discard of the wrong row (the bulk write-off
    -- line run with the wrong code, a mistyped id) lost the CMS's change
    -- for good, since the CMS never retries and no verb took it back
    -- (hostile review). Judged again like a rejected one, it fills only the
    -- fields nobody set since (receipt order, per field); refused again, it
    -- is back in the quarantine (ADR 0039). discarded_by, discard_reason and
    -- discarded_at stay: who wrote it off, why and when.
    perform sync_private.claim_rejected(p_inbox_id, 'retried', true);
    perform sync_private.process_claimed(array[p_inbox_id], 'sync.retry');
    select id, status, reasons into v_receipt from sync.inbox where id = p_inbox_id;
    return v_receipt;
end;
$$;
comment on function sync.retry(bigint) is
    'Processes one rejected delivery again (fields set since by later deliveries are left alone) and returns its new receipt. A discarded one too, which undoes a mistaken discard: refused again, it is back in sync.quarantine; its discarded_by, discard_reason and discarded_at stay. Usage: SELECT * FROM sync.retry(42);';

-- sync.retry_all
-- Processes quarantined deliveries again, optionally only those rejected for one code.
create function sync.retry_all(p_code text default null, p_limit integer default 1000)
    returns sync.batch_result
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    -- The claim reads the rejected rows through their partial index: see
    -- sync_private.process_pending.
    set enable_seqscan = off
as $$
begin
    -- A misspelt code would match nothing and look like an empty quarantine.
    -- Judged before the limit, whose hint repeats the code: with both wrong,
    -- that hint failed in turn, on the code (hostile review).
    if p_code is not null
        and not exists (select from sync.rule as r where r.code = p_code)
        and not exists (select from sync.inbox as i
                        where i.status = 'rejected'
                          and i.reasons @> jsonb_build_array(jsonb_build_object('code', p_code)))
    then
        raise exception 'no rule and no quarantined delivery has the reason code %', sync_private.show_argument(p_code)
            using errcode = 'FS006',
                  hint = 'The codes in quarantine: SELECT code, count(*) FROM sync.quarantine, unnest(codes) AS code GROUP BY code; every rule: SELECT code FROM sync.rule;';
    end if;
    perform sync_private.check_limit(p_limit, format('SELECT * FROM sync.retry_all(%s, 1000);',
                                                     coalesce(quote_literal(p_code), 'null')));
    -- The deliveries judged longest ago first, so calls in a row go through
    -- the whole quarantine. Taken in receipt order, every call took the
    -- oldest p_limit again, and the merge the first 64 MiB of their bodies:
    -- while those stayed rejected, a delivery behind them was never judged
    -- again, whatever rule was loosened or row created (hostile review).
    -- sync_private.process cuts the 64 MiB in this order too; the rows
    -- claimed past them stay as they are, first for the next call. Receipt
    -- order between calls decides nothing: the merge orders each field by
    -- inbox id whatever order it merges in.
    return sync_private.process_claimed(array(
        select id from sync.inbox
        where status = 'rejected'
          and (p_code is null or reasons @> jsonb_build_array(jsonb_build_object('code', p_code)))
        order by processed_at nulls first, id
        limit p_limit
        for update skip locked), 'sync.retry_all');
end;
$$;
comment on function sync.retry_all(text, integer) is
    'Processes up to p_limit rejected deliveries again, and at most 64 MiB of bodies (sync_private.merge_bytes), all of them or only those with reason code p_code: those judged longest ago first, each call in receipt order, so calls in a row go through the whole quarantine (SELECT count(*) FROM sync.quarantine; says how many there are). Usage: SELECT * FROM sync.retry_all(); or SELECT * FROM sync.retry_all(''name.too_long'');';

-- sync.discard
-- Writes off one quarantined delivery with a stated reason; it stays in the inbox.
create function sync.discard(p_inbox_id bigint, p_reason text) returns sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_receipt sync.receipt;
begin
    -- No row asked for is said first, and its hint names no row: with the
    -- reason missing too, the hint once filled in row 42, someone else's
    -- delivery, for the DBA to copy (hostile review).
    if p_inbox_id is null then
        raise exception 'the inbox id of the delivery to be discarded is null'
            using errcode = 'FS005',
                  hint = 'Find its inbox_id in the quarantine: SELECT inbox_id, codes, messages FROM sync.quarantine; '
                      || 'then call sync.discard with that id and why it is safe to drop.';
    end if;
    -- Blank as a name is blank (sync_private.is_blank): a tab, a no-break or
    -- zero-width space passed btrim and was kept for a year as the reason
    -- (hostile review).
    if p_reason is null or sync_private.is_blank(p_reason) then
        -- The hint names the row asked for: one copied from psql as it stood
        -- named row 42, and wrote off someone else's delivery (hostile review).
        raise exception 'a reason is required to discard inbox row %', p_inbox_id
            using errcode = 'FS003',
                  hint = format('Say why it is safe to drop: SELECT * FROM sync.discard(%s, ''why it is safe to drop'');',
                      p_inbox_id);
    end if;
    -- The reason is kept a year beside the body, and shown in the
    -- quarantine: one of 2 MB was taken as it came (hostile review). A
    -- sentence or two says why; long evidence belongs in a ticket.
    if char_length(p_reason) > 1000 then
        raise exception 'the reason to discard inbox row % has % characters; at most 1000 are kept',
            p_inbox_id, char_length(p_reason)
            using errcode = 'FS096',
                  hint = format('Say why in a sentence or two and name where the evidence is: '
                      || 'SELECT * FROM sync.discard(%s, ''test payload from the CMS vendor, ticket OPS-123'');',
                      p_inbox_id);
    end if;
    perform sync_private.claim_rejected(p_inbox_id, 'discarded');
    -- A discarded delivery retried and refused again (ADR 0039) is
    -- discarded again: the earlier who, why and when go to
    -- earlier_discards, not away (hostile review). The SET reads the row
    -- as it was.
    update sync.inbox
    set status = 'discarded', discarded_by = session_user, discard_reason = p_reason, discarded_at = now(),
        earlier_discards = case when discarded_by is null then earlier_discards
                                else coalesce(earlier_discards, '[]'::jsonb)
                                     || jsonb_build_array(jsonb_build_object(
                                            'by', discarded_by, 'reason', discard_reason, 'at', discarded_at))
                           end
    where id = p_inbox_id
    returning id, status, reasons into v_receipt;
    return v_receipt;
end;
$$;
comment on function sync.discard(bigint, text) is
    'Marks one rejected delivery as discarded, recording who, why (a reason that shows something, else FS003, of at most 1000 characters, else FS096) and when (a delivery discarded before, retried and refused again, keeps the earlier ones in earlier_discards); the row and its body stay in the inbox until the scheduled purge, sync.settings.discarded_purge_after (a year) later. Usage: SELECT * FROM sync.discard(42, ''test payload from the CMS vendor'');';

-- sync.settings is one row (its singleton column): the hook's store, the
-- purges and the health read it. An owner's TRUNCATE left none, and every
-- setting read null, with no word (hostile review). Nothing of ours
-- truncates it: migration 0002 inserts the row, rollbacks drop the table. A
-- setting is changed by an UPDATE (sync_private.refuse_truncate, db/10-rules.sql).
create trigger _010_refuse_truncate_settings
    before truncate on sync.settings
    for each statement execute function sync_private.refuse_truncate(
        'Change a setting in place: UPDATE sync.settings SET purge_after = ''120 days''; (docs/operations.md lists them).',
        'FS095',
        'sync.settings cannot be truncated: its one row is every setting the sync reads');
comment on trigger _010_refuse_truncate_settings on sync.settings is
    'Refuses a TRUNCATE of the settings (FS095): every setting would read null.';

-- sync_private.say_which_setting_is_out_of_bounds
-- Trigger: a setting out of its bounds is refused as its CHECK would, saying which setting takes what.
create function sync_private.say_which_setting_is_out_of_bounds() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_check record;
    v_holds boolean;
begin
    -- A setting out of its bounds met the table's CHECK: PostgreSQL's 23514
    -- named the constraint and printed the whole row, and said nothing of
    -- what the setting takes (hostile review). Each CHECK of sync.settings
    -- is asked here first, by its own text, so nothing is written twice and
    -- a new one is covered by its migration alone. The error stays a
    -- check_violation naming its constraint, as before; its message is the
    -- constraint's comment and the values it read, its hint the way back.
    -- A CHECK that reads null lets the row pass, as the constraint does.
    for v_check in
        select c.conname,
               pg_catalog.pg_get_expr(c.conbin, c.conrelid) as expression,
               pg_catalog.obj_description(c.oid, 'pg_constraint') as says,
               array(select a.attname::text
                     from pg_catalog.pg_attribute as a
                     where a.attrelid = c.conrelid and a.attnum = any (c.conkey)
                     order by a.attnum) as columns
        from pg_catalog.pg_constraint as c
        where c.conrelid = 'sync.settings'::regclass and c.contype = 'c'
        order by c.conname
    loop
        execute format('select %s from (select ($1).*) as settings', v_check.expression)
            into v_holds using new;
        if not v_holds then
            raise exception 'sync.settings cannot take %: %',
                (select string_agg(format('%s = %s', k, pg_catalog.to_jsonb(new) ->> k), ', ')
                 from unnest(v_check.columns) as k),
                coalesce(v_check.says, v_check.conname)
                using errcode = 'check_violation', schema = 'sync', table = 'settings',
                      constraint = v_check.conname,
                      hint = format('The check %s reads: %s. The setting keeps its value; '
                                    || 'docs/operations.md says what each setting does.',
                                    v_check.conname, v_check.expression);
        end if;
    end loop;
    return new;
end;
$$;
comment on function sync_private.say_which_setting_is_out_of_bounds() is
    'Trigger function of sync.settings''s _020_say_which_setting_is_out_of_bounds: asks each CHECK of the table of the new row first, and refuses one it breaks as the CHECK would (23514, naming the constraint), with the setting, its value and the constraint''s comment in the message and the check''s text in the hint.';

create trigger _020_say_which_setting_is_out_of_bounds
    before insert or update on sync.settings
    for each row execute function sync_private.say_which_setting_is_out_of_bounds();
comment on trigger _020_say_which_setting_is_out_of_bounds on sync.settings is
    'Refuses a setting out of its bounds before its CHECK does, saying which setting, what it was given and what it takes.';
