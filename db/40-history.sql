-- History: every change to public.fragrances, who made it, and how to undo it.
--
-- The merge (db/20-merge.sql) writes one history row per delivery itself. Any
-- other write (a DBA's hand edit, another application) is recorded by the
-- statement triggers below, in the same transaction, for every row it
-- changed; they skip only the merge's own statements, which it marks in
-- sync_private.merging, a table no caller can write. So no session can switch
-- the audit off.

-- sync_private.record_deletes
-- Records rows of public.fragrances that went by hand: their history rows, their clock at the position.
create function sync_private.record_deletes(p_rows public.fragrances[], p_position bigint) returns void
    language plpgsql
as $$
begin
    -- An array of rows, not a JSON array: jsonb holds at most 256 MB, which
    -- a TRUNCATE of a catalog of a million fragrances comes near. The clock stays, every field at
    -- this position: a complete delta received before the delete, still
    -- pending or retried later, must not create the row again
    -- (sync_private.create_missing); one received after it may. A CMS
    -- snapshot taken before the delete must not either: sync.drift marks the
    -- missing row newer by this clock, or by the history row when no
    -- delivery came between the two.
    insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values, inbox_position)
    select r.fragrance_id, 'delete', to_jsonb(r), null, p_position
    from unnest(p_rows) as r
    order by r.fragrance_id;
    insert into sync.field_version as fv (fragrance_id, versions)
    select r.fragrance_id, (select jsonb_object_agg(f, p_position) from unnest(sync_private.fields()) as f)
    from unnest(p_rows) as r
    on conflict (fragrance_id) do update set versions = excluded.versions, positions = '{}';
end;
$$;
comment on function sync_private.record_deletes(public.fragrances[], bigint) is
    'Records rows of public.fragrances removed by hand (a DELETE, a TRUNCATE): one delete row each in sync.fragrance_history with the position p_position, and sync.field_version at that position for every field, so nothing received before it creates the row again.';

-- sync_private.record_change
-- Trigger: records a statement's changes to public.fragrances that the merge did not make.
create function sync_private.record_change() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_position bigint;
begin
    if exists (select from sync_private.merging as m where m.xid = pg_current_xact_id()) then
        return null;
    end if;

    -- A hand edit counts as received now: deliveries already in the inbox are
    -- older and must not undo it, later ones may.
    v_position := sync.inbox_position();
    if tg_op = 'INSERT' then
        -- A row inserted by hand is a baseline: no delivery is older than it
        -- on purpose, so a quarantined change can still be retried onto it
        -- (and the mark of an earlier delete of its id is forgotten). Against
        -- a CMS snapshot taken before it, its history row is what makes it
        -- newer (sync.drift), so a repair does not undo it.
        insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values)
        select n.fragrance_id, 'insert', null, to_jsonb(n)
        from new_rows as n
        order by n.fragrance_id;
        delete from sync.field_version as v
        using new_rows as n
        where v.fragrance_id = n.fragrance_id;
    elsif tg_op = 'DELETE' then
        perform sync_private.record_deletes(array(select row(o.*)::public.fragrances from old_rows as o), v_position);
    else
        with change as (
            select n.fragrance_id, c.old_values, c.new_values
            from new_rows as n
            join old_rows as o on o.fragrance_id = n.fragrance_id
            cross join lateral (
                select jsonb_object_agg(e.key, to_jsonb(o) -> e.key) as old_values,
                       jsonb_object_agg(e.key, e.value) as new_values
                from jsonb_each(to_jsonb(n)) as e
                where e.value is distinct from to_jsonb(o) -> e.key
            ) as c
            where c.new_values is not null
        ),
        history as (
            -- With the position it took, which the clock below gets: a revert
            -- tells by it which deliveries are older than this edit.
            insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values, inbox_position)
            select c.fragrance_id, 'update', c.old_values, c.new_values, v_position
            from change as c
            order by c.fragrance_id
        )
        insert into sync.field_version as fv (fragrance_id, versions)
        select c.fragrance_id, (select jsonb_object_agg(k, v_position) from jsonb_object_keys(c.new_values) as k)
        from change as c
        -- The edit counts at its position, which is its clock value: no
        -- repair's position stays on the fields it set.
        on conflict (fragrance_id) do update
            set versions = fv.versions || excluded.versions,
                positions = fv.positions - array(select jsonb_object_keys(excluded.versions));

        -- An update of fragrance_id itself cannot be paired across the
        -- statement's old and new rows: it is recorded as the old row going
        -- and the new one coming, so nothing goes unrecorded.
        insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values, inbox_position)
        select x.fragrance_id, x.operation, x.old_values, x.new_values, x.inbox_position
        from (select o.fragrance_id, 'delete' as operation, to_jsonb(o) as old_values, null::jsonb as new_values,
                     v_position as inbox_position
              from old_rows as o
              where not exists (select from new_rows as n where n.fragrance_id = o.fragrance_id)
              union all
              select n.fragrance_id, 'insert', null, to_jsonb(n), null
              from new_rows as n
              where not exists (select from old_rows as o where o.fragrance_id = n.fragrance_id)) as x
        order by x.operation, x.fragrance_id;
        -- An id that went is deleted, as above; one that came is a baseline.
        insert into sync.field_version as fv (fragrance_id, versions)
        select o.fragrance_id, (select jsonb_object_agg(f, v_position) from unnest(sync_private.fields()) as f)
        from old_rows as o
        where not exists (select from new_rows as n where n.fragrance_id = o.fragrance_id)
        on conflict (fragrance_id) do update set versions = excluded.versions, positions = '{}';
        delete from sync.field_version as v
        using new_rows as n
        where v.fragrance_id = n.fragrance_id
          and not exists (select from old_rows as o where o.fragrance_id = n.fragrance_id);
    end if;
    return null;
end;
$$;
comment on function sync_private.record_change() is
    'Trigger function (AFTER INSERT, UPDATE, DELETE on public.fragrances, per statement): records every row the statement changed in sync.fragrance_history, attributed to the database user; a hand UPDATE or DELETE also moves sync.field_version to the current inbox position so older deliveries cannot undo it (nor create a deleted row again), and its history row keeps that position (inbox_position); a hand INSERT starts without a clock. Skips only the statements of sync_private.write, which records its own history per delivery.';

create trigger _900_record_insert
    after insert on public.fragrances
    referencing new table as new_rows
    for each statement execute function sync_private.record_change();
comment on trigger _900_record_insert on public.fragrances is
    'Fragrance sync: records rows inserted other than by a delivery in sync.fragrance_history.';
create trigger _900_record_update
    after update on public.fragrances
    referencing old table as old_rows new table as new_rows
    for each statement execute function sync_private.record_change();
comment on trigger _900_record_update on public.fragrances is
    'Fragrance sync: records rows changed other than by a delivery in sync.fragrance_history, and moves the field clock (a hand edit counts as received now).';
create trigger _900_record_delete
    after delete on public.fragrances
    referencing old table as old_rows
    for each statement execute function sync_private.record_change();
comment on trigger _900_record_delete on public.fragrances is
    'Fragrance sync: records deleted rows in sync.fragrance_history and moves their field clock to the delete (a hand delete counts as received now: nothing received before it creates the row again).';

-- sync_private.record_truncate
-- Trigger: records a TRUNCATE of public.fragrances as a hand delete of every row.
create function sync_private.record_truncate() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- A TRUNCATE fires no delete trigger: the owner's TRUNCATE left no
    -- history row (sync.fragrance_at, the drift report and the audit lost
    -- the catalog) and the field clock as it was, so a complete delta
    -- received before it brought a row back (review). Before it runs, the
    -- rows are still there: each is recorded as a hand delete. Not deleted
    -- here: a DELETE made TRUNCATE ... CASCADE fail on a table of the
    -- library that references the catalog. The findings close after it
    -- (sync_private.check_written_rows).
    perform sync_private.record_deletes(array(select f from public.fragrances as f), sync.inbox_position());
    return null;
end;
$$;
comment on function sync_private.record_truncate() is
    'Trigger function (BEFORE TRUNCATE on public.fragrances): records every row the TRUNCATE is about to remove as a hand delete (sync_private.record_deletes): its history row, its field clock at the current inbox position.';

create trigger _100_record_truncate
    before truncate on public.fragrances
    for each statement execute function sync_private.record_truncate();
comment on trigger _100_record_truncate on public.fragrances is
    'Fragrance sync: records the rows a TRUNCATE removes in sync.fragrance_history and moves their field clock, as a hand DELETE does (a TRUNCATE fires no delete trigger).';

-- sync.revert_result: what sync.revert() did.
create type sync.revert_result as (
    reverted_inbox_id bigint,
    inbox_id bigint,
    status text,
    restored jsonb,
    left_alone jsonb,
    message text
);
comment on type sync.revert_result is
    'Outcome of sync.revert(): the delivery undone, the revert''s own delivery (inbox_id, its status), the fields restored with their values, the fields left alone with why, and a sentence. A revert the rules in force refuse raises FS061 instead, having stored nothing.';
comment on column sync.revert_result.reverted_inbox_id is 'The delivery undone.';
comment on column sync.revert_result.inbox_id is 'The revert''s own delivery in sync.inbox (null when nothing was restored).';
comment on column sync.revert_result.status is 'The outcome of the revert''s own delivery: applied, or pending while apply_on_receipt is off (ignored when nothing was restored; never rejected: such a revert raises FS061).';
comment on column sync.revert_result.restored is 'The fields put back, with their values, e.g. {"cost": 42}.';
comment on column sync.revert_result.left_alone is 'The fields not touched, each with why.';
comment on column sync.revert_result.message is 'All of it in one sentence.';

-- sync.revert
-- Undoes one applied delivery by sending its fields' previous values through the inbox as a new change.
create function sync.revert(p_inbox_id bigint) returns sync.revert_result
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_delivery sync.inbox;
    v_history sync.fragrance_history;
    v_version jsonb;
    v_positions jsonb;
    v_at bigint;
    v_writer_pos bigint;
    v_decided bigint;
    v_pending jsonb;
    v_pending_before jsonb;
    v_quarantined jsonb;
    v_writer bigint;
    v_writer_at timestamptz;
    v_earlier bigint;
    v_current jsonb;
    v_field text;
    v_later text;
    v_result sync.revert_result;
    v_receipt sync.receipt;
    v_body bytea;
    v_valid boolean;
    v_refused jsonb;
    v_names text[];
    v_renamed integer[];
begin
    if p_inbox_id is null then
        raise exception 'sync.revert needs an inbox id, got null'
            using errcode = 'FS005',
                  hint = 'Find applied deliveries with SELECT id, received_at, applied_fields FROM sync.inbox WHERE status = ''applied'' ORDER BY id DESC;';
    end if;
    select * into v_delivery from sync.inbox where id = p_inbox_id;
    if not found then
        -- Purged, its change is still in the history: "does not exist" sent
        -- a DBA who had just read it there looking for a typo (hostile
        -- review). A revert cannot go on from the history alone: the purge
        -- took the deliveries received around it, which decide what the
        -- value before it was by receipt order.
        select * into v_history from sync.fragrance_history as h
        where h.inbox_id = p_inbox_id order by h.id desc limit 1;
        if found then
            raise exception 'inbox row % was purged (sync.purge_applied); sync.fragrance_history still shows what it changed in fragrance %',
                            p_inbox_id, v_history.fragrance_id
                using errcode = 'FS001',
                      detail = 'A revert reads the delivery and the ones received around it, which the purge removed.',
                      hint = format('Set the values back by hand, if nothing changed them since: '
                          'SELECT old_values, new_values FROM sync.fragrance_history WHERE inbox_id = %s; '
                          'then UPDATE public.fragrances SET ... WHERE fragrance_id = %s;',
                          p_inbox_id, v_history.fragrance_id);
        end if;
        raise exception 'inbox row % does not exist', p_inbox_id
            using errcode = 'FS001', hint = 'Find applied deliveries with SELECT id, received_at, applied_fields FROM sync.inbox WHERE status = ''applied'' ORDER BY id DESC;';
    end if;
    if v_delivery.status <> 'applied' then
        raise exception 'inbox row % is %; only an applied delivery can be reverted', p_inbox_id, v_delivery.status
            using errcode = 'FS002',
                  hint = case v_delivery.status
                      when 'ignored' then format('It changed nothing, so there is nothing to undo; its reasons say why: '
                          'SELECT status, reasons FROM sync.inbox WHERE id = %s;', p_inbox_id)
                      when 'pending' then 'It is not applied yet: SELECT * FROM sync.apply_pending(); or, to drop it, wait for its outcome.'
                      else format('It changed nothing: SELECT status, reasons FROM sync.inbox WHERE id = %s;', p_inbox_id)
                  end;
    end if;

    -- One delivery writes one history row (the merge records it per delivery).
    select * into v_history from sync.fragrance_history
    where inbox_id = p_inbox_id order by id desc limit 1;

    -- The fragrance lock keeps concurrent merges out while we decide. With
    -- it, the turns of the name it may restore and of the name it replaces,
    -- all at once, waiting with none in hand (sync_private.lock_all): the
    -- row locked first, the merge of the restored name waited for a turn
    -- while holding it, and a DBA who had renamed another fragrance and then
    -- edited this one was cancelled as a deadlock victim (40P01).
    --
    -- A row another transaction holds (a DBA's hand edit left open) made the
    -- revert wait without a word, its psql silent for as long as it lasted,
    -- where a repair says why after 2 s (hostile review). It says so the
    -- same way, then waits on (a caller's own lock_timeout of 2 s or less is
    -- left to act alone).
    v_names := array(select v_history.old_values ->> 'name' where v_history.old_values ? 'name');
    v_renamed := case when v_history.old_values ? 'name' then array[v_delivery.fragrance_id] else '{}' end;
    if current_setting('lock_timeout')::interval between interval '1 microsecond' and interval '2s' then
        perform sync_private.lock_all(array[v_delivery.fragrance_id], v_names, v_renamed, null);
    elsif sync_private.lock_all(array[v_delivery.fragrance_id], v_names, v_renamed, interval '2s') is null then
        if cardinality(sync_private.held_fragrances(array[v_delivery.fragrance_id])) > 0 then
            raise notice 'sync.revert waits for fragrance %, which another transaction holds', v_delivery.fragrance_id
                using hint = 'It goes on once that transaction ends. ' || sync_private.fragrance_holders_hint();
        else
            raise notice 'sync.revert waits for the turn of a name it restores or replaces, which another transaction holds'
                using hint = 'It goes on once that transaction ends: one that wrote names (a rename left open) holds '
                    || 'their turns until it commits. ' || sync_private.fragrance_holders_hint();
        end if;
        perform sync_private.lock_all(array[v_delivery.fragrance_id], v_names, v_renamed, null);
    end if;
    if v_history.operation = 'insert' then
        raise exception 'inbox row % created fragrance %; a change cannot delete it', p_inbox_id, v_delivery.fragrance_id
            using errcode = 'FS060',
                  hint = format('Delete it by hand if it must go: DELETE FROM public.fragrances WHERE fragrance_id = %s;', v_delivery.fragrance_id);
    end if;

    v_result.reverted_inbox_id := p_inbox_id;
    v_result.restored := '{}';
    v_result.left_alone := '{}';
    select to_jsonb(f) into v_current from public.fragrances as f where f.fragrance_id = v_delivery.fragrance_id;
    select v.versions, v.positions into v_version, v_positions
    from sync.field_version as v where v.fragrance_id = v_delivery.fragrance_id;
    -- Later and earlier are by receipt order: by the position a delivery
    -- counts at (a repair's, its snapshot's: sync.inbox.counts_at), then its
    -- id. By id alone, a delivery received after a repair's snapshot but
    -- stored before the repair's rows read as older than the repair: its
    -- fields restored over it, its retry then stale (review).
    v_at := coalesce(v_delivery.counts_at, p_inbox_id);
    -- Per field, the last delivery received since that is stored but not
    -- merged yet (the hook stores first and merges a moment later): the
    -- revert's own inbox id is newer, so it would otherwise overwrite it.
    -- And the last one received before, still pending (a repair staged with
    -- p_apply false, which the hook's merger leaves to a DBA): merged after
    -- this change it is stale, so its value, the one before this change by
    -- receipt order, is never written; restoring the older value would lose
    -- it for good (hostile review). Both from one judging of what is pending.
    -- A later one the rules refuse counts too, bound for quarantine as it is
    -- (below); an earlier one so refused sets nothing.
    select coalesce(jsonb_object_agg(k.field, k.later) filter (where k.later is not null), '{}'),
           coalesce(jsonb_object_agg(k.field, k.earlier) filter (where k.earlier is not null), '{}')
    into v_pending, v_pending_before
    from (select f.key as field,
                 (array_agg(p.inbox_id order by c.at desc, p.inbox_id desc)
                     filter (where (c.at, p.inbox_id) > (v_at, p_inbox_id)))[1] as later,
                 (array_agg(p.inbox_id order by c.at desc, p.inbox_id desc)
                     filter (where (c.at, p.inbox_id) < (v_at, p_inbox_id) and p.valid))[1] as earlier
          from sync_private.pending_since(0) as p
          cross join lateral (select coalesce(i.counts_at, i.id) as at
                              from sync.inbox as i where i.id = p.inbox_id) as c
          cross join jsonb_object_keys(p.payload) as f (key)
          where p.fragrance_id = v_delivery.fragrance_id
          group by f.key) as k;
    -- Per field, the last delivery received since that waits in quarantine:
    -- restored at the revert's newer inbox id, the old value made it stale,
    -- and once retried (its rule loosened) the CMS's later value was ignored
    -- for good (hostile review). Left to it, as a pending one's.
    select coalesce(jsonb_object_agg(k.field, k.inbox_id), '{}')
    into v_quarantined
    from (select f.key as field, (array_agg(i.id order by coalesce(i.counts_at, i.id) desc, i.id desc))[1] as inbox_id
          from sync.inbox as i
          cross join jsonb_object_keys(i.payload) as f (key)
          where i.fragrance_id = v_delivery.fragrance_id
            and (coalesce(i.counts_at, i.id), i.id) > (v_at, p_inbox_id)
            and i.status = 'rejected' and jsonb_typeof(i.payload) = 'object'
            and f.key <> 'fragrance_id'
          group by f.key) as k;

    foreach v_field in array v_delivery.applied_fields loop
        if v_current is null then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field,
                format('fragrance %s has been deleted since', v_delivery.fragrance_id));
            continue;
        end if;
        if v_history.id is null or not v_history.old_values ? v_field then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field,
                'the change did not alter it (it already had this value)');
            continue;
        end if;

        -- A later change: a later delivery still pending, a later history row
        -- touching the field, or a later writer on its clock.
        v_later := case when v_pending ? v_field
            then format('set by delivery %s, received since and not applied yet', v_pending ->> v_field) end;
        if v_later is null then
            select format('set since by %s at %s',
                       coalesce('delivery ' || h.inbox_id, 'a hand edit by ' || h.db_user), h.changed_at)
            into v_later
            from sync.fragrance_history as h
            where h.fragrance_id = v_delivery.fragrance_id and h.id > v_history.id and h.new_values ? v_field
            order by h.id desc
            limit 1;
        end if;
        if v_later is null
           and (coalesce((v_positions ->> v_field)::bigint, (v_version ->> v_field)::bigint, 0),
                coalesce((v_version ->> v_field)::bigint, 0)) > (v_at, p_inbox_id) then
            v_later := format('set since by delivery %s', v_version ->> v_field);
        end if;
        if v_later is null and v_quarantined ? v_field then
            v_later := format('set by delivery %s, received since and in quarantine: retry or discard it,'
                ' then revert again (SELECT * FROM sync.quarantine WHERE inbox_id = %s;)',
                v_quarantined ->> v_field, v_quarantined ->> v_field);
        end if;
        if v_later is null and v_current -> v_field is distinct from v_history.new_values -> v_field then
            v_later := 'its value is no longer the one this change set';
        end if;

        -- An earlier-received change merged after this one lost to it as
        -- stale, or still pending and so bound to: by receipt order the value
        -- before this change is that one's, which was never written, and
        -- old_values does not know it (hostile review). Only one newer than
        -- the writer of old_values counts; of a stale one and a pending one,
        -- the later received. A hand edit's position is the one it took
        -- (inbox_position): read as 0, a delivery received before the edit
        -- and stale to it was named instead of the edit's value (review). A
        -- hand insert has none: a baseline, older than every delivery.
        if v_later is null then
            --
            -- A hand insert (a row deleted and inserted again, a fragrance_id
            -- changed) is such a baseline, but what was merged before it is
            -- no value the row had since: a delivery lost as stale before
            -- the delete was named as the value before this change, and the
            -- DBA told to set it by hand (hostile review). Only one merged
            -- after the insert counts; it has no position, so its moment
            -- (changed_at, the clock processed_at keeps too) tells.
            v_writer := null;
            v_writer_at := null;
            select coalesce(h.inbox_id, h.inbox_position),
                   case when h.operation = 'insert' and h.inbox_id is null then h.changed_at end
            into v_writer, v_writer_at
            from sync.fragrance_history as h
            where h.fragrance_id = v_delivery.fragrance_id and h.id < v_history.id
              and h.new_values ? v_field
            order by h.id desc
            limit 1;
            v_writer := coalesce(v_writer, 0);
            -- The position the writer counts at: a repair's, while its row is kept.
            v_writer_pos := coalesce((select i.counts_at from sync.inbox as i where i.id = v_writer), v_writer);
            select a.id into v_earlier
            from sync.inbox as a
            where a.fragrance_id = v_delivery.fragrance_id
              and (coalesce(a.counts_at, a.id), a.id) < (v_at, p_inbox_id)
              and (coalesce(a.counts_at, a.id), a.id) > (v_writer_pos, v_writer)
              and v_field = any (a.stale_fields)
              and (v_writer_at is null or a.processed_at >= v_writer_at)
            order by coalesce(a.counts_at, a.id) desc, a.id desc
            limit 1;
            if (select (coalesce(i.counts_at, i.id), i.id)
                       > greatest((v_writer_pos, v_writer),
                                  (select (coalesce(e.counts_at, e.id), e.id) from sync.inbox as e where e.id = v_earlier))
                from sync.inbox as i where i.id = (v_pending_before ->> v_field)::bigint) then
                v_later := format('delivery %s, received before this one, sets it too and is still pending,'
                    ' so it will be ignored as stale and the value before this change is that delivery''s,'
                    ' never applied: set it by hand (SELECT body FROM sync.inbox WHERE id = %s;)',
                    v_pending_before ->> v_field, v_pending_before ->> v_field);
            elsif v_earlier is not null then
                v_later := format('delivery %s, received before this one, set it too but was merged after it'
                    ' and ignored as stale, so the value before this change is that delivery''s,'
                    ' never applied: set it by hand (SELECT body FROM sync.inbox WHERE id = %s;)',
                    v_earlier, v_earlier);
            end if;
        end if;

        if v_later is not null then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field, v_later);
        elsif jsonb_typeof(v_history.old_values -> v_field) = 'null' then
            v_result.left_alone := v_result.left_alone || jsonb_build_object(v_field,
                'its previous value was null, which a change cannot carry; set it by hand');
        else
            v_result.restored := v_result.restored || jsonb_build_object(v_field, v_history.old_values -> v_field);
        end if;
    end loop;

    -- The position the revert counts at: right after everything it read of
    -- this fragrance (the change it undoes, the field clock, the deliveries
    -- pending or in quarantine), not at its own inbox id. A delivery of the
    -- fragrance it could not see (stored by the hook's store beside it: the
    -- id drawn before the revert's, the row committed after its look) is
    -- received after what it decided on, and newer than it whenever it is
    -- merged; at the revert's id it was older, its value ignored as stale
    -- or written over (review). No lock is shared with the store.
    v_decided := greatest(
        v_at,
        (select max(greatest(x.value::bigint, coalesce((v_positions ->> x.key)::bigint, 0)))
         from jsonb_each_text(coalesce(v_version, '{}')) as x),
        (select max(x.value::bigint) from jsonb_each_text(v_pending) as x),
        (select max(x.value::bigint) from jsonb_each_text(v_pending_before) as x),
        (select max(x.value::bigint) from jsonb_each_text(v_quarantined) as x));

    if v_result.restored = '{}' then
        v_result.status := 'ignored';
        v_result.message := format('nothing to restore for inbox row %s of fragrance %s', p_inbox_id, v_delivery.fragrance_id);
        return v_result;
    end if;

    -- The revert is an ordinary delivery: stored, judged, ordered and audited
    -- like any other; its origin, not its content type, says who made it.
    --
    -- Judged first by the rules in force: a value they refuse now (a rule
    -- tightened since, say name.too_long) made the revert's delivery
    -- rejected, and the answer still said the field was restored (hostile
    -- review). Such a revert is refused (FS061) before anything is stored,
    -- rather than left in quarantine: nothing was restored, nothing waits
    -- for a retry that would put back an old value at a new receipt
    -- position, and the DBA reads which rule said no. The same whether the
    -- revert would apply now or wait as pending (apply_on_receipt off). Should
    -- the store still reject it (the rules changed in between, or the write
    -- failed: internal.error), the same error undoes the store.
    v_body := convert_to((jsonb_build_object('fragrance_id', v_delivery.fragrance_id) || v_result.restored)::text, 'UTF8');
    select d.valid, d.reasons into v_valid, v_refused
    from unnest(sync_private.judge(array[0::bigint], array[v_body], (sync_private.current_rules()).rules)) as d;
    if v_valid then
        v_refused := null;
        select r.* into v_receipt
        from sync_private.store(
            array[v_body],
            array['application/x-sync-revert'], array[null::text],
            array[format('sync.revert(%s) by %s', p_inbox_id, session_user)], array[null::uuid], null, 'revert',
            (select s.apply_on_receipt from sync.settings as s), v_decided) as r;
        if v_receipt.status = 'rejected' then
            v_refused := v_receipt.reasons;
        end if;
    end if;
    if v_refused is not null then
        -- The reasons that refused it: its errors (warnings ride along).
        select coalesce(jsonb_agg(r) filter (where r ->> 'severity' = 'error'), v_refused) into v_refused
        from jsonb_array_elements(v_refused) as r;
        raise exception 'inbox row % cannot be reverted: the delivery that would restore % is refused: %',
            p_inbox_id,
            (select string_agg(format('%s %s', k, v_result.restored -> k), ', ' order by k)
             from jsonb_object_keys(v_result.restored) as k),
            (select string_agg(format('%s (%s)', r ->> 'message', r ->> 'code'), '; ')
             from jsonb_array_elements(v_refused) as r)
            using errcode = 'FS061',
                  -- internal.error is no rule: a write the table refused (a
                  -- constraint or trigger of the library's) named a rule
                  -- query that found nothing (hostile review).
                  hint = format('Nothing was stored or restored. Remove the cause and revert again (%s), or set the value'
                      ' by hand (UPDATE public.fragrances SET ... WHERE fragrance_id = %s;).',
                      coalesce(
                          (select 'a rule tightened since: SELECT * FROM sync.rule WHERE code IN ('
                                  || string_agg(distinct quote_literal(r ->> 'code'), ', ') || ');'
                           from jsonb_array_elements(v_refused) as r
                           where exists (select from sync.rule as x where x.code = r ->> 'code')),
                          'the table refused the write, not a rule: the reason above says why'),
                      v_delivery.fragrance_id);
    end if;
    v_result.inbox_id := v_receipt.inbox_id;
    v_result.status := v_receipt.status;

    -- The fragrance named: the id of a row of sync.fragrance_history passed
    -- for its inbox_id is another delivery's, of another fragrance, and the
    -- answer gave no sign of it (hostile review).
    v_result.message := format('inbox row %s of fragrance %s: %s restored through delivery %s (%s)',
        p_inbox_id, v_delivery.fragrance_id,
        (select string_agg(k, ', ' order by k) from jsonb_object_keys(v_result.restored) as k),
        v_result.inbox_id, v_result.status);
    if v_result.left_alone <> '{}' then
        v_result.message := v_result.message || '; left alone: ' || (
            select string_agg(format('%s (%s)', key, value #>> '{}'), ', ' order by key)
            from jsonb_each(v_result.left_alone));
    end if;
    if v_result.status = 'pending' then
        v_result.message := v_result.message || '; run SELECT * FROM sync.apply_pending(1000); to apply it';
    end if;
    return v_result;
end;
$$;
comment on function sync.revert(bigint) is
    'Undoes one applied delivery: each field it changed gets its previous value back, unless a later change has set that field since, or a later delivery still pending or in quarantine will, or an earlier delivery that set it too was never written (lost as stale, or still pending and bound to be): then it is left alone and said so. The old values go through sync.inbox as a new delivery (origin revert), so they are judged, ordered and audited like any change; values the rules in force refuse raise FS061, and nothing is stored. Usage: SELECT * FROM sync.revert(42);';

-- sync.fragrance_at
-- Shows a fragrance as it was at a moment, by undoing every recorded change made after it.
create function sync.fragrance_at(p_fragrance_id integer, p_at timestamptz)
    returns setof public.fragrances
    language plpgsql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_row jsonb;
    v_change sync.fragrance_history;
    v_cut bigint;
begin
    if p_fragrance_id is null or p_at is null then
        raise exception 'sync.fragrance_at needs a fragrance id and a moment, got a null'
            using errcode = 'FS005',
                  hint = 'For example SELECT * FROM sync.fragrance_at(7, now() - interval ''1 day'');';
    end if;
    -- An infinite moment is a bound, not an error: no change is later than
    -- 'infinity' (the fragrance now), every one is later than '-infinity' (the
    -- earliest state the history knows).
    -- Backwards from today: rows adopted before the sync existed have no insert in the
    -- history, so replaying forwards would miss their first state; undoing does not.
    --
    -- Cut by the history's order, not its clock: the state after the last
    -- change recorded at or before p_at, every change recorded after that one
    -- undone. changed_at is the database host's clock, which can step back
    -- (NTP, a VM restored): a change recorded while it ran ahead is dated
    -- after later ones, and undoing "every change dated after p_at" left it
    -- out of fragrance_at(7, now()) and mixed later changes with the value
    -- before it into a row that never was (hostile review). Undoing a tail of
    -- the history always gives a state the fragrance had; with a clock that
    -- never steps back it is the same cut.
    select to_jsonb(f) into v_row from public.fragrances as f where f.fragrance_id = p_fragrance_id;
    v_cut := coalesce((select max(h.id) from sync.fragrance_history as h
                       where h.fragrance_id = p_fragrance_id and h.changed_at <= p_at), 0);
    for v_change in
        select * from sync.fragrance_history
        where fragrance_id = p_fragrance_id and id > v_cut
        order by id desc
    loop
        v_row := case v_change.operation
            when 'insert' then null
            when 'delete' then v_change.old_values
            else v_row || v_change.old_values
        end;
    end loop;
    if v_row is not null then
        return next jsonb_populate_record(null::public.fragrances, v_row);
    end if;
end;
$$;
comment on function sync.fragrance_at(integer, timestamptz) is
    'The fragrance as it was at p_at (no row if it did not exist then), rebuilt from the current row by undoing, in the history''s order, every change sync.fragrance_history recorded after the last one dated at or before p_at (a change dated later by a clock that stepped back since is not undone out of turn). Before the first recorded change it shows the earliest known state: p_at => ''-infinity'' gives that state, ''infinity'' the fragrance now. Usage: SELECT * FROM sync.fragrance_at(7, now() - interval ''1 day'');';

create trigger _010_refuse_truncate_fragrance_history
    before truncate on sync.fragrance_history
    for each statement execute function sync_private.refuse_truncate(
        'It is the audit of public.fragrances, which sync.revert, sync.fragrance_at and the drift check read: no verb purges it, on purpose (docs/operations.md, "What grows").');
comment on trigger _010_refuse_truncate_fragrance_history on sync.fragrance_history is
    'Refuses a TRUNCATE of the history (FS092): the audit, revert and fragrance_at would lose every change.';

create trigger _020_refuse_hand_change_fragrance_history
    before update or delete on sync.fragrance_history
    for each statement execute function sync_private.refuse_hand_change(
        'It is the audit of public.fragrances, which sync.revert, sync.fragrance_at and the drift check read: nothing rewrites or purges it. Undo a delivery''s change, recorded as a change of its own: SELECT * FROM sync.revert(inbox_id); see a fragrance as it was: SELECT * FROM sync.fragrance_at(7, now() - interval ''1 day'');');
comment on trigger _020_refuse_hand_change_fragrance_history on sync.fragrance_history is
    'Refuses an UPDATE or DELETE of the history typed by hand (FS094): the audit would say what never happened; sync.revert undoes a change as a change of its own.';
