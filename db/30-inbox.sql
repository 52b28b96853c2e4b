-- The inbox: every delivery stored as received, in receipt order, with its outcome.
--
-- The hook stores each batch with sync.store_many and answers; its merger then
-- applies what was stored with sync.apply_received (ADR 0022). sync.receive and
-- sync.receive_many store and apply in one transaction (psql, tests, a hook of
-- an earlier release), sync.receive_spooled a delivery the hook kept on disk
-- while the database was down, sync.store_spooled (the spool's drain) many of
-- them, pending for the merger. All of them, and the revert and the repair,
-- store through sync_private.store(): judge the bodies, lock their fragrances,
-- draw the inbox ids, settle (db/20-merge.sql), and insert each row once with
-- its outcome. apply_received, apply_pending and the retries process rows
-- already stored through sync_private.process(), the same steps with an
-- UPDATE at the end.

-- sync.receipt: what the hook answers for one delivery.
create type sync.receipt as (
    inbox_id bigint,
    status text,
    reasons jsonb
);
comment on type sync.receipt is
    'Outcome of storing (and, with sync.settings.apply_on_receipt, processing) one delivery: its inbox id, status (applied, ignored, rejected, pending) and reasons.';
comment on column sync.receipt.inbox_id is 'The delivery''s row in sync.inbox (null when it was not stored).';
comment on column sync.receipt.status is 'applied, ignored, rejected or pending.';
comment on column sync.receipt.reasons is 'Why, as a JSON array of {code, severity, field, message}.';

-- sync.batch_result: what a batch call (apply_pending, retry_all) did.
create type sync.batch_result as (
    processed integer,
    applied integer,
    ignored integer,
    rejected integer,
    pending integer,
    first_inbox_id bigint,
    last_inbox_id bigint
);
comment on type sync.batch_result is
    'Counts of a batch run by outcome, and the first and last inbox ids it processed.';
comment on column sync.batch_result.processed is 'Deliveries the call processed.';
comment on column sync.batch_result.applied is 'Of them, applied.';
comment on column sync.batch_result.ignored is 'Of them, ignored (nothing to change, or stale).';
comment on column sync.batch_result.rejected is 'Of them, rejected (now in sync.quarantine).';
comment on column sync.batch_result.pending is 'Of them, left pending (internal.retryable: call again). Deliveries of a fragrance another transaction holds are not processed, so not counted here or in processed: the call''s NOTICE names them.';
comment on column sync.batch_result.first_inbox_id is 'The lowest inbox id processed.';
comment on column sync.batch_result.last_inbox_id is 'The highest inbox id processed.';

-- sync_private.protect_receipt
-- Trigger: refuses any change to what was received.
create function sync_private.protect_receipt() returns trigger
    language plpgsql
    -- Fires in the writer's session: its path pinned, as every trigger's.
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- Its trigger's WHEN clause makes the same test, so this runs only to refuse.
    raise exception 'inbox row % is a record of what was received and cannot be changed', old.id
        using errcode = 'FS010',
              hint = 'Change its processing with sync.retry() or sync.discard() instead.';
end;
$$;
comment on function sync_private.protect_receipt() is
    'Trigger function of sync.inbox''s _100_protect_receipt: raises FS010, since the received part of a delivery (id, received_at, body, request metadata, origin, key, the position it counts at) never changes.';

create trigger _100_protect_receipt
    before update on sync.inbox
    for each row
    when (new.id is distinct from old.id
        or new.received_at is distinct from old.received_at
        or new.body is distinct from old.body
        or new.content_type is distinct from old.content_type
        or new.client_addr is distinct from old.client_addr
        or new.client_addr_raw is distinct from old.client_addr_raw
        or new.user_agent is distinct from old.user_agent
        or new.spool_key is distinct from old.spool_key
        or new.origin is distinct from old.origin
        -- Where it counts in receipt order, as its id: a repair's snapshot
        -- position, a revert's. Migration 0072's rollback drops this
        -- trigger before 0071's drops the column (the next apply makes it).
        or new.counts_at is distinct from old.counts_at)
    execute function sync_private.protect_receipt();
comment on trigger _100_protect_receipt on sync.inbox is
    'Keeps the received part of an inbox row immutable (FS010): id, received_at, body, content_type, client_addr(_raw), user_agent, spool_key, origin, and the position it counts at (counts_at). Processing changes status and reasons only.';

-- sync_private.addresses
-- Client addresses as inet where PostgreSQL can read them; the others kept as text.
create function sync_private.addresses(p_addresses text[], out addresses inet[], out raw text[])
    language plpgsql
    immutable
as $$
begin
    -- Python and PostgreSQL disagree on some addresses (fe80::1%eth0): a
    -- delivery is never refused for its metadata. One cast for the batch; one
    -- per address only when it fails.
    begin
        addresses := p_addresses::inet[];
        raw := array_fill(null::text, array[coalesce(cardinality(p_addresses), 0)]);
        return;
    exception when others then
        null;
    end;
    addresses := '{}';
    raw := '{}';
    for i in 1 .. coalesce(cardinality(p_addresses), 0) loop
        begin
            addresses := addresses || p_addresses[i]::inet;
            raw := raw || null::text;
        exception when others then
            addresses := addresses || null::inet;
            raw := raw || p_addresses[i];
        end;
    end loop;
end;
$$;
comment on function sync_private.addresses(text[]) is
    'Splits client addresses into those PostgreSQL reads as inet (addresses) and the text of the others (raw), position by position, so an address the database cannot parse is kept as it came instead of refusing the delivery.';

-- sync_private.pending_since
-- Deliveries stored after an inbox id and not merged yet, as the merge will read them.
create function sync_private.pending_since(p_after bigint)
    returns table (inbox_id bigint, fragrance_id integer, payload jsonb, valid boolean)
    language plpgsql
    stable
as $$
declare
    v_ids bigint[];
    v_bodies bytea[];
begin
    -- A pending row holds only its body until the merge judges it (the hook
    -- stores first), so it is judged here by the rules in force. A DBA verb
    -- that writes older values (sync.revert, sync.repair) leaves alone what
    -- these will set: they were received after the moment it restores.
    -- Those the rules refuse too, when they name a fragrance and carry
    -- fields (valid false): bound for quarantine, and a DBA verb leaves
    -- their fields to them as it does a quarantined one's; written over at
    -- a newer inbox id, the retried change found them set since and was
    -- ignored as stale (review).
    select array_agg(i.id order by i.id), array_agg(i.body order by i.id)
    into v_ids, v_bodies
    from sync.inbox as i
    where i.status = 'pending' and i.id > p_after;
    if v_ids is null then
        return;
    end if;
    return query
    select d.inbox_id, d.fragrance_id, d.payload, d.valid
    from unnest(sync_private.judge(v_ids, v_bodies, (sync_private.current_rules()).rules)) as d
    where d.valid or (d.fragrance_id is not null and jsonb_typeof(d.payload) = 'object');
end;
$$;
comment on function sync_private.pending_since(bigint) is
    'Pending deliveries with an inbox id above p_after, parsed by the rules in force: their fragrance, payload and whether the rules accept them (valid); those refused are listed when they name a fragrance and are an object (bound for quarantine). What sync.revert and sync.repair must not overtake.';

-- sync_private.first_receipt_time
-- The earliest moment a delivery can be dated: 1970-01-01 UTC, where the hook's clock starts.
create function sync_private.first_receipt_time() returns timestamptz
    language sql
    immutable
    parallel safe
as $$
    -- The hook dates a delivery by its host's clock, which writes Unix time:
    -- nothing before 1970, and a host without a clock battery starts there.
    -- sync_private.store refuses an earlier receipt time (FS020), so
    -- sync.health_at refuses an earlier moment as a typo (FS005): both ask
    -- this function, which holds the one copy of the date.
    select timestamptz '1970-01-01 00:00:00+00';
$$;
comment on function sync_private.first_receipt_time() is
    'The earliest moment a delivery can be dated, 1970-01-01 UTC (the hook''s clock writes Unix time): sync_private.store refuses an earlier receipt time (FS020), sync.health_at an earlier moment (FS005).';

-- sync_private.store
-- Stores a batch of deliveries in input order, each row once, processed when asked; receipts in input order.
create function sync_private.store(
    p_bodies bytea[],
    p_content_types text[],
    p_client_addrs text[],
    p_user_agents text[],
    p_keys uuid[],
    p_received_ats timestamptz[],
    p_origin text,
    p_process boolean,
    p_counts_at bigint default null
) returns setof sync.receipt
    language plpgsql
    -- Plans: see sync_private.judge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_count constant integer := coalesce(cardinality(p_bodies), 0);
    v_new integer[];
    v_rows sync_private.judged[];
    v_locked integer[];
    v_ids bigint[];
    v_received_at timestamptz;
    v_outcomes sync_private.outcome[] := '{}';
    v_addresses inet[];
    v_raw text[];
    v_rules record;
    v_version bigint;
begin
    if coalesce(cardinality(p_content_types), 0) <> v_count
        or coalesce(cardinality(p_client_addrs), 0) <> v_count
        or coalesce(cardinality(p_user_agents), 0) <> v_count
        or coalesce(cardinality(p_keys), 0) <> v_count
        or (p_received_ats is not null and cardinality(p_received_ats) <> v_count)
    then
        raise exception 'a batch needs arrays of one length, got % bodies, % content types, % addresses, % user agents, % keys and % receipt times',
            v_count, cardinality(p_content_types), cardinality(p_client_addrs), cardinality(p_user_agents),
            cardinality(p_keys), coalesce(cardinality(p_received_ats)::text, 'no')
            using errcode = 'FS021',
                  hint = 'Pass one element per delivery in every array (null where a value is unknown).';
    end if;
    if array_ndims(p_bodies) > 1 or array_ndims(p_content_types) > 1 or array_ndims(p_client_addrs) > 1
        or array_ndims(p_user_agents) > 1 or array_ndims(p_keys) > 1 or array_ndims(p_received_ats) > 1
    then
        raise exception 'a batch needs one-dimensional arrays, one element per delivery'
            using errcode = 'FS021',
                  hint = 'Pass ARRAY[a, b, c], not ARRAY[[a, b], [c, d]].';
    end if;
    -- A receipt time no hook's clock gives (sync_private.first_receipt_time)
    -- is refused: one row received at -infinity or in 4713 BC made
    -- sync.health, sync.metrics() and the status page fail for good
    -- (received_at never changes), and only a login's hand could write it.
    -- Later than now is taken as now, below.
    if exists (select from unnest(p_received_ats) as t where t < sync_private.first_receipt_time()) then
        raise exception 'a spooled delivery''s receipt time must be % or later (the hook''s clock), got %',
            to_char(sync_private.first_receipt_time() at time zone 'UTC', 'YYYY-MM-DD "UTC"'),
            (select min(t) from unnest(p_received_ats) as t)
            using errcode = 'FS020',
                  hint = 'Pass the received_at the hook wrote in its spool; the hook never writes an earlier one, so check who called with this login.';
    end if;
    if v_count = 0 then
        return;
    end if;
    -- A null body is a delivery of no bytes (body.empty), not a failure of its batch.
    if array_position(p_bodies, null) is not null then
        p_bodies := array(select coalesce(b, ''::bytea) from unnest(p_bodies) as b);
    end if;

    -- Processing: judge the bodies (numbered by position for now) and lock
    -- their fragrances first. The locks come before the ids: a batch that
    -- waited for a fragrance is ordered after the batch that held it, as one
    -- by one. Two batches of one fragrance are so serialised, which also
    -- makes the key check below see a delivery a concurrent drain stored.
    if p_process then
        v_rules := sync_private.current_rules();
        v_version := v_rules.version;
        v_rows := sync_private.judge(array(select n from generate_series(1, v_count) as n), p_bodies,
                                     v_rules.rules);
        v_locked := (sync_private.lock_fragrances(v_rows)).locked;
    end if;

    -- A key already stored (a spooled delivery whose first commit's reply was
    -- lost, or a drain replayed after a crash), or seen earlier in the batch,
    -- is not stored again: its receipt is the stored one.
    -- (The first of each key by a window: a subquery per key over the whole
    -- batch compared every pair, 224 ms for a store of 2,000.)
    v_new := array(
        select k.n
        from (select o.key, o.n, row_number() over (partition by o.key order by o.n) as nth
              from unnest(p_keys) with ordinality as o (key, n)) as k
        where k.key is null
           or (k.nth = 1 and not exists (select from sync.inbox as i where i.spool_key = k.key))
        order by k.n);

    -- Receipt order is input order: ids ascending, drawn once the locks are
    -- held. received_at: when the batch took its place in receipt order (one
    -- moment for the batch; sync.inbox_position breaks ties by id), or the
    -- moment the hook first received a spooled delivery, never later than
    -- now: the hook's login names that moment, and one in the future made
    -- the delivery, and every one stored after it, newer than any CMS export
    -- (sync.inbox_position), so no repair undid them (hostile review).
    v_received_at := clock_timestamp();
    v_ids := array(select nextval('sync.inbox_id_seq') from unnest(v_new) order by 1);

    if p_process and cardinality(v_new) > 0 then
        v_outcomes := sync_private.settle(
            array(select row(v_ids[x.i], d.payload, d.fragrance_id, d.reasons, d.valid)::sync_private.judged
                  from unnest(v_new) with ordinality as x (n, i)
                  join unnest(v_rows) as d on d.inbox_id = x.n
                  order by x.i),
            v_locked, v_rules.rules, v_version,
            -- A repair's deliveries count at its snapshot's position.
            case when p_counts_at is null then '{}'::jsonb
                 else (select jsonb_object_agg(i, p_counts_at) from unnest(v_ids) as i) end);
    end if;

    select a.addresses, a.raw into v_addresses, v_raw from sync_private.addresses(p_client_addrs) as a;
    insert into sync.inbox (id, received_at, body, content_type, client_addr, client_addr_raw, user_agent,
                            spool_key, origin, payload, fragrance_id, status, reasons, applied_fields,
                            stale_fields, attempts, processed_at, rules_version, counts_at)
    overriding system value
    select v_ids[x.i], least(p_received_ats[x.n], v_received_at), p_bodies[x.n], p_content_types[x.n],
        v_addresses[x.n], v_raw[x.n], p_user_agents[x.n], p_keys[x.n], p_origin,
        o.payload, o.fragrance_id, coalesce(o.status, 'pending'), coalesce(o.reasons, '[]'),
        coalesce(o.applied_fields, '{}'), coalesce(o.stale_fields, '{}'),
        case when o.inbox_id is null then 0 else 1 end,
        case when o.inbox_id is not null then clock_timestamp() end,
        case when o.inbox_id is not null then v_version end,
        p_counts_at
    from unnest(v_new) with ordinality as x (n, i)
    left join unnest(v_outcomes) as o on o.inbox_id = v_ids[x.i]
    order by x.i;

    -- Each receipt looked up by key (a lateral lookup, which only a nested
    -- loop can run): a join planned while the inbox was young hashed the
    -- whole inbox at every call of the session.
    return query
    select i.id, i.status, i.reasons
    from unnest(p_keys) with ordinality as k (key, n)
    left join unnest(v_new) with ordinality as x (n, i) on x.n = k.n
    cross join lateral (
        select s.id, s.status, s.reasons from sync.inbox as s
        where s.id = coalesce(v_ids[x.i], (select p.id from sync.inbox as p where p.spool_key = k.key))
        offset 0) as i
    order by k.n;
end;
$$;
comment on function sync_private.store(bytea[], text[], text[], text[], uuid[], timestamptz[], text, boolean, bigint) is
    'Stores deliveries in input order (which is receipt order), each inbox row inserted once: with p_process, judged by the rules in force (their version is recorded), locked and settled first so the row holds its outcome; else pending. A key already stored returns the stored receipt. p_origin says who made them (webhook, revert, repair); p_received_ats keeps the moments the hook received spooled ones (none later than the store); p_counts_at, the position they all count at in receipt order (a repair''s snapshot''s), kept on their rows for a later merge. The one storing path of every entry point.';

-- sync_private.merge_bytes
-- How many bytes of bodies one merge call takes at most.
create function sync_private.merge_bytes() returns bigint
    language sql
    immutable
    parallel safe
as $$
    -- The claimed bodies travel as one bytea[], and PostgreSQL refuses any
    -- value over 1 GB: 1,000 bodies of MAX_BODY_BYTES set above 1 MiB would
    -- fail every merge, and at 1 MiB one call took 42 s and gigabytes of
    -- memory. A call takes rows in receipt order while the bodies before them
    -- hold less than this (so always at least one); the rest stay claimed
    -- until it commits, then pending for the next call.
    select 64 * 1024 * 1024::bigint;
$$;
comment on function sync_private.merge_bytes() is
    'The most body bytes one merge call (sync.apply_received, sync.apply_pending, sync.retry_all) processes: 64 MiB. Rows past it in a claim are left for the next call; the first row is always taken.';

-- sync_private.hold_back
-- A batch without the deliveries of some fragrances, in the order given.
create function sync_private.hold_back(p_rows sync_private.judged[], p_fragrances integer[])
    returns sync_private.judged[]
    language plpgsql
    immutable
as $$
begin
    -- PL/pgSQL, so its plan is made once per session (a SQL function holding
    -- a subquery is planned again at every call).
    return array(
        select row(u.inbox_id, u.payload, u.fragrance_id, u.reasons, u.valid)::sync_private.judged
        from unnest(p_rows) with ordinality as u (inbox_id, payload, fragrance_id, reasons, valid, n)
        where u.fragrance_id is null or u.fragrance_id <> all (p_fragrances)
        order by u.n);
end;
$$;
comment on function sync_private.hold_back(sync_private.judged[], integer[]) is
    'The deliveries of p_rows but those naming a fragrance of p_fragrances, in the order given: what sync_private.process merges when it leaves some fragrances'' deliveries pending.';

-- sync_private.process
-- The merge of rows already stored and locked: judge, lock, settle, record each outcome on its row.
create function sync_private.process(
    p_ids bigint[],
    p_skip_held boolean default false,
    p_behind integer[] default '{}',
    p_said_by text default null
)
    returns sync_private.outcome[]
    language plpgsql
    -- Plans: see sync_private.judge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_ids bigint[];
    v_bodies bytea[];
    v_rows sync_private.judged[];
    v_outcomes sync_private.outcome[];
    v_counts_at jsonb;
    v_rules record := sync_private.current_rules();
    v_lock record;
    v_locked integer[];
    v_held integer[];
    v_turns integer[];
    v_taken integer[];
begin
    -- Taken in the order given, while the bodies before a row hold less than
    -- sync_private.merge_bytes() (octet_length does not read them): the rest
    -- stay as they are for the next call. The order given is receipt order
    -- for a claim of pending rows, the quarantine's for sync.retry_all, which
    -- once cut its 64 MiB a second time by hand. Then merged in receipt
    -- order. Each row is reached by its key (offset 0 keeps the subquery a
    -- lookup): a plan kept from a young inbox otherwise hashed the whole
    -- inbox at every call of the session.
    select array_agg(w.id order by w.id), array_agg(w.body order by w.id),
           coalesce(jsonb_object_agg(w.id, w.counts_at) filter (where w.counts_at is not null), '{}')
    into v_ids, v_bodies, v_counts_at
    from (select c.id, b.body, b.counts_at,
                 sum(octet_length(b.body)) over (order by c.n rows unbounded preceding)
                     - octet_length(b.body) as before
          from unnest(p_ids) with ordinality as c (id, n)
          cross join lateral (select i.body, i.counts_at from sync.inbox as i where i.id = c.id offset 0) as b) as w
    where w.before < sync_private.merge_bytes();
    if v_ids is null then
        return '{}';
    end if;
    v_rows := sync_private.judge(v_ids, v_bodies, v_rules.rules);
    if cardinality(p_behind) > 0 then
        -- Fragrances with an earlier delivery left pending by a claim the
        -- caller passed over (sync_private.process_pending): their later
        -- deliveries wait behind it, or they would be merged first (a cost
        -- merged before the rename left for a held turn; a change refused as
        -- fragrance_id.unknown before the creation left pending; hostile
        -- review). Left as they are, untouched, for a later call.
        v_rows := sync_private.hold_back(v_rows, p_behind);
    end if;
    v_lock := sync_private.lock_fragrances(v_rows, p_skip_held, p_said_by);
    v_locked := v_lock.locked;
    -- Held rows and turns are looked for only when the locks were not all
    -- taken (v_lock.whole false: the 2 s ran out). When they were, every
    -- existing row and every turn the deliveries need is this transaction's,
    -- so the three statements below would find nothing held: a merge call
    -- skips them (bench/README.md, step 41).
    if p_skip_held and not v_lock.whole then
        -- A fragrance whose row another transaction holds (a DBA's open
        -- transaction, an application's long update) keeps its deliveries
        -- pending, untouched and in receipt order, for a later call; the
        -- other fragrances' are merged now. Waiting for it held every
        -- delivery of the claim, and every one received after, until that
        -- transaction ended (hostile review). A later call takes them up
        -- again: nothing of that fragrance is merged before them. Looked
        -- for only when fewer rows were locked than fragrances named (a held
        -- or a missing one), so a batch pays nothing for it.
        if cardinality(v_locked) < (select count(distinct d.fragrance_id) from unnest(v_rows) as d
                                    where d.valid) then
            -- Named, not locked, and there: held. Read by key; "<> all (v_locked)"
            -- compared each row with the whole locked array.
            v_held := array(
                select f.fragrance_id from public.fragrances as f
                where f.fragrance_id = any (array(select d.fragrance_id from unnest(v_rows) as d where d.valid
                                                  except
                                                  select l.fragrance_id from unnest(v_locked) as l (fragrance_id)))
                order by f.fragrance_id);
        end if;
        if cardinality(v_held) > 0 then
            raise notice '% of % deliveries left pending: another transaction holds fragrance %',
                (select count(*) from unnest(v_rows) as d where d.fragrance_id = any (v_held)),
                cardinality(v_rows), array_to_string(v_held, ', ')
                using hint = 'They are merged once it ends. ' || sync_private.fragrance_holders_hint();
            v_rows := sync_private.hold_back(v_rows, v_held);
        end if;
        -- The same for names: a delivery that writes a name takes the
        -- turns of its new and its old name (sync_private.lock_names),
        -- until commit. A turn another transaction holds (one left open
        -- after writing names: a DBA's rename, a session of the hook's login)
        -- keeps that fragrance's deliveries pending for a later call, like a
        -- held row; waiting for it held the merger, and every delivery
        -- received after, until that transaction ended (hostile review).
        v_turns := array(
            select distinct sync_private.name_turn_of(x.name)
            from (select d.payload ->> 'name' as name from unnest(v_rows) as d
                  where d.valid and d.payload ? 'name'
                  union all
                  -- The names they replace, read by key: "= any (v_locked)"
                  -- beside the list compared each row with the whole array
                  -- (120 ms per 1,000 deliveries, measured).
                  select f.name from public.fragrances as f
                  where f.fragrance_id = any (array(select d.fragrance_id from unnest(v_rows) as d
                                                    where d.valid and d.payload ? 'name'))) as x
            where x.name is not null);
        if cardinality(v_turns) > 0 then
            v_taken := sync_private.take_turns(v_turns);
            if cardinality(v_taken) < cardinality(v_turns) then
                v_held := array(
                    select distinct d.fragrance_id from unnest(v_rows) as d
                    left join lateral (select l.name from public.fragrances as l
                                       where l.fragrance_id = d.fragrance_id
                                       offset 0) as f on true
                    where d.valid and d.payload ? 'name'
                      and (sync_private.name_turn_of(d.payload ->> 'name') <> all (v_taken)
                           or sync_private.name_turn_of(f.name) <> all (v_taken))
                    order by 1);
                raise notice '% of % deliveries left pending: another transaction holds the turn of a name they write or replace (fragrance %)',
                    (select count(*) from unnest(v_rows) as d where d.fragrance_id = any (v_held)),
                    cardinality(v_rows), array_to_string(v_held, ', ')
                    using hint = 'They are merged once it ends: a transaction that wrote names (a rename left open) holds their turns until it commits.';
                v_rows := sync_private.hold_back(v_rows, v_held);
            end if;
        end if;
    end if;
    v_outcomes := sync_private.settle(v_rows, v_locked, v_rules.rules, v_rules.version, v_counts_at);

    update sync.inbox as i
    set payload = o.payload,
        fragrance_id = o.fragrance_id,
        status = o.status,
        reasons = o.reasons,
        applied_fields = o.applied_fields,
        stale_fields = o.stale_fields,
        attempts = i.attempts + 1,
        processed_at = clock_timestamp(),
        rules_version = v_rules.version
    from unnest(v_outcomes) as o
    -- Read by the claimed ids: a plan kept from a young inbox otherwise
    -- hashed the whole inbox at every call of the session. Joined to the
    -- outcomes by "i.id + 0", which no index can serve: joined by i.id, a
    -- plan made on a new install's inbox reached each row through
    -- sync.inbox_fragrance_idx (fragrance_id, id) by id alone, a walk of
    -- the whole index per outcome, at every call of the session until the
    -- inbox was analyzed (5 ms of a merge of 16 on average over 48,000
    -- deliveries; bench/README.md, step 44). So the rows are read by the primary key,
    -- with the claimed ids, and hashed with the outcomes.
    where i.id = any (v_ids) and i.id + 0 = o.inbox_id;
    return v_outcomes;
end;
$$;
comment on function sync_private.process(bigint[], boolean, integer[], text) is
    'Processes inbox rows the caller has locked, as many as sync_private.merge_bytes() of bodies allows taken in the order given (always the first), in receipt order: judges them by the rules in force, settles them as sync_private.store does on receipt, writes each outcome on its row and returns the outcomes. With p_skip_held, the deliveries of a fragrance whose row another transaction holds, or that write or replace a name whose name.duplicate turn another transaction holds (sync_private.take_turns), are left pending and untouched (no outcome; a NOTICE names the fragrances) instead of waited for; so are the deliveries of the fragrances of p_behind (an earlier one of theirs was left pending). With p_said_by (a DBA verb), a wait of more than 2 s for a held fragrance is said in a NOTICE in its name (sync_private.lock_fragrances). Behind sync_private.process_claimed and sync_private.process_pending.';

-- sync_private.count_outcomes
-- What a batch call did, counted from its outcomes.
create function sync_private.count_outcomes(p_outcomes sync_private.outcome[]) returns sync.batch_result
    language plpgsql
    immutable
as $$
declare
    v_result sync.batch_result;
begin
    select count(*), count(*) filter (where o.status = 'applied'), count(*) filter (where o.status = 'ignored'),
        count(*) filter (where o.status = 'rejected'), count(*) filter (where o.status = 'pending'),
        min(o.inbox_id), max(o.inbox_id)
    into v_result
    from unnest(p_outcomes) as o;
    return v_result;
end;
$$;
comment on function sync_private.count_outcomes(sync_private.outcome[]) is
    'Counts outcomes by status, with the lowest and highest inbox id: the sync.batch_result that sync.apply_pending, sync.retry_all and sync_private.process_claimed return.';

-- sync_private.process_claimed
-- Processes inbox rows the caller has locked, in receipt order, and records each outcome.
create function sync_private.process_claimed(p_ids bigint[], p_said_by text default null)
    returns sync.batch_result
    language plpgsql
as $$
begin
    return sync_private.count_outcomes(sync_private.process(p_ids, false, '{}', p_said_by));
end;
$$;
comment on function sync_private.process_claimed(bigint[], text) is
    'Processes the given inbox rows (the caller has locked them) through sync_private.process, waiting for any fragrance another transaction holds (said in a NOTICE after 2 s in the name of p_said_by, the DBA verb, when given), and returns the counts. Behind sync.retry and sync.retry_all.';

-- sync_private.process_pending
-- Claims the oldest pending deliveries no other session is processing, and processes them.
create function sync_private.process_pending(p_limit integer, p_webhooks_only boolean)
    returns sync_private.outcome[]
    language plpgsql
    -- Plans: see sync_private.judge. The claim reads the pending rows through
    -- their partial index, however stale the statistics: a session that
    -- planned it on a young inbox read every inbox row at each call (5,040
    -- rows to claim 5, measured). Generic: planned for id > 0 on a young
    -- inbox, a custom plan walked the primary key past every row instead,
    -- and replanning the claim (its LIMIT a parameter) at every call cost 4%
    -- of a lone merge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_ids bigint[];
    v_after bigint := 0;
    v_outcomes sync_private.outcome[];
    v_behind integer[] := '{}';
begin
    -- The claim skips rows another session is processing, so several hook
    -- workers and DBAs can run at once and never apply a delivery twice.
    -- The deliveries of a fragrance another transaction holds stay pending
    -- (sync_private.process, which names them in a NOTICE); a claim of
    -- nothing else is passed over, and the next p_limit claimed, so that they
    -- never hold back the deliveries of every other fragrance received after
    -- them: a call that returned nothing made its caller stop, as the
    -- comments of sync.apply_pending tell a DBA to (hostile review).
    loop
        v_ids := array(
            select i.id from sync.inbox as i
            where i.status = 'pending' and i.id > v_after
              and (not p_webhooks_only or i.origin = 'webhook')
            order by i.id
            limit p_limit
            for update skip locked);
        if cardinality(v_ids) = 0 then
            return '{}';
        end if;
        v_outcomes := sync_private.process(v_ids, true, v_behind);
        if cardinality(v_outcomes) > 0 then
            return v_outcomes;
        end if;
        -- Every delivery of the claim was left pending: their fragrances'
        -- later deliveries, in the next claims, wait behind them. A held row
        -- holds those back by itself, a held name's turn only the deliveries
        -- that write a name: a creation left pending was overtaken by its
        -- fragrance's next change, refused as fragrance_id.unknown (hostile
        -- review). Judged again here for their fragrance, which a pending row
        -- does not hold; only on this path, a claim that merged nothing.
        v_behind := v_behind || array(
            select distinct d.fragrance_id
            from unnest(sync_private.judge(
                     v_ids,
                     array(select b.body from unnest(v_ids) with ordinality as c (id, n)
                           cross join lateral (select i.body from sync.inbox as i where i.id = c.id offset 0) as b
                           order by c.n),
                     (sync_private.current_rules()).rules)) as d
            where d.fragrance_id is not null);
        v_after := v_ids[cardinality(v_ids)];
    end loop;
end;
$$;
comment on function sync_private.process_pending(integer, boolean) is
    'Claims (FOR UPDATE SKIP LOCKED) up to p_limit pending deliveries in receipt order, only webhooks with p_webhooks_only, and processes them through sync_private.process, leaving pending the deliveries of a fragrance another transaction holds; when a claim holds nothing else it claims the next p_limit, in which the fragrances of the claims passed over stay pending behind them. Returns the outcomes (none when nothing is pending). Behind sync.apply_received and sync.apply_pending.';

-- sync.receive
-- Stores one delivery exactly as received and returns its receipt.
create function sync.receive(
    p_body bytea,
    p_content_type text default null,
    p_client_addr text default null,
    p_user_agent text default null
) returns sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_receipt sync.receipt;
begin
    -- PL/pgSQL, as every entry point of the hook and the spool: a SECURITY
    -- DEFINER SQL function is never inlined, so its query would be parsed and
    -- planned again at every call; PL/pgSQL keeps the plan for the session.
    select r.inbox_id, r.status, r.reasons into v_receipt
    from sync_private.store(array[p_body], array[p_content_type], array[p_client_addr], array[p_user_agent],
                            array[null::uuid], null, 'webhook',
                            (select s.apply_on_receipt from sync.settings as s)) as r;
    return v_receipt;
end;
$$;
comment on function sync.receive(bytea, text, text, text) is
    'Stores one webhook delivery in sync.inbox (processing it at once when sync.settings.apply_on_receipt) and returns (inbox_id, status, reasons): a batch of one through sync.receive_many''s path. A client address PostgreSQL cannot read is kept as text. Usage: SELECT * FROM sync.receive(''{"fragrance_id": 7, "cost": 12}'');';

-- sync.receive_many
-- Stores and applies a batch of deliveries with the keys given them, in input order, one commit for all.
create function sync.receive_many(
    p_bodies bytea[],
    p_content_types text[],
    p_client_addrs text[],
    p_user_agents text[],
    p_keys uuid[],
    p_received_ats timestamptz[] default null
) returns setof sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- PL/pgSQL for its kept plan: see sync.receive.
    return query
    select r.inbox_id, r.status, r.reasons
    from sync_private.store(p_bodies, p_content_types, p_client_addrs, p_user_agents, p_keys, p_received_ats,
                            'webhook', (select s.apply_on_receipt from sync.settings as s)) as r;
end;
$$;
comment on function sync.receive_many(bytea[], text[], text[], text[], uuid[], timestamptz[]) is
    'Stores a batch of deliveries with the keys the caller gave them, in one transaction and in input order (receipt order), each row processed on receipt when sync.settings.apply_on_receipt; returns one receipt per delivery, in input order. A key already stored is not stored again (its receipt comes back). p_received_ats: when the hook received spooled deliveries (null: now).';

-- sync.store_many
-- The hook's entry point: stores a batch of deliveries as received, pending, one commit for all.
create function sync.store_many(
    p_bodies bytea[],
    p_content_types text[],
    p_client_addrs text[],
    p_user_agents text[],
    p_keys uuid[]
) returns setof sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- Storing is all the answer waits for: the rules and the merge run right
    -- after, in sync.apply_received, where many batches go through at once
    -- (ADR 0022). Ids are drawn at insert, so receipt order is still inbox id
    -- order, and the per-field clock (ADR 0002) makes the merge's order
    -- between concurrent batches irrelevant. PL/pgSQL for its kept plan: see
    -- sync.receive.
    return query
    select r.inbox_id, r.status, r.reasons
    from sync_private.store(p_bodies, p_content_types, p_client_addrs, p_user_agents, p_keys, null,
                            'webhook', false) as r;
end;
$$;
comment on function sync.store_many(bytea[], text[], text[], text[], uuid[]) is
    'The hook''s entry point: stores a batch of deliveries with the keys the hook gave them, in one transaction and in input order (receipt order), each row pending; sync.apply_received then judges and merges them. Returns one receipt per delivery, in input order; a key already stored returns the stored receipt.';

-- sync.store_spooled
-- The spool's drain: stores deliveries the hook kept on disk, with their receipt times, pending.
create function sync.store_spooled(
    p_bodies bytea[],
    p_content_types text[],
    p_client_addrs text[],
    p_user_agents text[],
    p_keys uuid[],
    p_received_ats timestamptz[]
) returns setof sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- As sync.store_many: storing only, the merger applies them right after.
    -- The drain stored and applied in one transaction (sync.receive_many),
    -- which locks the fragrances the deliveries name: a DBA's open
    -- transaction holding one of those rows held the whole spool, and every
    -- delivery queued behind it for other fragrances, until it ended
    -- (hostile review). Storing takes no lock on public.fragrances.
    --
    -- The drain deletes its copies once this commits, so the commit must
    -- reach a synchronous standby even when every key was stored already: a
    -- store the hook gave up on while its commit waited for the standby
    -- (the hook's deadline cancels the wait) is on the primary alone, and a
    -- transaction that writes no WAL commits without waiting for the
    -- standby; a failover then lost a delivery answered 202 (hostile review).
    -- Locking the rows already stored writes WAL, so this commit waits, and
    -- the standby then has every commit before it, theirs included. (Taking
    -- an xid alone is not enough: PostgreSQL waits only when the transaction
    -- wrote WAL before its commit record.) The lock waits for a merge that
    -- has claimed such a row, which only a delivery already stored meets.
    if p_keys is null or array_position(p_keys, null) is not null
        or p_received_ats is null or array_position(p_received_ats, null) is not null
    then
        raise exception 'a spooled delivery needs its key and its receipt time'
            using errcode = 'FS020',
                  hint = 'Pass the keys and receipt times the hook wrote in its spool.';
    end if;
    --
    -- A key the store's check did not see, because the transaction storing
    -- it had not committed (the hook's store it gave up on), makes the
    -- insert wait for that transaction, and fail on the key once it
    -- commits: the drain then set a stored delivery aside as refused
    -- (hostile review). That store is looked at again instead, and its
    -- receipt returned. Here and not in sync_private.store: only the drain
    -- stores a key another transaction may be storing, and the hook's
    -- batches keep their plain insert (an ON CONFLICT clause probes the key
    -- before each row).
    for v_attempt in 1..3 loop
        begin
            perform from sync.inbox as i
            where i.spool_key = any (p_keys)
            for key share of i;
            return query
            select r.inbox_id, r.status, r.reasons
            from sync_private.store(p_bodies, p_content_types, p_client_addrs, p_user_agents, p_keys,
                                    p_received_ats, 'webhook', false) as r;
            return;
        exception when unique_violation then
            if v_attempt = 3 then
                raise;
            end if;
        end;
    end loop;
end;
$$;
comment on function sync.store_spooled(bytea[], text[], text[], text[], uuid[], timestamptz[]) is
    'The spool''s drain: stores deliveries the hook kept on disk while the database could not take them, in input order (the spool''s order), with the keys and receipt times the hook gave them, each row pending for sync.apply_received; a key already stored is not stored again (its receipt comes back). Takes no lock on public.fragrances, so no open transaction there holds the drain.';

-- sync.apply_received
-- The hook's merger: applies what was stored, in receipt order, right after the answers went out.
create function sync.apply_received(p_limit integer default 1000) returns setof sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_outcomes sync_private.outcome[];
    v_setting text;
begin
    -- The same claim and the same merge as sync.apply_pending
    -- (sync_private.process_pending, which carries the plan settings), so several
    -- hook workers and a DBA can run at once; it does nothing while a DBA
    -- holds deliveries back (sync.settings.apply_on_receipt off). Only
    -- webhooks: a DBA's own deliveries that wait (a repair staged for a
    -- second look, sync.repair(p_apply => false)) are the DBA's to apply
    -- with sync.apply_pending; the sweep applied them within seconds
    -- (hostile review). The receipts let the hook count outcomes and reject
    -- codes in /metrics. The limit is checked by sync_private.check_limit
    -- only when it is bad: a PERFORM is a statement started at every call,
    -- where the test of an IF is evaluated without one (bench/README.md,
    -- step 45).
    if p_limit is null or p_limit < 1 then
        perform sync_private.check_limit(p_limit, 'SELECT * FROM sync.apply_received(1000);');
    end if;
    if not (select s.apply_on_receipt from sync.settings as s) then
        return;
    end if;
    -- The merge commits without waiting for its WAL flush (one fsync less
    -- per merge: 0.4 to 1.2 ms for a lone delivery, measured). Nothing can
    -- be lost by it: the deliveries are already stored durably, a crash
    -- before the flush leaves them pending as if this transaction had
    -- aborted (and every later commit is lost with it, the WAL being in
    -- order), and the next sweep applies them again, in the same order.
    -- Transaction-local: storing (sync.store_many) still waits for its flush.
    -- An assignment, not a PERFORM: evaluated without starting a statement.
    v_setting := pg_catalog.set_config('synchronous_commit', 'off', true);
    v_outcomes := sync_private.process_pending(p_limit, true);
    -- The receipts come from the outcomes: the rows are not read again.
    return query
    select o.inbox_id, o.status, o.reasons
    from unnest(v_outcomes) as o
    order by o.inbox_id;
end;
$$;
comment on function sync.apply_received(integer) is
    'The hook''s merger: when sync.settings.apply_on_receipt, judges and merges up to p_limit pending webhook deliveries (origin webhook: a DBA''s pending revert or repair waits for sync.apply_pending) in receipt order, and at most 64 MiB of bodies (sync_private.merge_bytes; always the first), as sync.apply_pending, skipping rows another session holds and leaving pending the deliveries of a fragrance another transaction holds, and returns their receipts; else returns nothing. Its transaction commits asynchronously (synchronous_commit off): a crash can only undo a merge, whose deliveries are then applied again. Usage: SELECT * FROM sync.apply_received(1000);';

-- sync.receive_spooled
-- Stores one delivery the hook spooled while the database was down, with its original receipt time.
create function sync.receive_spooled(
    p_key uuid,
    p_received_at timestamptz,
    p_body bytea,
    p_content_type text default null,
    p_client_addr text default null,
    p_user_agent text default null
) returns sync.receipt
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_receipt sync.receipt;
begin
    if p_key is null or p_received_at is null then
        raise exception 'a spooled delivery needs its key and its receipt time'
            using errcode = 'FS020',
                  hint = 'Pass the key and received_at the hook wrote in its spool.';
    end if;
    select r.inbox_id, r.status, r.reasons into v_receipt
    from sync_private.store(array[p_body], array[p_content_type], array[p_client_addr], array[p_user_agent],
                            array[p_key], array[p_received_at], 'webhook',
                            (select s.apply_on_receipt from sync.settings as s)) as r;
    return v_receipt;
end;
$$;
comment on function sync.receive_spooled(uuid, timestamptz, bytea, text, text, text) is
    'Stores a delivery the hook spooled while the database was down, keeping its original received_at; a key already stored returns the stored receipt, so a drain can be replayed safely.';

create trigger _010_refuse_truncate_inbox
    before truncate on sync.inbox
    for each statement execute function sync_private.refuse_truncate(
        'Applied and ignored deliveries go with SELECT sync.purge_applied(''90 days''); or the scheduled CALL sync.purge_inbox(); (which keeps what a revert or the health still reads), a rejected one with SELECT * FROM sync.discard(<id>, ''<why>''); (docs/operations.md).');
comment on trigger _010_refuse_truncate_inbox on sync.inbox is
    'Refuses a TRUNCATE of the deliveries (FS092): pending and rejected ones would be lost unapplied, and the purge keeps what a revert and the health read.';
