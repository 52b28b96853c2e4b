-- Drift: the library against a snapshot of the CMS catalog, and the repair
-- that delivers the difference through the inbox like any webhook.
--
-- Webhooks get lost for good (the CMS never retries, and its very first
-- change is made before anyone can listen), so the catalog is compared whole
-- and repaired: load a snapshot, read sync.drift, run sync.repair().

-- sync.inbox_position
-- The receipt position (inbox id) reached now, or at a past moment.
create function sync.inbox_position(p_at timestamptz default null) returns bigint
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    -- Ties on received_at (a batch shares one moment) are broken by id, so
    -- the position at that moment covers the whole batch. Ids follow
    -- received_at except for spooled deliveries: drained after an outage,
    -- they keep the moment the hook received them under a later id. So the
    -- position also stays below every delivery received after p_at: one
    -- received after the export is never taken for older than it (a repair
    -- overwrote such a change, hostile review). In doubt a delivery counts
    -- as newer, and the repair leaves its fields alone.
    select case
        when p_at is null then coalesce(pg_sequence_last_value('sync.inbox_id_seq'::regclass), 0)
        else least(
            coalesce((select id from sync.inbox where received_at <= p_at
                      order by received_at desc, id desc limit 1), 0),
            (select min(id) - 1 from sync.inbox where received_at > p_at))
    end;
$$;
comment on function sync.inbox_position(timestamptz) is
    'The last inbox id handed out now (no argument), or at p_at the last delivery received at or before it (the highest id among those received at the same moment), kept below every delivery received after it (a spooled delivery may be received earlier than its id says): deliveries after the position are newer than a CMS export taken at that moment. Usage: SELECT sync.inbox_position(''2026-11-23 21:00Z'');';

-- sync.drift: every difference between the snapshot and public.fragrances.
create view sync.drift as
-- The CMS's fields: the snapshot's columns but its own (a view may only call
-- functions its readers may, and DBAs are granted no internals, so not
-- sync_private.fields(), which lists the same). A column the smart library
-- added to public.fragrances is not compared.
with field as (
    select a.attname::text as name
    from pg_catalog.pg_attribute as a
    where a.attrelid = 'sync.cms_snapshot'::pg_catalog.regclass
      and a.attnum > 0 and not a.attisdropped
      and a.attname not in ('fragrance_id', 'source', 'loaded_at', 'taken_at', 'inbox_position')
)
select
    s.fragrance_id,
    'missing'::text as kind,
    null::text as field,
    (select jsonb_object_agg(f.name, to_jsonb(s) -> f.name) from field as f) as cms_value,
    null::jsonb as library_value,
    -- Gone since the snapshot: deleted by hand after it (a delete leaves the
    -- clock at its position, sync_private.record_change, and its history
    -- row), so the snapshot is older than the delete and must not bring the
    -- fragrance back. A delete before the snapshot stays repairable.
    exists (select from sync.field_version as v
            cross join jsonb_each_text(v.versions) as x
            where v.fragrance_id = s.fragrance_id
              and coalesce((v.positions ->> x.key)::bigint, x.value::bigint) > s.inbox_position)
    or exists (select from sync.fragrance_history as h
               where h.fragrance_id = s.fragrance_id and h.inbox_id is null
                 and h.changed_at > s.taken_at) as newer_in_library
from sync.cms_snapshot as s
where not exists (select from public.fragrances as l where l.fragrance_id = s.fragrance_id)
union all
select
    l.fragrance_id,
    'extra',
    null,
    null,
    (select jsonb_object_agg(f.name, to_jsonb(l) -> f.name) from field as f),
    false
from public.fragrances as l
where exists (select from sync.cms_snapshot)
  and not exists (select from sync.cms_snapshot as s where s.fragrance_id = l.fragrance_id)
union all
select
    s.fragrance_id,
    'differs',
    f.name,
    j.cms -> f.name,
    j.library -> f.name,
    -- The position its writer counts at: a repair's is its snapshot's.
    coalesce((v.positions ->> f.name)::bigint, (v.versions ->> f.name)::bigint, 0) > s.inbox_position
    -- A hand change counts as received when it is made, at the position
    -- reached then (sync_private.record_change): one made after the snapshot
    -- with no delivery in between sits at the snapshot's own position, and a
    -- re-insert by hand has no clock at all. Its history row says when it was
    -- made, which breaks the tie: after taken_at, the library is newer.
    or exists (select from sync.fragrance_history as h
               where h.fragrance_id = s.fragrance_id and h.inbox_id is null
                 and h.changed_at > s.taken_at
                 and (h.operation <> 'update' or h.new_values ? f.name))
from sync.cms_snapshot as s
join public.fragrances as l on l.fragrance_id = s.fragrance_id
-- Each row as JSON once, and only the rows that differ taken field by field:
-- without its own columns, the snapshot's row equals the library's when they
-- agree (a column either side lacks makes them differ, and then the fields
-- decide). The drift check reads it whole (sync_private.catalog_in_sync);
-- the status page reads only what the check recorded (catalog_as_checked).
cross join lateral (select to_jsonb(s) - '{source,loaded_at,taken_at,inbox_position}'::text[] as cms,
                           to_jsonb(l) as library
                    offset 0) as j
left join sync.field_version as v on v.fragrance_id = s.fragrance_id
cross join field as f
where j.cms is distinct from j.library
  and j.cms -> f.name is distinct from j.library -> f.name;
comment on view sync.drift is
    'Differences between sync.cms_snapshot and public.fragrances: missing (in the CMS, not in the library), extra (in the library, not in the CMS) and differs (one row per differing field). Empty while no snapshot is loaded.';
comment on column sync.drift.fragrance_id is 'The fragrance that differs.';
comment on column sync.drift.kind is 'missing (in the CMS snapshot, not in the library), extra (in the library, not in the snapshot) or differs (in both, one row per differing field).';
comment on column sync.drift.field is 'The differing column for kind differs; null for whole rows.';
comment on column sync.drift.cms_value is 'The snapshot''s value (the whole row as JSON for missing); null for extra.';
comment on column sync.drift.library_value is 'public.fragrances'' value (the whole row as JSON for extra); null for missing.';
comment on column sync.drift.newer_in_library is 'True when a delivery received after the snapshot was taken set this field, or a hand change made after it (an UPDATE of the field, a DELETE or a re-INSERT of the row) did: the library is newer; reload the snapshot rather than repair.';

-- sync.drift_summary_now
-- The drift report in counts, computed now without JIT: what the view sync.drift_summary returns.
create function sync.drift_summary_now()
    returns table (kind text, field text, fragrances bigint, newer_in_library bigint,
                   fragrances_newer_in_library bigint, fragrances_awaiting_delivery bigint)
    language sql
    stable
    -- Security definer: it judges the deliveries still pending
    -- (sync_private.pending_since), internals no DBA is granted. It ran as
    -- its reader before, with the reader's search_path: count(distinct ...)
    -- resolved to a count(integer) that any login could create in a schema
    -- public open to all, and ran it as the DBA (hostile review;
    -- tests/test_search_path.py). The path stays locked.
    security definer
    set search_path = pg_catalog, pg_temp
    -- No JIT: past about 100,000 fragrances the drift's plan passes JIT's
    -- thresholds, and compiling it took 0.37 s of 1.9 s at 200,000. The
    -- drift check (sync.run_job) turned it off for itself; a DBA who read
    -- the view by hand still paid it (hostile review). A SET keeps this
    -- function from being inlined, so its statement is planned with it.
    set jit = off
as $$
    -- The drift check records this and derives the status page's figures from
    -- it (sync_private.catalog_in_sync): one read of the drift, which it read
    -- twice before, 7.3 s instead of 3.7 s at 200,000 fragrances (ADR 0029).
    -- So a fragrance's differences are also judged together here: only_newer
    -- says all of them are newer in the library.
    --
    -- A difference that a delivery received after the snapshot, still
    -- pending, will set is newer than the snapshot too, only not merged
    -- yet: the check counted it as drift, the next merge made it newer in
    -- the library, and during a backlog the alert on the check's count
    -- fired and cleared (hostile review). Such a difference is awaited: a
    -- field the pending delivery carries, a missing fragrance it creates
    -- whole. Only one the rules in force accept (one bound for quarantine
    -- fixes nothing by itself, and the quarantine's own alert speaks for
    -- it). fragrances_awaiting_delivery counts the fragrances whose every
    -- difference is newer or awaited, some awaited: apart from the newer
    -- ones, so that after the merge they move to those.
    with awaited as materialized (
        select p.fragrance_id, p.payload
        from sync_private.pending_since((select min(s.inbox_position) from sync.cms_snapshot as s)) as p
        where p.valid
    )
    select
        d.kind,
        d.field,
        count(distinct d.fragrance_id) as fragrances,
        count(*) filter (where d.newer_in_library) as newer_in_library,
        count(distinct d.fragrance_id) filter (where d.only_newer) as fragrances_newer_in_library,
        count(distinct d.fragrance_id) filter (where d.only_covered and not d.only_newer)
            as fragrances_awaiting_delivery
    from (select y.kind, y.field, y.fragrance_id, y.newer_in_library,
                 bool_and(y.newer_in_library) over (partition by y.kind, y.fragrance_id) as only_newer,
                 bool_and(y.newer_in_library or y.awaited) over (partition by y.kind, y.fragrance_id) as only_covered
          from (select x.kind, x.field, x.fragrance_id, x.newer_in_library,
                       exists (select from awaited as a
                               where a.fragrance_id = x.fragrance_id
                                 and ((x.kind = 'missing' and a.payload ?& sync_private.fields())
                                      or (x.kind = 'differs' and a.payload ? x.field))) as awaited
                from sync.drift as x) as y) as d
    group by grouping sets ((d.kind), (d.kind, d.field))
    having grouping(d.field) = 1 or d.kind = 'differs'
    order by d.kind, d.field nulls first;
$$;
comment on function sync.drift_summary_now() is
    'The rows of sync.drift_summary, computed now with JIT off (the drift''s plan passes JIT''s thresholds on a big catalog, and compiling cost more than it saved). Read the view: SELECT * FROM sync.drift_summary;';

-- sync.drift_summary: the drift report in counts.
create view sync.drift_summary as
-- Through a function, which plans the drift with JIT off for every reader.
select s.kind, s.field, s.fragrances, s.newer_in_library, s.fragrances_newer_in_library,
       s.fragrances_awaiting_delivery
from sync.drift_summary_now() as s;
comment on view sync.drift_summary is
    'How many fragrances are missing, extra or differ, and for differs how many per field (field null: any field). newer_in_library counts differences the repair leaves alone, fragrances_newer_in_library the fragrances whose every difference it leaves alone, fragrances_awaiting_delivery those whose differences a pending delivery received after the snapshot will settle.';
comment on column sync.drift_summary.kind is 'missing (in the CMS snapshot, not in the library), extra (in the library, not in the snapshot) or differs (in both, some field differs).';
comment on column sync.drift_summary.field is 'For differs, the column; null for the count over any field.';
comment on column sync.drift_summary.fragrances is 'How many fragrances.';
comment on column sync.drift_summary.newer_in_library is 'Of those differences, how many are newer in the library than the snapshot (left alone by sync.repair).';
comment on column sync.drift_summary.fragrances_newer_in_library is 'Of those fragrances, how many differ from the snapshot only by what is newer in the library (every difference of theirs, in any field): changed since the snapshot, not verified against the CMS.';
comment on column sync.drift_summary.fragrances_awaiting_delivery is 'Of those fragrances, how many differ only by what is newer in the library or what a delivery received after the snapshot, still pending and accepted by the rules in force, will set (a field it carries, a missing fragrance it creates whole), at least one difference of the latter: changed since the snapshot, not merged yet. Disjoint from fragrances_newer_in_library; the drift check does not count them as drift.';

-- sync_private.catalog_in_sync
-- How the library stands against the last snapshot, for the status page, from the drift summary the check read.
create function sync_private.catalog_in_sync(p_summary jsonb) returns jsonb
    language sql
    stable
as $$
    -- A row set by a delivery or by hand after the snapshot differs from it
    -- without being wrong, but nothing here knows it is right: counted as in sync,
    -- every change lost or made up after the snapshot read as in sync, and
    -- the page said 5000/5000 while 58 rows were off (hostile review). Such
    -- rows are counted apart, as changed since and not verified.
    --
    -- From p_summary, the rows of sync.drift_summary the drift check read
    -- (as jsonb_agg(to_jsonb(d))), not the drift again: missing and differs
    -- are disjoint (a missing fragrance has no library row to differ), so
    -- their whole-kind rows add up.
    with kinds as (
        select k ->> 'kind' as kind, (k ->> 'fragrances')::bigint as fragrances,
               (k ->> 'fragrances_newer_in_library')::bigint as only_newer,
               coalesce((k ->> 'fragrances_awaiting_delivery')::bigint, 0) as awaiting
        from jsonb_array_elements(p_summary) as k
        where k ->> 'field' is null
    )
    select case when s.cms_rows > 0 then jsonb_build_object(
        'snapshot_taken_at', s.taken_at,
        'snapshot_source', s.source,
        'snapshot_loaded_at', s.loaded_at,
        'snapshot_inbox_position', s.inbox_position,
        'cms_rows', s.cms_rows,
        'library_rows', (select count(*) from public.fragrances),
        'in_sync', s.cms_rows - (select coalesce(sum(k.fragrances), 0) from kinds as k where k.kind <> 'extra'),
        -- A pending delivery received after the snapshot is a change since
        -- too, only not merged yet (sync.drift_summary_now): counted here,
        -- not as drift, it stays counted the same once merged, and the
        -- alert on the drift does not fire and clear with a backlog.
        'changed_since', (select coalesce(sum(k.only_newer + k.awaiting), 0) from kinds as k where k.kind <> 'extra'),
        'awaiting_delivery', (select coalesce(sum(k.awaiting), 0) from kinds as k where k.kind <> 'extra'),
        'extra', (select coalesce(sum(k.fragrances), 0) from kinds as k where k.kind = 'extra'))
    end
    from (select count(*) as cms_rows, min(taken_at) as taken_at, min(source) as source,
                 min(loaded_at) as loaded_at, min(inbox_position) as inbox_position
          from sync.cms_snapshot) as s;
$$;
comment on function sync_private.catalog_in_sync(jsonb) is
    'Against the last CMS snapshot (when it was taken and loaded, its source and inbox position), from p_summary (the rows of sync.drift_summary read once, as a jsonb array): its rows, the library''s rows, how many CMS rows the library holds with the snapshot''s values (in_sync), how many differ only by what deliveries or hand changes set after the snapshot was taken or a pending delivery received after it will set (changed_since: not verified against the CMS), of those how many wait for such a pending delivery (awaiting_delivery), and how many library rows the CMS lacks; null with no snapshot. The check_drift job records it, the status page reads the record (sync_private.catalog_as_checked).';

-- sync_private.catalog_as_checked
-- The snapshot loaded now and what the last drift check found against it, for the status page.
create function sync_private.catalog_as_checked(p_now timestamptz) returns jsonb
    language sql
    stable
as $$
    -- The drift compares the whole catalog with the whole snapshot (1.5 s
    -- and 1.4 million rows read per load at 200,000 fragrances, measured
    -- with bench/status_cost.py), and the status page, which anyone who
    -- reaches the hook may load (a dashboard reloads it every 30 s),
    -- computed it at every load (hostile review). The page shows what the
    -- drift check (sync.run_job('check_drift'), on schedule) found instead,
    -- and when: the figures of the last successful check, if it compared
    -- the snapshot loaded now. Of a snapshot loaded since, or a check that
    -- recorded no figures (code older than them), none: checked_at is null
    -- and the page says to run the check. Reads one row of the snapshot and
    -- one of the job's runs, by key, whatever the catalog's size.
    select jsonb_build_object(
               'snapshot_taken_at', s.taken_at,
               'snapshot_source', s.source,
               'snapshot_loaded_at', s.loaded_at,
               'snapshot_inbox_position', s.inbox_position,
               'checked_at', c.finished_at,
               'checked_ago', sync_private.say_interval(p_now - c.finished_at))
           || coalesce(c.figures, '{}')
    -- Every row of a snapshot has the same moments and source (each load
    -- replaces it whole). The first by key: a scan would pass first over
    -- the rows a reload deleted, until vacuum.
    from (select x.taken_at, x.source, x.loaded_at, x.inbox_position from sync.cms_snapshot as x
          order by x.fragrance_id
          limit 1) as s
    left join lateral (
        select r.finished_at,
               (r.detail -> 'catalog')
                   - '{snapshot_taken_at,snapshot_source,snapshot_loaded_at,snapshot_inbox_position}'::text[]
                   as figures
        from (select x.finished_at, x.detail from sync.job_run as x
              where x.job = 'check_drift' and x.status = 'ok'
              order by x.id desc
              limit 1) as r
        -- The same snapshot: its moments compared as moments (the JSON holds
        -- them in the time zone of the session that ran the check). A CSV
        -- load is dated afterwards by an UPDATE of taken_at and
        -- inbox_position (docs/drift-and-undo.md), which decide what counts
        -- as changed since: figures of the check before it are not these.
        where (r.detail -> 'catalog' ->> 'snapshot_loaded_at')::timestamptz = s.loaded_at
          and (r.detail -> 'catalog' ->> 'snapshot_taken_at')::timestamptz = s.taken_at
          and (r.detail -> 'catalog' ->> 'snapshot_inbox_position')::bigint = s.inbox_position
          and r.detail -> 'catalog' ->> 'snapshot_source' = s.source) as c on true;
$$;
comment on function sync_private.catalog_as_checked(timestamptz) is
    'The CMS snapshot loaded now (when it was taken and loaded, its source and inbox position) and, when the last successful check_drift run compared it, that run''s figures of sync_private.catalog_in_sync (cms_rows, library_rows, in_sync, changed_since, extra) with its moment (checked_at, and checked_ago in words at p_now); checked_at null when no check compared this snapshot. Null with no snapshot. For the status page: reads no more than one row of each table, whatever the catalog''s size.';

-- sync.plan_repair
-- The deltas sync.repair() would send, one per fragrance, without sending them.
create function sync.plan_repair()
    returns table (fragrance_id integer, kind text, fields text[], body jsonb)
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    with pending as materialized (
        -- One the rules refuse keeps its fields as a quarantined one does
        -- (below), and holds back no creation.
        select p.fragrance_id, p.payload, p.valid as merges
        from sync_private.pending_since((select min(s.inbox_position) from sync.cms_snapshot as s)) as p
        union all
        -- And one received after it that waits in quarantine: the repair's
        -- delivery is newer by inbox id, so once retried that change found
        -- its fields set since and was ignored as stale, the snapshot's
        -- older values kept over it (hostile review). Its fields are left
        -- to it too, until it is retried or discarded (a repair quarantined
        -- is no longer sent again by the next one). Not a missing fragrance
        -- whole: a quarantined change of one is mostly a partial delta
        -- refused as fragrance_id.unknown, which nothing but the repair's
        -- creation lets in. But a repair's own creation in quarantine is:
        -- the snapshot's row waits there, and each repair of the snapshot
        -- quarantined one more copy of it, the quarantine growing at every
        -- run (hostile review).
        select i.fragrance_id, i.payload,
               i.origin = 'repair' and i.payload ?& sync_private.fields()
        from sync.inbox as i
        where i.status = 'rejected'
          and i.id > (select min(s.inbox_position) from sync.cms_snapshot as s)
          and i.fragrance_id is not null
          and jsonb_typeof(i.payload) = 'object'
    )
    select
        d.fragrance_id,
        min(d.kind),
        case when min(d.kind) = 'missing' then sync_private.fields()
             else array_agg(d.field order by d.field) filter (where d.kind = 'differs') end,
        jsonb_build_object('fragrance_id', d.fragrance_id)
            || case when min(d.kind) = 'missing' then min(d.cms_value::text)::jsonb
                    else jsonb_object_agg(d.field, coalesce(d.cms_value, 'null'))
                             filter (where d.kind = 'differs') end
    from sync.drift as d
    where d.kind in ('missing', 'differs')
      and not d.newer_in_library
      -- A null the CMS holds cannot travel in a change: the rules refuse it
      -- in every field (name.null, description.null, cost.null,
      -- forbidden.null, none of them tunable), and carried in the delta it
      -- sent the whole repair of that fragrance to quarantine, its valid
      -- fields with it (hostile review). Left out, the library keeps its
      -- value and the other fields are repaired; sync.drift still lists it.
      -- A missing fragrance's creation needs every field, so it goes whole
      -- and a null in it is quarantined like any value the rules refuse.
      and not (d.kind = 'differs' and d.cms_value = 'null'::jsonb)
      -- A delivery received after the snapshot but not merged yet is newer
      -- too: its fields are left to it, and a missing fragrance it names to
      -- it whole (run sync.apply_pending(), then look again); one in
      -- quarantine keeps its fields (retry or discard it, then look again).
      and not exists (
          select from pending as p
          where p.fragrance_id = d.fragrance_id
            and ((d.kind = 'missing' and p.merges) or p.payload ? d.field))
    group by d.fragrance_id
    order by d.fragrance_id;
$$;
comment on function sync.plan_repair() is
    'Dry run of sync.repair(): per fragrance, the delta it would deliver (a complete create for a missing row, only the differing fields otherwise). Extra rows, fields the CMS holds as null (no change can carry a null: the library keeps its value), fields newer in the library, fields a delivery received after the snapshot will set (still pending) or carries in quarantine (until retried or discarded), and a missing row whose creation by a repair waits in quarantine are left out. Usage: SELECT * FROM sync.plan_repair();';

-- sync.repair
-- Delivers each planned repair delta through the inbox, like a webhook, and returns the receipts.
create function sync.repair(p_apply boolean default true)
    returns table (inbox_id bigint, fragrance_id integer, kind text, status text, reasons jsonb)
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_source text;
    v_plan record;
    v_lock_timeout text := current_setting('lock_timeout');
    v_held integer[];
    v_ids integer[];
    v_names text[];
    v_renamed integer[];
begin
    -- Null would stage every delta, and the hook's sweep never applies staged rows.
    if p_apply is null then
        raise exception 'p_apply must be true or false, got null'
            using errcode = 'FS005',
                  hint = 'SELECT * FROM sync.repair(); applies, SELECT * FROM sync.repair(p_apply => false); stages for sync.apply_pending().';
    end if;
    -- A load waits for the repair, so the plan and the snapshot are the same one.
    lock table sync.cms_snapshot in share mode;
    -- The moment in UTC, by a pattern: as text it was written in the
    -- repairing session's DateStyle and TimeZone (23/11/2026 under
    -- 'SQL, DMY', which MDY reads as no date at all) and stored so in every
    -- delivery's user_agent (hostile review).
    select format('%s taken %s', min(s.source),
                  to_char(min(s.taken_at) at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'))
    into v_source
    from sync.cms_snapshot as s having count(*) > 0;
    if v_source is null then
        raise exception 'no CMS snapshot is loaded, so there is nothing to repair from'
            using errcode = 'FS050',
                  -- Not sync.load_snapshot_from_server(), once named here: it is granted to
                  -- nobody, and a DBA who followed the hint got a permission error.
                  hint = 'Load a CMS export first (docs/drift-and-undo.md, "Finding and repairing drift"), '
                      || 'dated by SELECT now(); read here before it was taken: '
                      || 'psql -v taken_at="$TAKEN_AT" -v file=cms.json -f sql/load-snapshot-json.sql, '
                      || 'or SELECT sync.load_snapshot(''[...]''::jsonb, ''cms.json'', ''<that moment>'');';
    end if;

    -- Lock the fragrances before planning. The plan sees every delivery
    -- stored before it, merged or pending (sync.plan_repair), and a
    -- delivery merged after it waits for these locks. A delivery whose store
    -- commits after the plan is not seen; it was received after the
    -- snapshot, and the repair's rows count at the snapshot's position
    -- (below), so it is newer than them wherever it is merged, before or
    -- after them: the merge keeps its value. With them, the turns of the
    -- names it will write and replace (those that differ now), all at once
    -- and never holding one while waiting for another (sync_private.lock_all):
    -- locked in id order, each waited for in turn, a DBA's UPDATE of two rows
    -- that held the later one and waited for one the repair held was
    -- cancelled as a deadlock victim (40P01, in a stress pass).
    --
    -- A row another transaction holds (a DBA's edit left open) made the
    -- repair wait without a word, its psql silent for as long as it lasted.
    -- It waits 2 s, as a merge does, then says which fragrances and how to
    -- find their holder, and goes on waiting (the repair must have them
    -- all). A caller's own lock_timeout of 2 s or less is left to act alone.
    select coalesce(array_agg(s.fragrance_id order by s.fragrance_id), '{}'),
           coalesce(array_agg(s.name) filter (where f.fragrance_id is null or f.name is distinct from s.name), '{}'),
           coalesce(array_agg(f.fragrance_id) filter (where f.fragrance_id is not null and f.name is distinct from s.name), '{}')
    into v_ids, v_names, v_renamed
    from sync.cms_snapshot as s
    left join public.fragrances as f on f.fragrance_id = s.fragrance_id;
    if v_lock_timeout::interval between interval '1 microsecond' and interval '2s' then
        perform sync_private.lock_all(v_ids, v_names, v_renamed, null);
    elsif sync_private.lock_all(v_ids, v_names, v_renamed, interval '2s') is null then
        v_held := sync_private.held_fragrances(v_ids);
        if cardinality(v_held) > 0 then
            raise notice 'sync.repair waits for % fragrance(s) another transaction holds: %',
                cardinality(v_held),
                array_to_string(v_held[1:20], ', ') || case when cardinality(v_held) > 20 then ', ...' else '' end
                using hint = 'It goes on once that transaction ends. ' || sync_private.fragrance_holders_hint();
        else
            raise notice 'sync.repair waits for the turn of a name it writes or replaces, which another transaction holds'
                using hint = 'It goes on once that transaction ends: one that wrote names (a rename left open) holds '
                    || 'their turns until it commits. ' || sync_private.fragrance_holders_hint();
        end if;
        perform sync_private.lock_all(v_ids, v_names, v_renamed, null);
    end if;

    -- One batch through the one storing path; p_apply false stages the deltas
    -- pending (for this call only) for a second look before apply_pending.
    select array_agg(p.fragrance_id order by p.fragrance_id) as ids,
           array_agg(p.kind order by p.fragrance_id) as kinds,
           array_agg(convert_to(p.body::text, 'UTF8') order by p.fragrance_id) as bodies
    into v_plan
    from sync.plan_repair() as p;
    if v_plan.ids is null then
        return;
    end if;
    return query
    select r.inbox_id, v_plan.ids[r.n::integer], v_plan.kinds[r.n::integer], r.status, r.reasons
    from sync_private.store(
        v_plan.bodies,
        array_fill('application/x-sync-repair'::text, array[cardinality(v_plan.ids)]),
        array_fill(null::text, array[cardinality(v_plan.ids)]),
        array_fill(format('sync.repair by %s from %s', session_user, v_source), array[cardinality(v_plan.ids)]),
        array_fill(null::uuid, array[cardinality(v_plan.ids)]),
        null, 'repair',
        p_apply and (select s.apply_on_receipt from sync.settings as s),
        -- Its deliveries count at the snapshot's position, not at their ids:
        -- a delivery received after it is newer, whenever it is stored or
        -- merged (one stored beside the repair, its id drawn before the
        -- repair's but committed after the plan, lost to the snapshot's
        -- older value).
        (select min(s.inbox_position) from sync.cms_snapshot as s)) with ordinality as r (inbox_id, status, reasons, n)
    order by r.n;
end;
$$;
comment on function sync.repair(boolean) is
    'Delivers every delta of sync.plan_repair() into sync.inbox (origin repair) so it is judged, ordered, applied and audited like a webhook, and returns the receipts; p_apply false stages them pending for sync.apply_pending(). Usage: SELECT * FROM sync.repair();';

-- sync_private.held_fragrances
-- The fragrances of p_ids whose rows another transaction holds now, without keeping a lock.
create function sync_private.held_fragrances(p_ids integer[]) returns integer[]
    language plpgsql
as $$
declare
    v_free integer[];
begin
    -- Row locks are not in pg_locks: the rows SKIP LOCKED passes over are
    -- the held ones. The locks it takes are given back by undoing the block
    -- (a PL/pgSQL variable keeps its value).
    begin
        v_free := array(select f.fragrance_id from public.fragrances as f
                        where f.fragrance_id = any (p_ids) for update skip locked);
        raise exception using errcode = 'P0001';
    exception when raise_exception then
        null;
    end;
    -- By set difference: "<> all (v_free)" compares each row with the whole
    -- array, and a snapshot holds the catalog.
    return array(select h.fragrance_id
                 from (select unnest(p_ids) except select unnest(v_free)) as h (fragrance_id)
                 where exists (select from public.fragrances as f where f.fragrance_id = h.fragrance_id)
                 order by h.fragrance_id);
end;
$$;
comment on function sync_private.held_fragrances(integer[]) is
    'The ids among p_ids of the fragrances whose rows another transaction holds now, in id order; it locks nothing (for the NOTICEs of sync.repair and sync.revert).';

-- sync_private.replace_snapshot
-- Empties the snapshot under an exclusive lock, ready for a new load in the same transaction.
create function sync_private.replace_snapshot() returns void
    language plpgsql
as $$
begin
    -- Share row exclusive: one load at a time, after a repair or a drift
    -- check that holds the snapshot (share), but never ahead of a reader.
    -- Access exclusive queued behind any open transaction that had read the
    -- snapshot (a DBA's look at sync.drift, a repair left open), and every
    -- reader after it queued behind the load: sync.health and sync.metrics
    -- read the snapshot's age, so /metrics and /status hung until that
    -- transaction ended (hostile review). A reader sees the snapshot before
    -- the load until the load commits, whole (MVCC), as it did.
    lock table sync.cms_snapshot in share row exclusive mode;
    delete from sync.cms_snapshot;
end;
$$;
comment on function sync_private.replace_snapshot() is
    'Locks sync.cms_snapshot against other loads, repairs and drift checks (share row exclusive: readers go on, seeing the snapshot before until the load commits) and empties it for the loader that called it.';

-- sync_private.is_number
-- Whether a text is one numeric takes, by trying it.
create function sync_private.is_number(p_text text) returns boolean
    language plpgsql
    immutable
as $$
begin
    -- Tried rather than matched: numeric's own grammar decides (NaN,
    -- Infinity, and what later versions add), so nothing it takes is refused.
    perform p_text::numeric;
    return true;
exception when data_exception then
    return false;
end;
$$;
comment on function sync_private.is_number(text) is
    'True when p_text casts to numeric, false when the cast raises a data exception; sync.load_snapshot tries each cost string that is no plain decimal with it, to name the row of one that is no number.';

-- sync_private.check_snapshot_row
-- Trigger: refuses a snapshot row whose fragrance is already loaded, or whose cost is NaN or Infinity.
create function sync_private.check_snapshot_row() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- Every load path writes through here: sync.load_snapshot (which names
    -- repeats and odd ids itself first, before it empties the snapshot),
    -- sync.load_snapshot_from_server and the CSV load's COPY. The CSV load
    -- checked nothing: an id twice failed on the primary key (23505, no
    -- hint, no word of the export), and a cost of NaN or Infinity, which
    -- numeric holds and no consumer can take, loaded and the repair sent it
    -- on to be quarantined (hostile review). Per row, before it is stored:
    -- the rows a COPY stored before it are seen, so the second copy of an
    -- id is named, by one probe of the primary key.
    if new.cost in ('NaN', 'Infinity', '-Infinity') then
        raise exception 'the snapshot cannot be loaded: fragrance % has the cost %, not a finite number', new.fragrance_id, new.cost
            using errcode = 'FS051',
                  hint = 'Each cost a finite number: fix that fragrance in the CMS or its row of the export, then load it again '
                      || '(in one transaction, psql -1, so the snapshot loaded before is kept).';
    end if;
    -- On insert: an UPDATE that repeats an id fails on the primary key.
    if tg_op = 'INSERT' and exists (select from sync.cms_snapshot as s where s.fragrance_id = new.fragrance_id) then
        raise exception 'the snapshot cannot be loaded: fragrance % appears more than once', new.fragrance_id
            using errcode = 'FS051',
                  hint = 'A snapshot holds each fragrance once, by its CMS id: empty it first in the same transaction '
                      || E'(psql -1 -c \'delete from sync.cms_snapshot\' -c \'\\copy ...\'), and export the CMS table again '
                      || 'if the file repeats that id.';
    end if;
    return new;
end;
$$;
comment on function sync_private.check_snapshot_row() is
    'Trigger function of sync.cms_snapshot''s _050_check_row: raises FS051, naming the fragrance, for a row inserted whose fragrance_id the snapshot already holds (an id twice in a CSV export) or whose cost is NaN, Infinity or -Infinity; every load path (JSON, CSV, postgres_fdw) inserts through it.';

create trigger _050_check_row
    before insert or update of cost on sync.cms_snapshot
    for each row execute function sync_private.check_snapshot_row();
comment on trigger _050_check_row on sync.cms_snapshot is
    'Refuses a snapshot row of a fragrance already loaded or of a cost that is not finite (FS051), in every load path.';

-- sync_private.warn_undated_snapshot
-- Warns, after an export loaded without its moment, of the changes the repair would undo if the export is older than the load.
create function sync_private.warn_undated_snapshot() returns void
    language plpgsql
as $$
declare
    v_fragrances bigint;
    v_latest timestamptz;
begin
    -- An export loaded without its moment is dated at its load, and every
    -- delivery received between the export and the load counts as older
    -- than it: the repair undid what those set wherever the export
    -- differs, and only the docs said so (hostile review). Nothing here
    -- knows when the export was taken, so nothing is refused: the load
    -- says how many fragrances differ from it in a field a delivery or a
    -- hand change set (a field clock above 0, sync_private.record_change),
    -- and when the latest of those was received; the DBA compares that with
    -- the export's moment. A lost change looks the same (the CMS changed the
    -- field again and the delivery never came), which is why it warns and
    -- does not refuse. Reads the fragrances that have a clock, joined by key.
    select count(distinct s.fragrance_id), max(i.received_at)
    into v_fragrances, v_latest
    from sync.field_version as v
    join sync.cms_snapshot as s on s.fragrance_id = v.fragrance_id
    join public.fragrances as l on l.fragrance_id = v.fragrance_id
    cross join lateral jsonb_each_text(v.versions) as x
    left join sync.inbox as i on i.id = x.value::bigint
    where x.value::bigint > 0
      and x.key = any (sync_private.fields())
      and to_jsonb(s) -> x.key is distinct from to_jsonb(l) -> x.key;
    if v_fragrances > 0 then
        raise warning 'this CMS export is dated at its load, now: % fragrance(s) differ from it in a field a delivery or a hand change set, the latest received %',
            v_fragrances, coalesce(v_latest::text, 'at an unknown moment (purged)')
            using detail = 'If the export was taken before those changes, sync.repair() takes them for older than the export and undoes them.',
                  hint = 'Give the moment of the export, with its time zone: psql -v taken_at=''2026-11-23 21:00Z'' -v file=cms.json '
                      || '-f sql/load-snapshot-json.sql, SELECT sync.load_snapshot(rows, ''cms.json'', ''2026-11-23 21:00Z''); '
                      || 'or after a CSV load UPDATE sync.cms_snapshot SET taken_at = ''2026-11-23 21:00Z'', '
                      || 'inbox_position = sync.inbox_position(''2026-11-23 21:00Z''); then check SELECT * FROM sync.plan_repair();';
    end if;
end;
$$;
comment on function sync_private.warn_undated_snapshot() is
    'Raises a WARNING, after a snapshot loaded without the moment of its export (dated at its load), naming how many fragrances differ from it in a field a delivery or hand change set and when the latest of those was received: if the export is older, sync.repair() would undo them. Called by sync.load_snapshot without p_taken_at and by the insert trigger for a CSV load (COPY).';

-- sync_private.check_snapshot_dating
-- Trigger: refuses snapshot rows dated later than now, at no moment, or at an inbox position not reached.
create function sync_private.check_snapshot_dating() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_last bigint := sync.inbox_position();
    v_detail text;
begin
    -- A CSV load is dated by an UPDATE after it (docs/drift-and-undo.md), and
    -- COPY may carry these columns itself; sync.load_snapshot refused a moment
    -- later than now, but those writes checked nothing. Dated tomorrow, the
    -- snapshot made every hand change between the export and tomorrow older
    -- than itself, and the repair undid them with the export's values; at an
    -- inbox position not reached, so every delivery received since (hostile
    -- review). Checked once per statement, whatever it wrote.
    select format('fragrance %s is dated taken_at %s, inbox_position %s; now is %s and the last inbox id %s',
                  n.fragrance_id, n.taken_at, n.inbox_position, clock_timestamp(), v_last)
    into v_detail
    from new_rows as n
    where not isfinite(n.taken_at) or n.taken_at > clock_timestamp()
       or n.inbox_position < 0 or n.inbox_position > v_last
    order by n.fragrance_id
    limit 1;
    if v_detail is not null then
        raise exception 'a CMS snapshot is taken at a moment no later than now, at an inbox position reached by then: %', v_detail
            using errcode = 'FS090',
                  hint = 'Date it by the moment of the export, with its time zone: UPDATE sync.cms_snapshot SET '
                      || 'taken_at = ''2026-11-23 21:00Z'', inbox_position = sync.inbox_position(''2026-11-23 21:00Z'');';
    end if;
    -- A CSV load (COPY, source and moments by default) is dated at its
    -- load: say what the repair would undo if the export is older.
    if tg_op = 'INSERT' and exists (select from new_rows as n where n.source = 'copy' and n.taken_at = now()) then
        perform sync_private.warn_undated_snapshot();
    end if;
    return null;
end;
$$;
comment on function sync_private.check_snapshot_dating() is
    'Trigger function of sync.cms_snapshot''s _100_check_dating_insert and _100_check_dating_update: raises FS090, naming the first row, when a statement wrote a taken_at later than now or infinite, or an inbox_position below 0 or beyond the last inbox id; the repair judges what is newer in the library by them.';

create trigger _100_check_dating_insert
    after insert on sync.cms_snapshot
    referencing new table as new_rows
    for each statement execute function sync_private.check_snapshot_dating();
comment on trigger _100_check_dating_insert on sync.cms_snapshot is
    'Refuses snapshot rows loaded (COPY, INSERT) dated later than now or at an inbox position not reached (FS090).';
create trigger _100_check_dating_update
    after update on sync.cms_snapshot
    referencing new table as new_rows
    for each statement execute function sync_private.check_snapshot_dating();
comment on trigger _100_check_dating_update on sync.cms_snapshot is
    'Refuses a snapshot dated by hand later than now or at an inbox position not reached (FS090).';

-- sync.load_snapshot
-- Replaces the snapshot with a JSON array of CMS rows (the output of json_agg over the CMS table).
create function sync.load_snapshot(
    p_rows jsonb,
    p_source text default 'json',
    p_taken_at timestamptz default null
) returns bigint
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_count bigint;
    v_detail text;
begin
    if jsonb_typeof(p_rows) is distinct from 'array'
        or exists (select from jsonb_array_elements(p_rows) as e
                   where jsonb_typeof(e) <> 'object'
                      or jsonb_typeof(e -> 'fragrance_id') is distinct from 'number')
    then
        raise exception 'a snapshot must be a JSON array of objects that each have a numeric fragrance_id'
            using errcode = 'FS051',
                  hint = 'Export it from the CMS database with: select json_agg(f) from public.fragrances as f';
    end if;
    -- The CMS never holds no fragrance: an empty array is a failed export,
    -- and loading it would throw away the snapshot a repair needs (hostile review).
    if jsonb_array_length(p_rows) = 0 then
        raise exception 'a snapshot must hold at least one fragrance; this one is empty, and the snapshot loaded before is kept'
            using errcode = 'FS051',
                  hint = 'Check the export: select json_agg(f) from public.fragrances as f on the CMS database.';
    end if;
    -- A row's key, named: the load's own error said only "duplicate key
    -- value violates unique constraint" or "value out of range for type
    -- integer", not which of 200,000 objects, and took a negative id, which
    -- the repair then delivered as a create the rules refuse (hostile
    -- review). The ids the rules accept (fragrance_id.out_of_range,
    -- fragrance_id.not_integer), each once.
    select format('fragrance_id %s is not a whole number from 0 to 2147483647', e -> 'fragrance_id')
    into v_detail
    from jsonb_array_elements(p_rows) as e
    where (e ->> 'fragrance_id')::numeric not between 0 and 2147483647
       or (e ->> 'fragrance_id')::numeric <> trunc((e ->> 'fragrance_id')::numeric)
    limit 1;
    if v_detail is null then
        select format('fragrance %s appears %s times', (e ->> 'fragrance_id')::numeric::integer, count(*))
        into v_detail
        from jsonb_array_elements(p_rows) as e
        group by (e ->> 'fragrance_id')::numeric::integer
        having count(*) > 1
        order by (e ->> 'fragrance_id')::numeric::integer
        limit 1;
    end if;
    if v_detail is not null then
        raise exception 'a snapshot holds each fragrance once, by its CMS id: %; the snapshot loaded before is kept', v_detail
            using errcode = 'FS051',
                  hint = 'Export the CMS table again, one object per row: select json_agg(f) from public.fragrances as f; '
                      || 'on the CMS database, then psql -v file=cms.json -f sql/load-snapshot-json.sql';
    end if;
    -- A missing or misspelt key would load as null, and the repair would then
    -- send that null to the library. Keys beyond the fields are the CMS's own.
    select format('fragrance %s has no %s', e ->> 'fragrance_id',
                  array_to_string(array(select k from unnest(sync_private.fields()) as k where not e ? k), ', '))
    into v_detail
    from jsonb_array_elements(p_rows) as e
    where not e ?& sync_private.fields()
    limit 1;
    if v_detail is not null then
        raise exception 'a snapshot row must carry every CMS field: %', v_detail
            using errcode = 'FS051',
                  hint = format('Each object needs fragrance_id, %s.', array_to_string(sync_private.fields(), ', '));
    end if;
    -- Loaded as text, an object, an array or a number would become its JSON
    -- text, and the repair would send that to the library as a valid name
    -- (hostile review). A cost may come as a string (exports of decimals
    -- often do): the cast below takes "12" and refuses "cheap".
    select format('fragrance %s has a %s %s, not a %s', e ->> 'fragrance_id',
                  jsonb_typeof(e -> f.field), f.field, f.json_types[1])
    into v_detail
    from jsonb_array_elements(p_rows) as e
    cross join (values ('name', array['string']), ('description', array['string']),
                       ('cost', array['number', 'string']), ('forbidden', array['boolean']))
        as f (field, json_types)
    where jsonb_typeof(e -> f.field) <> 'null' and jsonb_typeof(e -> f.field) <> all (f.json_types)
    limit 1;
    if v_detail is not null then
        raise exception 'a snapshot row must carry each field as its JSON type: %', v_detail
            using errcode = 'FS051',
                  hint = 'name and description strings, cost a number, forbidden true or false (or null).';
    end if;

    -- A cost string the cast below refuses failed the load with only the
    -- value ('invalid input syntax for type numeric: ""'), which in an
    -- export of 200,000 rows said nowhere to look (hostile review). Named
    -- here: a plain decimal passes the pattern, anything else is tried.
    select format('fragrance %s has the cost %s, not a number', e ->> 'fragrance_id', e -> 'cost')
    into v_detail
    from jsonb_array_elements(p_rows) as e
    where jsonb_typeof(e -> 'cost') = 'string'
      and case when e ->> 'cost' ~ '^[[:space:]]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[[:space:]]*$' then false
               else not sync_private.is_number(e ->> 'cost') end
    limit 1;
    if v_detail is not null then
        raise exception 'a snapshot row must carry each field as its JSON type: %', v_detail
            using errcode = 'FS051',
                  hint = 'name and description strings, cost a number (or a string of one, as "12.50"), '
                      || 'forbidden true or false (or null). Fix that row of the export and load it again.';
    end if;

    -- Where the snapshot came from is what a DBA reads in sync.drift: a null
    -- failed on the column, with a hint about ids and costs (hostile review).
    if p_source is null then
        raise exception 'a snapshot must say where it came from; p_source is null, and the snapshot loaded before is kept'
            using errcode = 'FS051',
                  hint = 'Name the export, e.g. SELECT sync.load_snapshot(''[...]''::jsonb, ''cms.json'');';
    end if;

    -- An export is taken before it is loaded. Said to be taken later (a
    -- wrong day, a local time read as UTC, 'infinity'), the snapshot made
    -- every hand change between the load and that moment older than itself
    -- (sync.drift judges them by taken_at), and the repair undid them
    -- (hostile review).
    if not isfinite(p_taken_at) then
        raise exception 'a snapshot is taken at a moment, not at %', p_taken_at
            using errcode = 'FS005',
                  hint = 'Give the moment of the export with its time zone (e.g. ''2026-11-23 21:00Z''), '
                      || 'or leave p_taken_at out for an export just taken: '
                      || 'SELECT sync.load_snapshot(''[...]''::jsonb, ''cms.json'');';
    end if;
    -- The clock, not the transaction's start: clock_timestamp() read in
    -- the same statement is a moment of the past by now.
    if p_taken_at > clock_timestamp() then
        raise exception 'a snapshot cannot be taken later than now: p_taken_at is %, now is %', p_taken_at, clock_timestamp()
            using errcode = 'FS051',
                  hint = 'Give the moment of the export with its time zone (e.g. ''2026-11-23 21:00Z''), '
                      || 'or leave p_taken_at out for an export just taken: '
                      || 'SELECT sync.load_snapshot(''[...]''::jsonb, ''cms.json'');';
    end if;

    perform sync_private.replace_snapshot();
    begin
        insert into sync.cms_snapshot
            (fragrance_id, name, description, cost, forbidden, source, taken_at, inbox_position)
        -- fragrance_id as a number first: 7.0 is 7, as the rules take it.
        select r.fragrance_id::integer, r.name, r.description, r.cost, r.forbidden, p_source,
               coalesce(p_taken_at, now()), sync.inbox_position(p_taken_at)
        from jsonb_to_recordset(p_rows)
            as r(fragrance_id numeric, name text, description text, cost numeric, forbidden boolean);
    exception when unique_violation or data_exception or not_null_violation then
        get stacked diagnostics v_detail = message_text;
        raise exception 'the snapshot cannot be loaded: %', v_detail
            using errcode = 'FS051',
                  hint = 'Each fragrance_id once, cost a number, forbidden true or false.';
    end;
    get diagnostics v_count = row_count;
    if p_taken_at is null then
        perform sync_private.warn_undated_snapshot();
    end if;
    return v_count;
end;
$$;
comment on function sync.load_snapshot(jsonb, text, timestamptz) is
    'Replaces sync.cms_snapshot with a JSON array of {fragrance_id, name, description, cost, forbidden}; p_taken_at is when the CMS was exported (default now, with a WARNING naming the fragrances that differ in a field a delivery or hand change set, which the repair undoes if the export is older; an infinite one raises FS005, one later than now FS051). Returns the row count. Usage: psql -v file=cms.json -f sql/load-snapshot-json.sql';

-- sync.load_snapshot_from_server
-- Replaces the snapshot with the CMS catalog read through postgres_fdw, leaving no server or password behind.
create function sync.load_snapshot_from_server(
    p_host text,
    p_port integer,
    p_dbname text,
    p_user text,
    p_password text default null,
    p_schema text default 'public',
    p_table text default 'fragrances'
) returns bigint
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_count bigint;
    v_position bigint;
    v_source text := format('%s:%s/%s', p_host, p_port, p_dbname);
    v_state text;
    v_message text;
    v_detail text;
begin
    if p_host is null or p_port is null or p_dbname is null or p_user is null
        or p_schema is null or p_table is null
    then
        raise exception 'sync.load_snapshot_from_server needs a host, port, database, user, schema and table; got a null'
            using errcode = 'FS005',
                  hint = 'For example SELECT sync.load_snapshot_from_server(''cms-db'', 5432, ''cms'', ''reader'', ''secret'');';
    end if;
    -- postgres_fdw asks no password of a superuser's connections, and this
    -- function connects as its owner: owned by a superuser, it would let its
    -- caller read any database and table this server can reach as that
    -- superuser (hostile review). Only a superuser may call it then; a site
    -- that wants DBAs to call it gives it to an owner that is not one, and
    -- the CMS server then asks for a password.
    if (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = current_user)
        and not (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = session_user)
    then
        raise exception 'sync.load_snapshot_from_server runs as a superuser here, so only a superuser may call it (you are %)', session_user
            using errcode = 'FS054',
                  hint = 'Load an export instead: SELECT sync.load_snapshot(''[...]''::jsonb); or ask a superuser to run it.';
    end if;
    if not exists (select from pg_catalog.pg_extension where extname = 'postgres_fdw') then
        raise exception 'postgres_fdw is not installed in this database'
            using errcode = 'FS052',
                  hint = format('A superuser runs: create extension postgres_fdw schema sync_remote; '
                      'grant usage on foreign data wrapper postgres_fdw to %I; '
                      'or load an export file instead (docs/drift-and-undo.md, "Finding and repairing drift").',
                      (select r.rolname from pg_catalog.pg_proc as p join pg_catalog.pg_roles as r on r.oid = p.proowner
                       where p.oid = 'sync.load_snapshot_from_server(text, integer, text, text, text, text, text)'::regprocedure));
    end if;

    perform sync_private.replace_snapshot();
    -- The server, the password and the foreign table live only inside this
    -- transaction: created, read once, dropped.
    execute 'drop server if exists sync_cms cascade';
    execute format('create server sync_cms foreign data wrapper postgres_fdw options (host %L, port %L, dbname %L)',
        p_host, p_port::text, p_dbname);
    execute format('create user mapping for current_user server sync_cms options (user %L%s)',
        p_user, case when p_password is null then '' else format(', password %L', p_password) end);
    execute format('create foreign table sync_remote.cms_fragrances (fragrance_id integer, name text, '
        'description text, cost numeric, forbidden boolean) server sync_cms '
        'options (schema_name %L, table_name %L)', p_schema, p_table);
    -- The inbox position is read before the CMS database is: the CMS commits
    -- a change and then sends it, so every delivery up to this position is
    -- in what the read sees. Read after it (the column's default, row by
    -- row), a change committed after the CMS's snapshot was taken and
    -- received before the position counted as older than the snapshot, and
    -- the repair put the CMS's old values back (hostile review). Deliveries
    -- after it may be in the snapshot too: in doubt newer, left alone.
    v_position := sync.inbox_position();
    begin
        execute format('insert into sync.cms_snapshot (fragrance_id, name, description, cost, forbidden, source, inbox_position) '
            'select fragrance_id, name, description, cost, forbidden, %L, %s from sync_remote.cms_fragrances',
            v_source, v_position);
    exception when sqlstate 'FS051' then
        -- The CMS database was read: a row of it was refused (a cost of NaN).
        raise;
    when others then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text,
            v_detail = pg_exception_detail;
        raise exception 'could not read %.% from the CMS database at %: % (SQLSTATE %)',
            p_schema, p_table, v_source,
            v_message || coalesce(': ' || nullif(btrim(v_detail), ''), ''), v_state
            using errcode = 'FS053',
                  hint = 'Check host, port, database, login and password, and that this server may connect there.';
    end;
    get diagnostics v_count = row_count;
    if v_count = 0 then
        raise exception 'the CMS table %.% at % holds no fragrance; the snapshot loaded before is kept', p_schema, p_table, v_source
            using errcode = 'FS051',
                  hint = 'Check that this is the CMS database and table, and that its login may read the rows.';
    end if;
    execute 'drop server sync_cms cascade';
    return v_count;
end;
$$;
comment on function sync.load_snapshot_from_server(text, integer, text, text, text, text, text) is
    'Replaces sync.cms_snapshot with the CMS catalog read through postgres_fdw (needs the extension; see sync_remote). Credentials are used for this call only and not stored. Runs as its owner, so it is granted to nobody; where the owner is a superuser only a superuser may call it (FS054). Usage: SELECT sync.load_snapshot_from_server(''cms_database'', 5432, ''cms_database'', ''cms_user'', ''secret'');';
