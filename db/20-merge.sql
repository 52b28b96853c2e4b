-- The merge: valid deltas into public.fragrances, per field, in receipt order.
--
-- One implementation serves every entry point: the hook's batches, a lone
-- sync.receive, apply_pending, retry, revert, repair and the spool's drain all
-- come through sync_private.settle(), and a batch of one is a batch. The
-- caller has judged the deliveries (db/10-rules.sql) and locked their
-- fragrances (sync_private.lock_fragrances) before their inbox ids were
-- drawn; settle() decides and writes, and returns each delivery's outcome for
-- the caller to store on its inbox row (db/30-inbox.sql).
--
-- Ordering: sync.field_version keeps, per fragrance, the inbox id that last
-- wrote each field. A delivery writes a field only when it is newer, so
-- retries, re-deliveries and concurrent deliveries all end at the last
-- received value. Newer is by the position a delivery counts at, then its
-- id: a webhook counts at its id, a repair at its snapshot's position, a
-- revert right after what it read (sync.inbox.counts_at); the clock keeps
-- that position beside the id (sync.field_version.positions), so it
-- outlives the purge of the inbox row (sync_private.counts_before).

-- sync_private.outcome: what processing one delivery decided.
create type sync_private.outcome as (
    inbox_id bigint,
    payload jsonb,
    fragrance_id integer,
    status text,
    reasons jsonb,
    applied_fields text[],
    stale_fields text[]
);
comment on type sync_private.outcome is
    'The outcome of processing one delivery, before it is written on its inbox row: status (applied, ignored, rejected, pending), reasons, the fields it wrote and the fields it carried but left because a later delivery had set them.';
comment on column sync_private.outcome.inbox_id is 'The delivery''s inbox id (or batch position).';
comment on column sync_private.outcome.payload is 'Its parsed body, written on the inbox row.';
comment on column sync_private.outcome.fragrance_id is 'The fragrance it names, when valid.';
comment on column sync_private.outcome.status is 'applied, ignored, rejected or pending.';
comment on column sync_private.outcome.reasons is 'Its reasons: the rules'' and the merge''s.';
comment on column sync_private.outcome.applied_fields is 'The fields it wrote, in table order.';
comment on column sync_private.outcome.stale_fields is 'The fields it carried but left, because a delivery received later had set them.';

-- sync_private.fields
-- The fields of public.fragrances a delta may change: the CMS's columns but the key.
create function sync_private.fields() returns text[]
    language sql
    immutable
    parallel safe
as $$
    -- The one list of the fields the sync writes, in the table's order. Not
    -- read from the catalog: a column the smart library adds is its own (the
    -- CMS never sends it), and read from there it made every merge fail
    -- (hostile review) and every creation wait for a value no delta carries.
    -- Such a column is left alone: deltas naming it get field.unknown, rows
    -- are created with its default. To sync a new CMS field, add it here, to
    -- the two column lists of the merge (sync_private.write's UPDATE and
    -- sync_private.create_missing's INSERT, which SQL makes name them), and
    -- give it a rule; tests/test_merge.py holds a column added by the library.
    select array['name', 'description', 'cost', 'forbidden'];
$$;
comment on function sync_private.fields() is
    'The columns of public.fragrances a delta may change (the CMS''s fields, all but fragrance_id), in table order. A column added to the table by others is not among them.';

-- sync_private.merge_objects
-- jsonb || over many rows: the state of a fragrance after a run of deltas.
create aggregate sync_private.merge_objects(jsonb) (
    sfunc = pg_catalog.jsonb_concat,
    stype = jsonb,
    initcond = '{}'
);
comment on aggregate sync_private.merge_objects(jsonb) is
    'Concatenates jsonb objects in order, later keys winning (the || operator as an aggregate); over a window it gives a fragrance''s fields after each delivery.';

-- sync_private.lock_all
-- Locks fragrances and name turns all at once, or nothing: never holds one while it waits for another.
create function sync_private.lock_all(
    p_ids integer[],
    p_names text[],
    p_renamed integer[],
    p_patience interval
)
    returns integer[]
    language plpgsql
    -- Plans: see sync_private.judge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_lock_timeout constant text := current_setting('lock_timeout');
    v_until constant timestamptz := clock_timestamp() + p_patience;
    v_locked integer[];
    v_turns integer[];
    v_taken integer[];
    v_row integer;
    v_turn integer;
begin
    -- Rows locked in id order, each waited for while the others were held, let a
    -- DBA's own statement be cancelled by PostgreSQL's deadlock check (40P01):
    -- an UPDATE of fragrances 1 and 2 (in the order of its own plan) that held 2
    -- and waited for 1, which a merge held while it waited for 2, was the victim
    -- whenever its wait began first, since the session whose deadlock_timeout
    -- runs out first is the one cancelled (4 times in a stress pass, once
    -- against sync.repair; the same with a name turn the DBA's rename held). No
    -- lock_timeout can make the merge give up first: the DBA's wait may have
    -- begun any time before the merge's, and deadlock_timeout is a superuser's
    -- setting the merge cannot read as a bound. So the merge never waits while
    -- it holds what it takes here: each attempt takes the rows (the fragrances
    -- p_ids names that exist), then the turns of the names they write (p_names)
    -- and replace (the names p_renamed have now, read once their rows are
    -- locked), all without waiting; when one is held, the attempt gives back
    -- what it took, and the next one waits for that one alone, holding none of
    -- them, then takes the others without waiting, or gives all back again. A
    -- merge waiting so is in no circle with a DBA's statement (a merge holds
    -- nothing else a DBA's write waits for: its claimed inbox rows are its own),
    -- and the merge that holds what it waits for is done in milliseconds.
    -- Returns the fragrances locked (those that exist), holding them and the
    -- turns until commit; null, holding none of them, once p_patience is spent
    -- (null: no bound but the caller's lock_timeout, whose 55P03 is raised).
    loop
        begin
            if v_row is not null or v_turn is not null then
                -- Holding none of them: wait for the one that was held. Kept
                -- once had, so the merge that waited longest for a row gets
                -- it first, as in PostgreSQL's own queue for the row; the rest
                -- are taken without waiting, or all are given back.
                if p_patience is not null then
                    -- At least 1 ms: 0 would wait without a bound.
                    perform set_config('lock_timeout',
                        greatest(1, ceil(extract(epoch from v_until - clock_timestamp()) * 1000))::bigint || 'ms',
                        true);
                end if;
                if v_row is not null then
                    perform from public.fragrances as f where f.fragrance_id = v_row for update;
                else
                    perform from sync_private.name_turn as t where t.turn = v_turn for update;
                end if;
                perform set_config('lock_timeout', v_lock_timeout, true);
            end if;
            v_row := null;
            v_turn := null;
            v_locked := array(select f.fragrance_id from public.fragrances as f
                              where f.fragrance_id = any (p_ids)
                              order by f.fragrance_id
                              for update skip locked);
            if cardinality(v_locked) < cardinality(p_ids) then
                -- There and not locked: held. Read by key, by set difference.
                select min(f.fragrance_id) into v_row
                from public.fragrances as f
                where f.fragrance_id = any (array(select unnest(p_ids) except select unnest(v_locked)));
            end if;
            if v_row is null then
                v_turns := array(
                    select distinct sync_private.name_turn_of(x.name)
                    from (select unnest(p_names)
                          union all
                          select f.name from public.fragrances as f where f.fragrance_id = any (p_renamed)) as x (name)
                    where x.name is not null);
                if cardinality(v_turns) > 0 then
                    v_taken := array(select t.turn from sync_private.name_turn as t
                                     where t.turn = any (v_turns) order by t.turn for update skip locked);
                    -- v_turns are distinct and v_taken among them: as many
                    -- taken is all taken, and the difference is not read
                    -- (a statement less per call; bench/README.md, step 45).
                    if cardinality(v_taken) < cardinality(v_turns) then
                        select min(w.turn) into v_turn
                        from (select unnest(v_turns) except select unnest(v_taken)) as w (turn);
                    end if;
                end if;
                if v_turn is null then
                    return v_locked;
                end if;
            end if;
            raise exception using errcode = 'P0001';
        exception
            when raise_exception then
                -- Gives back what the attempt took, and the timeout (a
                -- PL/pgSQL variable keeps its value).
            when lock_not_available or deadlock_detected then
                -- Past the patience, or the caller's own lock_timeout; a
                -- deadlock here is one through what the caller held before
                -- (the merge is the one PostgreSQL cancelled).
                if p_patience is null then
                    raise;
                end if;
                return null;
        end;
        if clock_timestamp() >= v_until then
            return null;
        end if;
    end loop;
end;
$$;
comment on function sync_private.lock_all(integer[], text[], integer[], interval) is
    'Locks (FOR UPDATE) the existing fragrances of p_ids and the name turns (sync_private.name_turn) of the names p_names and of the names the fragrances of p_renamed have, all at once or none: an attempt that finds one held gives back what it took, and the next waits for that one alone, holding none of them, then takes the others without waiting or gives all back again; so it is never in a circle of waits with another transaction''s statement, which PostgreSQL would break by cancelling that statement. Returns the ids of the fragrances locked (those that exist, in id order) once it holds them all (until commit); null, holding none, once p_patience is spent (null: waits as long as the caller''s lock_timeout lets each wait, else 55P03).';

-- sync_private.lock_fragrances
-- Locks the existing fragrances of a batch's valid deliveries, and their names' turns.
create function sync_private.lock_fragrances(
    p_rows sync_private.judged[],
    p_skip_held boolean default false,
    p_said_by text default null,
    out locked integer[],
    out whole boolean
)
    language plpgsql
    -- Plans: see sync_private.judge. PL/pgSQL, not SQL: a SQL function that
    -- cannot be inlined is planned again on every call (0.3 ms here).
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_named constant integer[] := array(select distinct d.fragrance_id from unnest(p_rows) as d where d.valid);
begin
    -- All at once or none, waiting with nothing in hand (sync_private.lock_all),
    -- so a merge never makes a DBA's statement a deadlock victim. Also the
    -- turns of the names the deliveries write or replace: taken later, while
    -- the rows were held, the wait for one closed the same circle with a DBA
    -- who renamed a fragrance and then edited one the merge held.
    -- whole: every existing row and every turn is held, so the caller has
    -- nothing to look for that another transaction holds (and skips the
    -- statements that would look: sync_private.process).
    --
    -- p_said_by, a DBA verb that waits for what it merges (sync.retry,
    -- sync.retry_all): a row another transaction held (a DBA's hand edit
    -- left open) made it wait without a word, its psql silent for as long
    -- as that lasted, where sync.revert and sync.repair say why after 2 s
    -- (hostile review). It says so the same way, then waits on, holding
    -- nothing meanwhile (a caller's own lock_timeout of 2 s or less is
    -- left to act alone).
    if p_said_by is not null and not p_skip_held
        and not coalesce(current_setting('lock_timeout')::interval between interval '1 microsecond' and interval '2s', false)
    then
        locked := sync_private.lock_all(
            v_named,
            array(select d.payload ->> 'name' from unnest(p_rows) as d where d.valid and d.payload ? 'name'),
            array(select distinct d.fragrance_id from unnest(p_rows) as d where d.valid and d.payload ? 'name'),
            interval '2s');
        if locked is not null then
            whole := true;
            return;
        end if;
        if cardinality(sync_private.held_fragrances(v_named)) > 0 then
            raise notice '% waits for fragrance %, which another transaction holds',
                p_said_by, array_to_string(sync_private.held_fragrances(v_named), ', ')
                using hint = 'It goes on once that transaction ends. ' || sync_private.fragrance_holders_hint();
        else
            raise notice '% waits for the turn of a name it writes or replaces, which another transaction holds', p_said_by
                using hint = 'It goes on once that transaction ends: one that wrote names (a rename left open) holds '
                    || 'their turns until it commits. ' || sync_private.fragrance_holders_hint();
        end if;
    end if;
    locked := sync_private.lock_all(
        v_named,
        array(select d.payload ->> 'name' from unnest(p_rows) as d where d.valid and d.payload ? 'name'),
        array(select distinct d.fragrance_id from unnest(p_rows) as d where d.valid and d.payload ? 'name'),
        case when p_skip_held then interval '2s' end);
    whole := locked is not null;
    if whole then
        return;
    end if;
    -- Skipping held rows is for deliveries already stored (sync_private.process):
    -- their ids are drawn, so waiting orders nothing, and a row another session
    -- holds (a DBA's open transaction) would hold every other fragrance's
    -- merge with it. But first they wait, as long as a merge holds its rows
    -- (2 s, above): skipped at once, the rows another merger held (two hook
    -- workers on one backlog) were left to a later call, and the merger that
    -- skipped them claimed the rest of the backlog meanwhile, leaving the
    -- other nothing (a full test run lost the race: drained deliveries still
    -- pending at stop). Then what is free now, without waiting; the caller
    -- takes the turns the same way (sync_private.take_turns).
    locked := array(select f.fragrance_id from public.fragrances as f
                    where f.fragrance_id = any (v_named) order by f.fragrance_id for update skip locked);
end;
$$;
comment on function sync_private.lock_fragrances(sync_private.judged[], boolean, text) is
    'Locks (FOR UPDATE) the fragrances the valid deliveries of a batch name, with the name turns of the names they write or replace, all at once and never holding one while waiting for another (sync_private.lock_all), and returns in locked the ids of the fragrances that exist, in id order, with whole true. Callers that store lock before they draw inbox ids, so a batch that waited is ordered after the one it waited for. With p_skip_held, once 2 s are spent (longer than a merge holds them) it takes the rows free then, without waiting, and returns those only, with whole false; the caller then looks for the held rows and takes the free turns (sync_private.take_turns). With p_said_by (a DBA verb), once 2 s are spent it says in a NOTICE, in that verb''s name, which fragrance another transaction holds, and waits on.';

-- sync_private.fragrance_holders_hint
-- The sentence of a hint that says how to find who holds rows of public.fragrances.
create function sync_private.fragrance_holders_hint() returns text
    language sql
    immutable
as $$
    -- pg_locks, not pg_stat_activity's state: PostgreSQL hides the state of
    -- another role's session from a DBA who is no superuser, and the query
    -- once named showed them nothing (hostile review). A session waiting
    -- for a lock is left out: the hook's merger, waiting its 2 s for the
    -- held row, holds RowShareLock on the table too, and was listed beside
    -- the holder as a session to end (review of the docs by running them).
    select 'The sessions holding rows of public.fragrances: '
           'SELECT DISTINCT l.pid, a.usename, a.application_name FROM pg_locks AS l '
           'JOIN pg_stat_activity AS a USING (pid) '
           'WHERE l.relation = ''public.fragrances''::regclass '
           'AND l.mode IN (''RowShareLock'', ''RowExclusiveLock'') AND l.pid <> pg_backend_pid() '
           'AND NOT EXISTS (SELECT FROM pg_locks AS w WHERE w.pid = l.pid AND NOT w.granted);';
$$;
comment on function sync_private.fragrance_holders_hint() is
    'The query that lists the sessions holding rows of public.fragrances, as a sentence for a hint: the NOTICEs of a merge that leaves a held fragrance''s deliveries pending (sync_private.process) and of sync.repair and sync.revert waiting for one.';

-- sync_private.unknown_fragrance
-- The reason given to a partial delta for a fragrance that does not exist.
create function sync_private.unknown_fragrance(p_delivery sync_private.judged) returns jsonb
    language sql
    stable
as $$
    select sync_private.reason('fragrance_id.unknown', 'fragrance_id',
        format('fragrance %s does not exist; a change creates one only when it carries all %s fields (missing: %s)',
            p_delivery.fragrance_id, cardinality(sync_private.fields()),
            array_to_string(array(select f from unnest(sync_private.fields()) as f
                                  where not p_delivery.payload ? f), ', ')));
$$;
comment on function sync_private.unknown_fragrance(sync_private.judged) is
    'The fragrance_id.unknown reason for a delta whose fragrance does not exist and that does not carry every field to create it.';

-- sync_private.create_missing
-- Creates the fragrances a batch names that did not exist, from their first complete delta.
create function sync_private.create_missing(
    p_rows sync_private.judged[],
    p_missing integer[],
    p_counts_at jsonb,
    out outcomes sync_private.outcome[],
    out remaining sync_private.judged[]
)
    language plpgsql
    -- Plans: see sync_private.judge. Every join here is between sets in
    -- memory, so none is a nested loop: planned on the estimates of an
    -- array, the creators were matched to each created row and to each
    -- delivery in turn (2,000 creations in one batch: 4 s, measured). The
    -- lateral calls stay nested loops, their only plan.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set enable_nestloop = off
    set jit = off
as $$
declare
    v_fields constant text[] := sync_private.fields();
    v_created integer[];
    v_creators bigint[];
    v_creators_at bigint[];
    v_found integer[];
    v_absent integer[];
    v_deleted integer[];
    v_deleted_at bigint[];
begin
    -- A missing fragrance is created by the first delta that carries every
    -- field, with its history row and field clock; deltas received before
    -- that one are refused as they would have been one by one, later ones
    -- are merged by the caller. A fragrance deleted by hand keeps its clock
    -- at the moment of the delete (sync_private.record_change): only a delta
    -- received after it may create it again; older ones are stale. Each
    -- delta counts at its position (a repair's, its snapshot's: p_counts_at),
    -- as in the merge (sync_private.counts_before): a repair of a snapshot
    -- taken before the delete is older than the delete, whatever its id.
    select coalesce(array_agg(v.fragrance_id), '{}'),
           coalesce(array_agg((select max(coalesce((v.positions ->> x.key)::bigint, x.value::bigint))
                               from jsonb_each_text(v.versions) as x)), '{}')
    into v_deleted, v_deleted_at
    from sync.field_version as v
    where v.fragrance_id = any (p_missing);
    with creator as materialized (
        select distinct on (d.fragrance_id) d.*, a.at
        from unnest(p_rows) as d
        join unnest(p_missing) as m (fragrance_id) on m.fragrance_id = d.fragrance_id
        cross join lateral (select coalesce((p_counts_at ->> d.inbox_id::text)::bigint, d.inbox_id) as at) as a
        left join unnest(v_deleted, v_deleted_at) as t (fragrance_id, position)
            on t.fragrance_id = d.fragrance_id
        where d.payload ?& v_fields
          and sync_private.counts_before(t.position, null, a.at, d.inbox_id)
        order by d.fragrance_id, a.at, d.inbox_id
    ),
    created as (
        insert into public.fragrances (fragrance_id, name, description, cost, forbidden)
        -- The id the judge read (7.0 counts as 7), not the payload's text,
        -- which populating an integer column refuses.
        select c.fragrance_id, r.name, r.description, r.cost, r.forbidden
        from creator as c
        cross join lateral jsonb_populate_record(null::public.fragrances, c.payload - 'fragrance_id') as r
        order by c.fragrance_id
        on conflict (fragrance_id) do nothing
        returning *
    ),
    history as (
        insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values, inbox_id)
        select n.fragrance_id, 'insert', null, to_jsonb(n), c.inbox_id
        from created as n
        join creator as c on c.fragrance_id = n.fragrance_id
        order by c.inbox_id
    ),
    clock as (
        insert into sync.field_version as fv (fragrance_id, versions, positions)
        select c.fragrance_id, (select jsonb_object_agg(f, c.inbox_id) from unnest(v_fields) as f),
               case when c.at <> c.inbox_id
                    then (select jsonb_object_agg(f, c.at) from unnest(v_fields) as f) else '{}' end
        from created as n
        join creator as c on c.fragrance_id = n.fragrance_id
        on conflict (fragrance_id) do update set versions = excluded.versions, positions = excluded.positions
    )
    -- Each created fragrance with the delivery that created it, and its position.
    select coalesce(array_agg(c.fragrance_id), '{}'), coalesce(array_agg(c.inbox_id), '{}'),
           coalesce(array_agg(c.at), '{}')
    into v_created, v_creators, v_creators_at
    from created as n
    join creator as c on c.fragrance_id = n.fragrance_id;

    -- Not created here: another transaction may have created it since the
    -- caller's lock; this statement's fresh snapshot sees that, so lock it
    -- and leave its deltas to the merge. The rest are absent for good.
    v_absent := array(select m from unnest(p_missing) as m except select c from unnest(v_created) as c);
    v_found := array(select f.fragrance_id from public.fragrances as f
                     where f.fragrance_id = any (v_absent)
                     order by f.fragrance_id
                     for update);
    v_absent := array(select m from unnest(v_absent) as m except select f from unnest(v_found) as f);

    outcomes := array(
        select case when d.inbox_id = fc.inbox_id
                    then row(d.inbox_id, d.payload, d.fragrance_id, 'applied', d.reasons,
                             v_fields, '{}'::text[])::sync_private.outcome
                    when not sync_private.counts_before(t.position, null, a.at, d.inbox_id)
                    then row(d.inbox_id, d.payload, d.fragrance_id, 'ignored',
                             d.reasons || jsonb_build_array(sync_private.reason('delta.stale', null,
                                 format('fragrance %s was deleted after this delivery was received, so it is left deleted',
                                        d.fragrance_id), 'info')),
                             '{}'::text[], array(select f from unnest(v_fields) as f where d.payload ? f))::sync_private.outcome
                    else row(d.inbox_id, d.payload, d.fragrance_id, 'rejected',
                             d.reasons || jsonb_build_array(sync_private.unknown_fragrance(d)),
                             '{}'::text[], '{}'::text[])::sync_private.outcome end
        from unnest(p_rows) as d
        cross join lateral (select coalesce((p_counts_at ->> d.inbox_id::text)::bigint, d.inbox_id) as at) as a
        join (select unnest(v_absent) union all select unnest(v_created)) as m (fragrance_id)
            on m.fragrance_id = d.fragrance_id
        left join unnest(v_created, v_creators, v_creators_at) as fc (fragrance_id, inbox_id, at)
            on fc.fragrance_id = d.fragrance_id
        left join unnest(v_deleted, v_deleted_at) as t (fragrance_id, position)
            on t.fragrance_id = d.fragrance_id
        where fc.inbox_id is null or (a.at, d.inbox_id) <= (fc.at, fc.inbox_id)
        order by d.inbox_id);
    -- NOT IN over the outcomes is one hashed subplan.
    remaining := array(
        select d from unnest(p_rows) as d
        where d.inbox_id not in (select o.inbox_id from unnest(outcomes) as o)
        order by d.inbox_id);
end;
$$;
comment on function sync_private.create_missing(sync_private.judged[], integer[], jsonb) is
    'For the fragrances of p_missing (named by valid deltas of p_rows but absent when the caller locked): creates each from its first delta that carries every field, with its history row and field clock, and returns the outcomes decided here (that creator applied; the deltas before it, or all of a fragrance no delta can create, rejected with fragrance_id.unknown, or ignored as stale when received before a hand delete of that fragrance) and the deltas left for the merge (those after a creator, of a fragrance another transaction created meanwhile, which is locked, and of fragrances that existed), in receipt order.';

-- sync_private.counts_before
-- Whether the last writer of a field (p_clock, counting at p_clock_at) is older than a delivery that counts at p_at.
create function sync_private.counts_before(
    p_clock bigint,
    p_clock_at bigint,
    p_at bigint,
    p_id bigint
) returns boolean
    language sql
    immutable
as $$
    -- Receipt order is by (position a delivery counts at, inbox id): a
    -- webhook counts at its id, a repair at its snapshot's position, which
    -- is below its id. The clock keeps a repair's position beside its id
    -- (sync.field_version.positions): read from its inbox row, it was lost
    -- to the purge of that row, and the repair counted at its id again. A
    -- hand change's clock is the position it took, which it counts at.
    select p_clock is null or (coalesce(p_clock_at, p_clock), p_clock) < (p_at, p_id);
$$;
comment on function sync_private.counts_before(bigint, bigint, bigint, bigint) is
    'True when the last writer of a field, p_clock on its clock (an inbox id, or a hand change''s position; null for none) counting at p_clock_at (its position in sync.field_version.positions; null: at p_clock), is older in receipt order than the delivery p_id that counts at position p_at (its id, or a repair''s snapshot position): by (position, id).';

-- sync_private.write
-- Creates and updates the fragrances of valid, non-empty deltas, with their history and field clock.
create function sync_private.write(
    p_rows sync_private.judged[],
    p_locked integer[],
    p_rules jsonb,
    p_version bigint,
    p_counts_at jsonb default '{}'
)
    returns sync_private.outcome[]
    language plpgsql
    -- Plans: see sync_private.judge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_fields constant text[] := sync_private.fields();
    v_missing integer[];
    v_outcomes sync_private.outcome[] := '{}';
    v_update sync_private.judged[];
    v_old_names text[];
begin
    -- The history of what this function writes is written here, delivery by
    -- delivery; the statement triggers on public.fragrances skip the
    -- statements of a transaction marked in this table, which no caller can
    -- write (a setting could be forged by any session).
    insert into sync_private.merging (xid) values (pg_current_xact_id()) on conflict do nothing;

    -- A fragrance that did not exist when locked is created by the first
    -- delta that carries every field (sync_private.create_missing).
    -- EXCEPT hashes both sides; "<> all (p_locked)" compared every pair.
    v_missing := array(select d.fragrance_id from unnest(p_rows) as d
                       except
                       select l.fragrance_id from unnest(p_locked) as l (fragrance_id)
                       order by 1);
    if cardinality(v_missing) > 0 then
        select c.outcomes, c.remaining into v_outcomes, v_update
        from sync_private.create_missing(p_rows, v_missing, p_counts_at) as c;
    else
        v_update := p_rows;
    end if;

    if cardinality(v_update) > 0 then
        with delivery as (
            -- What each delta would write: its known fields (unknown ones were
            -- warned about) that are newer than their last writer before the
            -- batch. Ids ascend within the batch, so a later delivery wins too.
            select d.inbox_id, d.fragrance_id, d.payload, d.reasons, w.writes, w.stale_fields,
                f.current, a.at
            from unnest(v_update) as d
            -- The position it counts at: a repair's is its snapshot's (p_counts_at).
            cross join lateral (select coalesce((p_counts_at ->> d.inbox_id::text)::bigint, d.inbox_id) as at
                                offset 0) as a
            -- Lateral lookups by key, which only a nested loop can run: a join
            -- planned while the clock was young merged the batch with a scan
            -- of the whole clock (every fragrance ever written, per call).
            cross join lateral (select to_jsonb(l) - 'fragrance_id' as current
                                from public.fragrances as l
                                where l.fragrance_id = d.fragrance_id
                                offset 0) as f
            left join lateral (select c.versions, c.positions from sync.field_version as c
                               where c.fragrance_id = d.fragrance_id
                               offset 0) as v on true
            -- Usually no field was set by a later delivery: a path test says so
            -- without taking the clock apart.
            cross join lateral (
                select jsonb_path_exists(coalesce(v.versions, '{}'), '$.* ? (@ >= $id)',
                                         jsonb_build_object('id', a.at)) as overtaken
                offset 0
            ) as o
            cross join lateral (
                -- Then a delta without an unknown key writes its payload as it is.
                select case when not o.overtaken and d.payload - v_fields - 'fragrance_id' = '{}'
                            then d.payload - 'fragrance_id'
                            else (select coalesce(jsonb_object_agg(e.key, e.value), '{}')
                                  from jsonb_each(d.payload) as e
                                  where e.key = any (v_fields)
                                    and sync_private.counts_before((v.versions ->> e.key)::bigint,
                                                                   (v.positions ->> e.key)::bigint,
                                                                   a.at, d.inbox_id)) end as writes,
                       case when not o.overtaken
                            then '{}'::text[]
                            else array(select f from unnest(v_fields) as f
                                       where d.payload ? f
                                         and not sync_private.counts_before((v.versions ->> f)::bigint,
                                                                            (v.positions ->> f)::bigint,
                                                                            a.at, d.inbox_id)) end
                           as stale_fields
            ) as w
        ),
        step as (
            -- The fragrance before each delivery, and whether it is the batch's last for it.
            select d.*,
                d.current || sync_private.merge_objects(d.writes) over (fragrance_order
                    rows between unbounded preceding and 1 preceding) as before,
                -- Last by the same order as before: one sort serves every window
                -- (a window of its own, by the reverse order, sorted again).
                lead(true) over fragrance_order is null as is_last,
                bool_or(d.payload ? 'name') over (partition by d.fragrance_id) as writes_name
            from delivery as d
            window fragrance_order as (partition by d.fragrance_id order by d.at, d.inbox_id)
        ),
        change as (
            select s.*, s.before || s.writes as after, h.old_values, h.new_values
            from step as s
            cross join lateral (
                select jsonb_object_agg(e.key, s.before -> e.key) as old_values,
                       jsonb_object_agg(e.key, e.value) as new_values
                from jsonb_each(s.writes) as e
                where e.value is distinct from s.before -> e.key
            ) as h
        ),
        history as (
            insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values, inbox_id)
            select c.fragrance_id, 'update', c.old_values, c.new_values, c.inbox_id
            from change as c
            where c.new_values is not null
            order by c.at, c.inbox_id
        ),
        fragrance as (
            -- Each column of sync_private.fields() takes its value from the merged
            -- state, typed by the table itself; other columns are left as they are.
            update public.fragrances as f
            set (name, description, cost, forbidden) =
                (select r.name, r.description, r.cost, r.forbidden
                 from jsonb_populate_record(f, c.after) as r)
            from change as c
            where c.is_last and f.fragrance_id = c.fragrance_id and c.after <> c.current
        ),
        clock as (
            -- With the position of each field's writer where it is not its id
            -- (a repair's), which outlives the purge of its inbox row.
            insert into sync.field_version as fv (fragrance_id, versions, positions)
            select s.fragrance_id, jsonb_object_agg(s.field, s.inbox_id),
                   coalesce(jsonb_object_agg(s.field, s.at) filter (where s.at <> s.inbox_id), '{}')
            from (select c.fragrance_id, k.field,
                         -- The last writer by (position, id); max() of the pair, no sort per group.
                         (max(array[c.at, c.inbox_id]))[2] as inbox_id,
                         max(c.at) as at
                  from change as c
                  cross join lateral jsonb_object_keys(c.writes) as k (field)
                  group by c.fragrance_id, k.field) as s
            group by s.fragrance_id
            -- A field is written only by a delivery newer than its last writer, so
            -- the batch's writers are the newer ones: concatenation keeps them,
            -- and a field written here keeps no older writer's position.
            on conflict (fragrance_id) do update
                set versions = fv.versions || excluded.versions,
                    positions = (fv.positions - array(select jsonb_object_keys(excluded.versions)))
                                || excluded.positions
        )
        -- The history, fragrance and clock statements run whether or not this reads them.
        -- The names about to be replaced, one per fragrance a delivery writes
        -- a name of, as this statement read them before it wrote: their
        -- fragrances' name.duplicate findings may close. Read here, not by a
        -- statement of their own before (bench/README.md, step 45).
        select v_outcomes || coalesce(array_agg(row(c.inbox_id, c.payload, c.fragrance_id,
                case when c.writes <> '{}' then 'applied' else 'ignored' end,
                c.reasons || case when cardinality(c.stale_fields) > 0
                    then jsonb_build_array(sync_private.reason('delta.stale', null,
                        format('%s already set by a later delivery, so left as it is',
                               array_to_string(c.stale_fields, ', ')), 'info'))
                    else '[]' end,
                array(select f from unnest(v_fields) as f where c.writes ? f),
                c.stale_fields)::sync_private.outcome), '{}'),
            array_agg(c.current ->> 'name') filter (where c.is_last and c.writes_name)
        into v_outcomes, v_old_names
        from change as c;
    end if;

    perform sync_private.record_merge_findings(v_outcomes, coalesce(v_old_names, '{}'), p_rules, p_version);
    delete from sync_private.merging where xid = pg_current_xact_id();
    return v_outcomes;
end;
$$;
comment on function sync_private.write(sync_private.judged[], integer[], jsonb, bigint, jsonb) is
    'Writes valid, non-empty deltas whose fragrances the caller has locked (p_locked: those that existed), as one by one in receipt order: creates a missing fragrance from its first complete delta, refuses partial deltas for missing ones (fragrance_id.unknown), merges the rest per field (last writer wins), records one history row per delivery that changed something, moves sync.field_version and keeps the findings of what it wrote. Returns each delivery''s outcome. A failure undoes all of it (the caller isolates the culprit).';

-- sync_private.settle
-- Decides every delivery of a judged, locked batch; a failing delivery never fails the others.
create function sync_private.settle(
    p_rows sync_private.judged[],
    p_locked integer[],
    p_rules jsonb,
    p_version bigint,
    p_counts_at jsonb default '{}'
)
    returns sync_private.outcome[]
    language plpgsql
    -- Plans: see sync_private.judge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
declare
    v_write sync_private.judged[];
    v_half integer;
    v_outcomes sync_private.outcome[];
    v_state text;
    v_message text;
begin
    -- Refused and empty deltas are decided without a write.
    v_outcomes := array(
        select row(d.inbox_id, d.payload, d.fragrance_id,
            case when d.valid then 'ignored' else 'rejected' end,
            d.reasons || case when d.valid
                then jsonb_build_array(sync_private.reason('delta.empty', null, 'the change carries no field to apply', 'info'))
                else '[]' end,
            '{}'::text[], '{}'::text[])::sync_private.outcome
        from unnest(p_rows) as d
        where not (d.valid and d.payload ?| sync_private.fields()));
    v_write := array(
        select d from unnest(p_rows) as d
        where d.valid and d.payload ?| sync_private.fields()
        order by d.inbox_id);
    if cardinality(v_write) = 0 then
        return v_outcomes;
    end if;

    -- The write is a subtransaction: it is whole or not at all. When it fails,
    -- the batch is split in two halves taken in receipt order, until the
    -- delivery that fails is alone; only it is refused, with the reason.
    begin
        return v_outcomes || sync_private.write(v_write, p_locked, p_rules, p_version, p_counts_at);
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
    end;
    if cardinality(v_write) > 1 then
        v_half := cardinality(v_write) / 2;
        v_outcomes := v_outcomes || sync_private.settle(v_write[1:v_half], p_locked, p_rules, p_version, p_counts_at);
        return v_outcomes || sync_private.settle(v_write[v_half + 1:], p_locked, p_rules, p_version, p_counts_at);
    end if;
    if v_state in ('40001', '40P01', '55P03') then
        return v_outcomes || row(v_write[1].inbox_id, v_write[1].payload, v_write[1].fragrance_id, 'pending',
            v_write[1].reasons || jsonb_build_array(sync_private.reason('internal.retryable', null,
                format('merge hit a transient conflict (SQLSTATE %s: %s); sync.apply_pending() will take it again',
                    v_state, v_message), 'warning')),
            '{}'::text[], '{}'::text[])::sync_private.outcome;
    end if;
    return v_outcomes || row(v_write[1].inbox_id, v_write[1].payload, v_write[1].fragrance_id, 'rejected',
        v_write[1].reasons || jsonb_build_array(sync_private.reason('internal.error', null,
            format('merge failed (SQLSTATE %s: %s); fix the cause, then SELECT * FROM sync.retry(%s);',
                v_state, v_message, v_write[1].inbox_id))),
        '{}'::text[], '{}'::text[])::sync_private.outcome;
end;
$$;
comment on function sync_private.settle(sync_private.judged[], integer[], jsonb, bigint, jsonb) is
    'Decides a judged batch whose fragrances the caller has locked (p_locked: the result of sync_private.lock_fragrances): refused deltas are rejected, empty ones ignored, the rest written by sync_private.write(); when the write fails the batch is halved, in receipt order, until only the failing delivery is refused (internal.error) or left pending (internal.retryable). Returns every delivery''s outcome; touches no inbox row.';

create trigger _010_refuse_truncate_field_version
    before truncate on sync.field_version
    for each statement execute function sync_private.refuse_truncate(
        'The field clock says which delivery of each field is newest: emptied, a delivery received long ago would win again over a newer one. It holds one row per fragrance, and no verb purges it.');
comment on trigger _010_refuse_truncate_field_version on sync.field_version is
    'Refuses a TRUNCATE of the field clock (FS092): older deliveries would overwrite newer values.';
