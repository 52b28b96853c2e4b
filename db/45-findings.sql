-- Findings: the quality of the data at rest.
--
-- The rules of db/10-rules.sql judge deltas as they arrive; here the same
-- field rules (sync_private.check_field) and the table's own rules (names
-- shared by several fragrances) judge public.fragrances itself: the adopted
-- catalog, hand edits, repairs, every write. Each rule a fragrance breaks is
-- a finding in sync.finding, opened when first seen and closed when it is
-- gone, so a DBA asks what is wrong now, since when, and what got fixed. A
-- finding never blocks the smart library and never changes a row.

-- sync_private.name_key
-- A name folded as a reader sees it: Unicode NFKC, then lower case.
create function sync_private.name_key(p_name text) returns text
    language sql
    immutable
    parallel safe
as $$
    -- "CHANEL", "Chanel" and full-width "ＣＨＡＮＥＬ" fold alike: NFKC maps
    -- the compatibility forms (full-width and other widths, ligatures, the
    -- no-break space...) to their plain letters, lower() the case. lower()
    -- follows the collation of its argument, the column's for a stored
    -- name, as every comparison of names does: under a "C" collation it
    -- folds ASCII only. Inlined where it is called, so that queries over
    -- public.fragrances use sync_fragrances_name_key_idx (migration 0036),
    -- whose expression this is, to the letter. An ASCII name is its own
    -- NFKC, and counting its bytes is all it costs: normalize() took 1.3 us
    -- for a name of 25 characters, this 0.4 (measured), and the merge folds
    -- every name it writes or replaces several times.
    select lower(case when octet_length(p_name) = char_length(p_name) then p_name
                      else normalize(p_name, nfkc) end);
$$;
comment on function sync_private.name_key(text) is
    'A name folded as a reader sees it: Unicode NFKC (an ASCII name is its own), then lower case; the expression of the index sync_fragrances_name_key_idx. Names with the same key and other letters are name.lookalike.';

-- sync_private.name_turn_of
-- The turn (row of sync_private.name_turn) of a name: a hash of its folded form.
create function sync_private.name_turn_of(p_name text) returns integer
    language sql
    immutable
    parallel safe
as $$
    -- Of the folded name, so names that fold alike, which judge each
    -- other's name.lookalike, take the same turn (equal names fold alike).
    select hashtext(sync_private.name_key(p_name)) & 1023;
$$;
comment on function sync_private.name_turn_of(text) is
    'The turn of a name in sync_private.name_turn: hashtext of its folded form (sync_private.name_key), 0 to 1023. Writers of names that fold alike take turns.';

-- sync_private.shared_names
-- The fragrances in scope whose name another fragrance has too, as written or folded.
create function sync_private.shared_names(p_scope integer[], p_rules jsonb)
    returns table (rule text, fragrance_id integer, field text, value jsonb, message text, severity text)
    language plpgsql
    stable
    -- Plans: see sync_private.violations.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set enable_nestloop = on
    set enable_bitmapscan = off
    set jit = off
as $$
#variable_conflict use_column
begin
    return query
    -- The smart library's model declares names unique; the catalog repeats them.
    -- One probe of the name index per fragrance in scope, whatever the size of
    -- its group: the sentence names no count, so a fragrance joining or leaving
    -- a group of 500 changes no other member's finding (a count made every
    -- write of a shared name rewrite the whole group's findings: measured 115 ms
    -- per delivery at 460 sharers).
    select 'name.duplicate', l.fragrance_id, 'name', to_jsonb(l.name),
        format('name %s is also the name of another fragrance; the smart library''s model declares names unique',
               to_jsonb(l.name)),
        sync_private.severity(p_rules, 'name.duplicate')
    from public.fragrances as l
    where l.fragrance_id = any (p_scope)
      and sync_private.severity(p_rules, 'name.duplicate') is not null
      and exists (select from public.fragrances as o
                  where o.name = l.name and o.fragrance_id <> l.fragrance_id)
    union all
    -- A name that folds as another fragrance's name folds, written with
    -- other letters (case, width): two probes of the folded-name index,
    -- below and above its own name, each ends at the first entry it finds,
    -- however many fragrances share the exact name. Like name.duplicate's,
    -- the sentence names no other fragrance and no count.
    select 'name.lookalike', l.fragrance_id, 'name', to_jsonb(l.name),
        format('name %s differs from another fragrance''s name only in case, width or another compatibility form (they are the same under Unicode NFKC and lower case); a reader takes them for one name',
               to_jsonb(l.name)),
        sync_private.severity(p_rules, 'name.lookalike')
    from public.fragrances as l
    -- (the name folded once per fragrance, not once per probe)
    cross join lateral (select sync_private.name_key(l.name) as k offset 0) as x
    where l.fragrance_id = any (p_scope)
      and sync_private.severity(p_rules, 'name.lookalike') is not null
      and (exists (select from public.fragrances as o
                   where sync_private.name_key(o.name) = x.k and o.name < l.name)
           or exists (select from public.fragrances as o
                      where sync_private.name_key(o.name) = x.k and o.name > l.name));
end;
$$;
comment on function sync_private.shared_names(integer[], jsonb) is
    'The name.duplicate and name.lookalike findings of the fragrances in p_scope: each whose name another fragrance has too, and each whose name another fragrance''s equals once both are folded (sync_private.name_key) but not as written. The only rules of the catalog that need the table; at most three index probes per fragrance.';

-- sync_private.name_neighbours
-- The other fragrances whose name.duplicate or name.lookalike finding a write of these names may open or close.
create function sync_private.name_neighbours(p_names text[], p_writers integer[]) returns integer[]
    language plpgsql
    stable
    -- Plans: see sync_private.judge.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set jit = off
as $$
    -- A fragrance that did not write holds a name that was shared before the
    -- write and is shared after it as long as two such fragrances hold it:
    -- its finding cannot change. With one such holder or none, the name may
    -- have gone from or to being shared (a writer came or left): that holder
    -- is judged again. The writers are in the caller's scope anyway. So at
    -- most two index entries besides the writers' are read per name, whatever
    -- the size of its group.
    --
    -- name.lookalike, by folded name (sync_private.name_key): a holder's
    -- finding says another name of its folded group is written otherwise.
    -- When the fragrances besides the writers hold two spellings of it,
    -- each of them has one besides the writers, before and after: none can
    -- change. When they hold one spelling, all of them may (the writers
    -- brought or took the other), unless every name written or left in that
    -- group is that spelling too. Two index entries per folded name decide
    -- it; the group is read only when its findings may change.
    --
    -- Most names written are held by their writers alone: one entry of the
    -- folded-name index per folded name says so, and only the names of a
    -- folded name held besides the writers are looked at as above.
begin
    return (select coalesce(array_agg(distinct h.fragrance_id order by h.fragrance_id), '{}')
    from (with folded as materialized (
              select y.k, array_agg(distinct y.n) as names, min(y.n) as least_name, max(y.n) as greatest_name
              from (select n, sync_private.name_key(n) as k
                    from unnest(p_names) as n where n is not null) as y
              group by y.k
          ),
          held as materialized (
              -- A lateral lookup, one by folded name: as "where exists" the
              -- generic plan hashed the whole index against them instead, and
              -- compared each of its entries with every writer (measured).
              select x.*
              from folded as x
              cross join lateral (select from public.fragrances as f
                                  where sync_private.name_key(f.name) = x.k and f.fragrance_id <> all (p_writers)
                                  limit 1) as e
          )
          select h.fragrance_id
          from (select distinct n from held as x cross join unnest(x.names) as n) as x
          cross join lateral (select array_agg(g.fragrance_id) as others
                              from (select o.fragrance_id from public.fragrances as o
                                    where o.name = x.n and o.fragrance_id <> all (p_writers)
                                    limit 2) as g) as g
          cross join lateral unnest(g.others) as h (fragrance_id)
          where cardinality(g.others) = 1
          union all
          select o.fragrance_id
          -- Each name folded once (folded), and per folded name the least
          -- and the greatest name written or left: one spelling when equal.
          -- The group of a spelling is read last, only for the folded names
          -- that pass both tests (offset 0 keeps that order).
          from (select x.k, s.name
                from held as x
                cross join lateral (select f.name from public.fragrances as f
                                    where sync_private.name_key(f.name) = x.k and f.fragrance_id <> all (p_writers)
                                    order by sync_private.name_key(f.name), f.name
                                    limit 1) as s
                left join lateral (select true as found from public.fragrances as f
                                   where sync_private.name_key(f.name) = x.k and f.name > s.name
                                     and f.fragrance_id <> all (p_writers)
                                   limit 1) as m on true
                where (x.least_name, x.greatest_name) is distinct from (s.name, s.name)
                  and m.found is null
                offset 0) as q
          cross join lateral (select o.fragrance_id from public.fragrances as o
                              where sync_private.name_key(o.name) = q.k and o.name = q.name
                                and o.fragrance_id <> all (p_writers)) as o) as h);
end;
$$;
comment on function sync_private.name_neighbours(text[], integer[]) is
    'The fragrances besides p_writers whose name.duplicate or name.lookalike finding a write of p_names (names written, or left) may open or close: for each name, its one other holder when exactly one fragrance besides the writers holds it; for each folded name (sync_private.name_key), its holders besides the writers when they all write it one way and a name written or left writes it otherwise. Reads at most two index entries per name and per folded name besides the writers'', and a folded group only when its findings may change.';

-- sync_private.violations
-- Every rule the fragrances in scope break now.
create function sync_private.violations(p_scope integer[], p_rules jsonb)
    returns table (rule text, fragrance_id integer, field text, value jsonb, message text, severity text)
    language plpgsql
    stable
    -- Plans: every write runs this for its few rows, so they are reached by
    -- key, never by a scan of the table (see sync_private.judge). PL/pgSQL,
    -- not SQL: a SQL function that cannot be inlined is planned again on
    -- every call. Its lookups are nested loops by key, whatever its caller set;
    -- the scope's rows are read by a plain index scan (a check's scope is the
    -- whole catalog: see sync_private.reconcile_findings on bitmaps).
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set enable_nestloop = on
    set enable_bitmapscan = off
    set jit = off
as $$
#variable_conflict use_column
begin
    return query
    -- Each field of each row, by the rules deltas are judged by (only those
    -- that apply to the catalog), in one set-wise statement.
    -- The sentence of a field rule is written when a finding opens or changes
    -- (sync_private.reconcile_findings): most of the catalog's findings stand.
    select b.code, b.fragrance_id, b.field, b.value, null::text, sync_private.severity(p_rules, b.code)
    -- (offset 0 keeps each row's JSON and each value computed once: the rule
    -- expression refers to the value many times.)
    from (select f.fragrance_id, c.field, c.value, sync_private.broken_rule(c.field, c.value, p_rules) as code
          from (select l.fragrance_id, to_jsonb(l) as fields
                from public.fragrances as l
                where l.fragrance_id = any (p_scope)
                offset 0) as f
          cross join lateral (select k as field, f.fields -> k as value
                              from unnest(sync_private.fields()) as k
                              offset 0) as c
          offset 0) as b
    where b.code is not null
      and sync_private.severity(p_rules, b.code) is not null
      and p_rules #>> array[b.code, 'applies_to'] in ('catalog', 'both')
    union all
    select * from sync_private.shared_names(p_scope, p_rules);
end;
$$;
comment on function sync_private.violations(integer[], jsonb) is
    'The rules (of p_rules, those that apply to the catalog) that the fragrances in p_scope break now, one row per rule and fragrance: the field rules deltas share (sync_private.broken_rule), name.duplicate and name.lookalike (sync_private.shared_names). sync_private.reconcile_findings gives the whole catalog as a scope of every id. message is null for a field rule (sync_private.rule_message writes it when a finding opens).';

-- sync_private.reconcile_findings
-- Opens findings for what the scope breaks now and closes those it no longer breaks.
create function sync_private.reconcile_findings(
    p_scope integer[],
    p_closed_by text,
    p_only text[] default null,
    p_rules jsonb default null,
    p_version bigint default null,
    out opened bigint,
    out closed bigint,
    out open bigint
)
    language plpgsql
    -- Plans: one generic plan, kept for the session (see sync_private.judge),
    -- whether the scope is a few written rows or the whole catalog: every
    -- statement reads sync.finding by the scope's ids (lateral lookups, which
    -- only a nested loop can run), and the join between what is found and what
    -- stands is hashed: a nested loop there, planned on estimates that know
    -- nothing of the scope's size, took 1.1 s for 5,000 rows and would not end
    -- on a million (measured). sync_private.shared_names and violations set
    -- their own nested loops back on. Rows named by an array of ids
    -- (key = any (...)) are read by a plain index scan, never a bitmap: past
    -- work_mem a bitmap keeps whole pages, and each of their rows is then
    -- compared with every id of the array, which made a nightly check of a
    -- million fragrances run for hours instead of a minute (measured).
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set enable_nestloop = off
    set enable_hashjoin = on
    set enable_mergejoin = on
    set enable_bitmapscan = off
    set jit = off
as $$
declare
    v_rules record;
    v_judged jsonb;
    v_scope integer[] := p_scope;
begin
    -- The rules in force, unless the caller (a merge) read them already.
    if p_rules is null then
        v_rules := sync_private.current_rules();
    else
        select p_version as version, p_rules as rules into v_rules;
    end if;
    if p_scope is null then
        -- The whole catalog, and whatever still has an open finding (a
        -- fragrance deleted meanwhile).
        v_scope := array(select l.fragrance_id from public.fragrances as l
                         union
                         select f.fragrance_id from sync.finding as f where f.closed_at is null);
    end if;
    -- p_only: judge only these rules (the others are as off), and close only their findings.
    -- The shared-name rules alone (every merge that writes a name) read only
    -- their own entries, so the rules are not rebuilt for them.
    v_judged := case when p_only is null or p_only = array['name.duplicate', 'name.lookalike'] then v_rules.rules
                     else (select jsonb_object_agg(r.key, case when r.key = any (p_only) then r.value
                                                               else r.value || '{"severity": "off"}' end)
                           from jsonb_each(v_rules.rules) as r) end;
    -- A write of names (every merge that writes one, every hand write of
    -- one): most names are held by their writer alone, and most writers
    -- hold no name finding. Then nothing is found and nothing stands, so
    -- nothing opens, changes or closes: two reads by key say so, and the
    -- statement below, which every merge of a name ran (about half of what
    -- the hook's merges spent on findings, bench/README.md step 33), does
    -- not run.
    -- What stands is asked first: where a name finding stands (a name
    -- shared, once judged so), the statement runs after one probe per
    -- fragrance (207 against 197 us for a scope of 4, where 52 against 157
    -- for names held alone, measured); asked second, the shared names
    -- were judged twice there (263 to 310 us).
    if p_only = array['name.duplicate', 'name.lookalike']
        and not exists (select from unnest(v_scope) as s (fragrance_id)
                        cross join lateral (select from sync.finding as f
                                            where f.closed_at is null and f.fragrance_id = s.fragrance_id
                                              and f.rule = any (p_only)
                                            offset 0) as o)
        and not exists (select from sync_private.shared_names(v_scope, v_judged))
    then
        opened := 0;
        closed := 0;
        open := 0;
        return;
    end if;
    with found as materialized (
        -- A write of names needs only the shared-name rules: the field rules are not computed.
        select * from sync_private.violations(v_scope, v_judged)
        where p_only is distinct from array['name.duplicate', 'name.lookalike']
        union all
        select * from sync_private.shared_names(v_scope, v_judged)
        where p_only = array['name.duplicate', 'name.lookalike']
    ),
    standing as materialized (
        -- The open findings in scope, looked up by key for each fragrance in
        -- it: a plan made while sync.finding was young must not read them all
        -- (a filter on the scope's ids over a whole index did, measured).
        select o.*
        from unnest(v_scope) as s (fragrance_id)
        cross join lateral (select f.id, f.rule, f.fragrance_id, f.value, f.message, f.severity
                            from sync.finding as f
                            where f.closed_at is null and f.fragrance_id = s.fragrance_id
                              and (p_only is null or f.rule = any (p_only))
                            offset 0) as o
    ),
    gone as (
        -- NOT IN over what was found is one hashed subplan, linear in both sides;
        -- an anti join against the CTE may be planned as a nested loop
        -- (quadratic: the whole catalog took 1.6 s at 20,000 rows).
        update sync.finding as f
        set closed_at = now(), closed_by = p_closed_by
        where f.id = any (array(select o.id from standing as o
                                where (o.rule, o.fragrance_id) not in (select v.rule, v.fragrance_id from found as v)))
        returning 1
    ),
    differs as materialized (
        -- The standing findings that now read differently: usually none (a
        -- nightly check), all of them after a change of the rules.
        select o.id, v.value, v.severity,
            coalesce(v.message, sync_private.rule_message(v.rule, v.field, v.value, v_rules.rules)) as message
        from standing as o
        join found as v on v.rule = o.rule and v.fragrance_id = o.fragrance_id
        where (o.value, o.severity) is distinct from (v.value, v.severity)
           or o.message is distinct from coalesce(v.message, o.message)
           -- A rule with a limit names it in its sentence ("the limit is 150"):
           -- after the limit changes, the same value and severity read
           -- differently, as the merge writes them (a finding that kept the
           -- old limit stood until a delivery rewrote it). Only these
           -- findings' sentences are written again to compare; the others'
           -- depend on their value alone.
           or (v.message is null
               and v_rules.rules #>> array[v.rule, 'parameter'] is not null
               and o.message is distinct from sync_private.rule_message(v.rule, v.field, v.value, v_rules.rules))
    ),
    changed as (
        update sync.finding as f
        set value = c.value, severity = c.severity, rules_version = v_rules.version, message = c.message
        from differs as c
        where f.id = c.id
          and f.id = any (array(select d.id from differs as d))  -- by key, whatever the join
    ),
    new as (
        insert into sync.finding (rule, fragrance_id, field, value, message, severity, rules_version)
        select v.rule, v.fragrance_id, v.field, v.value,
            coalesce(v.message, sync_private.rule_message(v.rule, v.field, v.value, v_rules.rules)),
            v.severity, v_rules.version
        from found as v
        -- Looked up by key, once per finding found: an anti join planned while
        -- sync.finding was young read every open finding instead (measured).
        left join lateral (select true as hit from sync.finding as f
                           where f.closed_at is null and f.rule = v.rule and f.fragrance_id = v.fragrance_id
                           offset 0) as h on true
        where h.hit is null
        order by v.fragrance_id, v.rule
        on conflict (rule, fragrance_id) where closed_at is null do nothing
        returning 1
    )
    select (select count(*) from new), (select count(*) from gone), (select count(*) from found)
    into opened, closed, open;
end;
$$;
comment on function sync_private.reconcile_findings(integer[], text, text[], jsonb, bigint) is
    'Brings sync.finding in line with what the fragrances in p_scope (all when null) break now under the rules in force, or p_rules of version p_version when a merge read them already (only the rules p_only, when given): opens what is new, records a changed value or severity, closes what is gone with p_closed_by. Returns how many opened, closed, and are open in the scope.';

-- sync.open_finding: what is wrong with the catalog now.
create view sync.open_finding as
select f.id, f.rule, f.severity, f.fragrance_id, f.field, f.value, f.message, f.first_seen_at, f.rules_version,
    -- Read now, not stored: a sentence that named the others made a write of
    -- a shared name rewrite the findings of its whole group (see
    -- sync_private.shared_names). Computed only when a query selects it.
    case f.rule
        when 'name.duplicate' then array(
            select o.fragrance_id from public.fragrances as l
            join public.fragrances as o on o.name = l.name and o.fragrance_id <> l.fragrance_id
            where l.fragrance_id = f.fragrance_id
            order by o.fragrance_id)
        when 'name.lookalike' then array(
            select o.fragrance_id from public.fragrances as l
            -- sync_private.name_key's expression, written out: a view's
            -- reader calls its functions, and sync_private is granted to nobody.
            join public.fragrances as o
                on lower(case when octet_length(o.name::text) = char_length(o.name::text) then o.name::text
                              else normalize(o.name::text, nfkc) end)
                 = lower(case when octet_length(l.name::text) = char_length(l.name::text) then l.name::text
                              else normalize(l.name::text, nfkc) end)
               and o.name <> l.name
            where l.fragrance_id = f.fragrance_id
            order by o.fragrance_id)
    end as shared_with
from sync.finding as f
where f.closed_at is null
-- Errors first: the real catalog holds thousands of warnings (padded
-- descriptions, shared names), and in order of rule alone an error such as
-- name.null came after all of them.
order by f.severity, f.rule, f.fragrance_id;
comment on view sync.open_finding is
    'Open findings: each rule a fragrance breaks now, since when; errors first, then by rule and fragrance; for a shared or lookalike name, the other fragrances (shared_with). Usage: SELECT fragrance_id, value, shared_with FROM sync.open_finding WHERE rule = ''name.duplicate''; what got fixed: SELECT * FROM sync.finding WHERE closed_at > now() - interval ''7 days'';';
comment on column sync.open_finding.id is 'The finding (sync.finding.id).';
comment on column sync.open_finding.rule is 'The rule broken (sync.rule.code).';
comment on column sync.open_finding.severity is 'error or warning.';
comment on column sync.open_finding.fragrance_id is 'The fragrance that breaks it.';
comment on column sync.open_finding.field is 'The field at fault.';
comment on column sync.open_finding.value is 'The value at fault, as JSON.';
comment on column sync.open_finding.message is 'What is wrong, in a sentence.';
comment on column sync.open_finding.first_seen_at is 'Since when.';
comment on column sync.open_finding.rules_version is 'The rules version that judged it.';
comment on column sync.open_finding.shared_with is
    'For name.duplicate: the other fragrances that hold this name now; for name.lookalike: those whose name folds alike but is written otherwise (ids in order; read when selected). Null for every other rule.';

-- sync.check_catalog
-- Checks the whole catalog against the rules in force and records the findings; counts by rule.
create function sync.check_catalog()
    returns table (rule text, severity text, fragrances bigint, opened bigint, closed bigint,
                   example_fragrance_id integer, example text)
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    -- The sets it compares are the size of the catalog: past the default
    -- 4 MB they went to disk (13,617 temporary blocks at 200,000 fragrances).
    set work_mem = '64MB'
as $$
declare
    v_label constant text := format('sync.check_catalog by %s', session_user);
    v_watermark bigint;
    v_rules record;
    v_ids integer[];
    v_rows tid[];
    v_names text[];
    v_differ integer[];
    v_scope integer[];
    v_closed_before jsonb;
begin
    -- Writes keep their rows' findings up to date as they happen; this check
    -- covers what they cannot (the adopted catalog, a change of the rules).
    -- It holds the findings while it reconciles them, so a write waits
    -- rather than racing it, and every merge writes findings. Judging the
    -- whole catalog under that lock stalled every merge for the whole check
    -- (4.7 s at 200,000 fragrances, 49 to 91 s at 1,000,000, measured). So
    -- the catalog is judged first, holding nothing a merge needs, and
    -- compared with the findings that stand; under the lock, only the
    -- fragrances whose findings differ, and those written since, are
    -- reconciled the way a write reconciles its rows.
    v_rules := sync_private.current_rules();
    -- One statement, so one snapshot: where each row stood (its version,
    -- ctid, and name), what it breaks, and what stands.
    with l as materialized (
        select c.fragrance_id, c.ctid, c.name from public.fragrances as c
    ),
    found as materialized (
        select v.* from sync_private.violations(array(select l.fragrance_id from l), v_rules.rules) as v
    ),
    standing as materialized (
        select f.rule, f.fragrance_id, f.value, f.severity, f.message
        from sync.finding as f where f.closed_at is null
    )
    select array(
               -- A finding to open, to close, or that reads differently; a
               -- rule whose sentence names its limit is always looked at again
               -- (sync_private.reconcile_findings compares those sentences).
               select distinct coalesce(v.fragrance_id, o.fragrance_id)
               from found as v
               full join standing as o on o.rule = v.rule and o.fragrance_id = v.fragrance_id
               where v.rule is null or o.rule is null
                  or (v.value, v.severity) is distinct from (o.value, o.severity)
                  or (v.message is not null and v.message is distinct from o.message)
                  or v_rules.rules #>> array[v.rule, 'parameter'] is not null),
           array(select l.fragrance_id from l order by l.fragrance_id),
           array(select l.ctid from l order by l.fragrance_id),
           array(select l.name from l order by l.fragrance_id)
    into v_differ, v_ids, v_rows, v_names;

    lock table sync.finding in exclusive mode;
    v_watermark := coalesce((select max(f.id) from sync.finding as f), 0);
    -- What this check closes is counted by its label and moment, now(): an
    -- earlier check in the same transaction has both, and a second check
    -- reported the first one's closures again. Those are counted first, by
    -- finding_closed_at_idx, and taken off.
    select coalesce(jsonb_object_agg(c.rule, c.closed), '{}') into v_closed_before
    from (select f.rule, count(*) as closed from sync.finding as f
          where f.closed_at = now() and f.closed_by = v_label
          group by f.rule) as c;
    if (sync_private.current_rules()).version is distinct from v_rules.version then
        -- The rules changed meanwhile: the whole catalog, holding the findings.
        perform sync_private.reconcile_findings(null, v_label);
    else
        -- Every writer of a fragrance writes its findings in the same
        -- transaction, so those before the lock have committed. Looked at
        -- again: the rows written since they were judged (another version,
        -- gone, or new), and every holder of a name one of them left or took
        -- (whether a name is shared is the one rule that reads other rows).
        with moved as materialized (
            select coalesce(n.fragrance_id, o.fragrance_id) as fragrance_id, o.name as old_name, n.name
            from unnest(v_ids, v_rows, v_names) as o (fragrance_id, row_version, name)
            full join (select c.fragrance_id, c.ctid as row_version, c.name from public.fragrances as c) as n
                on n.fragrance_id = o.fragrance_id
            where n.row_version is distinct from o.row_version
        )
        select array(select unnest(v_differ)
                     union
                     select m.fragrance_id from moved as m
                     union
                     -- (by folded name: equal names fold alike, and
                     -- name.lookalike is judged by the folded group)
                     select h.fragrance_id
                     from public.fragrances as h
                     where sync_private.name_key(h.name)
                           = any (array(select sync_private.name_key(m.old_name) from moved as m where m.old_name is not null
                                        union
                                        select sync_private.name_key(m.name) from moved as m where m.name is not null)))
        into v_scope;
        if cardinality(v_scope) > 0 then
            perform sync_private.reconcile_findings(v_scope, v_label, null, v_rules.rules, v_rules.version);
        end if;
    end if;
    -- Per rule: its open findings counted from their index alone
    -- (finding_open_rule_idx), what this check opened by id, what it closed by
    -- the moment it closed them, and the example read by key. The closed
    -- findings it did not close are never read (the purge keeps months of
    -- them; joined whole, they were 370 of the 5,300 ms at 500,000).
    return query
    select r.code, r.severity, coalesce(o.fragrances, 0), coalesce(n.opened, 0), coalesce(c.closed, 0),
        o.example_id, e.message
    from sync.rule as r
    left join (select f.rule, count(*) as fragrances, min(f.fragrance_id) as example_id
               from sync.finding as f where f.closed_at is null and f.severity is not null
               group by f.rule) as o on o.rule = r.code
    left join (select f.rule, count(*) as opened
               from sync.finding as f where f.id > v_watermark
               group by f.rule) as n on n.rule = r.code
    left join (select f.rule, count(*) - coalesce((v_closed_before ->> f.rule)::bigint, 0) as closed
               from sync.finding as f where f.closed_at = now() and f.closed_by = v_label
               group by f.rule) as c on c.rule = r.code
    left join lateral (select x.message from sync.finding as x
                       where x.closed_at is null and x.fragrance_id = o.example_id and x.rule = r.code) as e on true
    where r.applies_to in ('catalog', 'both')
      and coalesce(o.fragrances, 0) + coalesce(n.opened, 0) + coalesce(c.closed, 0) > 0
    order by 3 desc, r.code;
end;
$$;
comment on function sync.check_catalog() is
    'Checks every fragrance against the data rules in force (the field rules deltas share, name.duplicate and name.lookalike), opens findings for what is new, closes those that are gone, and returns per rule: fragrances breaking it now, opened and closed by this check, and an example. Never changes a fragrance. Usage: SELECT * FROM sync.check_catalog();';

-- sync_private.lock_names
-- Takes turns with other writers of the same names, for their name.duplicate findings.
create function sync_private.lock_names(p_names text[]) returns void
    language plpgsql
as $$
begin
    -- The turns are rows of sync_private.name_turn, locked until commit.
    -- Not advisory locks: any login may take any advisory lock, and read
    -- its key in pg_locks, so a reader could stall every merge that writes
    -- a name; nobody but the owner's code can lock these rows. A row lock
    -- lives in its row, not in the server's lock table, which one lock per
    -- name filled (sync.apply_pending(100000) on the bench's backlog, and one
    -- UPDATE of 20,000 names, failed with "out of shared memory", measured);
    -- there are 1,024 rows, so a writer of many names locks at most as many.
    -- Never the table itself: a writer of more than 64 names once did, and
    -- a transaction left open after it (a DBA's bulk rename, a session of
    -- the hook's login) held back every merge of a name, of any fragrance,
    -- where a held row holds back only the names of its turn, which the
    -- hook's merger passes over (sync_private.take_turns; hostile review).
    -- Rows are locked in the order of their turn, so two calls never wait
    -- for each other in a circle. (Two transactions that each write names in
    -- several statements can, as with any locks taken in turn: PostgreSQL
    -- then cancels one, and the merge leaves its deliveries pending with
    -- internal.retryable.)
    perform from sync_private.name_turn as t
    where t.turn = any (array(select distinct sync_private.name_turn_of(n) from unnest(p_names) as n where n is not null))
    order by t.turn
    for update;
end;
$$;
comment on function sync_private.lock_names(text[]) is
    'Makes two transactions judging name.duplicate and name.lookalike for one name, or two names that fold alike, take turns: locks the rows of sync_private.name_turn for the names (sync_private.name_turn_of), in turn order, until commit; never the table, so a transaction left open holds back only the names of its turns. Not advisory locks, which any login can take.';

-- sync_private.take_turns
-- The name turns a merge can have now: waits as long as a merge holds them, then takes those free.
create function sync_private.take_turns(p_turns integer[]) returns integer[]
    language plpgsql
as $$
declare
    v_lock_timeout text := current_setting('lock_timeout');
    v_taken integer[];
begin
    -- As sync_private.lock_fragrances does for rows: a turn another merge
    -- holds is free within milliseconds, one held longer than any merge
    -- holds it (a transaction left open after writing names) is passed
    -- over, and the caller keeps the deliveries that need it pending.
    begin
        perform set_config('lock_timeout', '2s', true);
        v_taken := array(select t.turn from sync_private.name_turn as t
                         where t.turn = any (p_turns) order by t.turn for update);
        perform set_config('lock_timeout', v_lock_timeout, true);
        return v_taken;
    exception when lock_not_available then
        -- (The rollback of this block gave back the locks and the timeout.)
    end;
    return array(select t.turn from sync_private.name_turn as t
                 where t.turn = any (p_turns) order by t.turn for update skip locked);
end;
$$;
comment on function sync_private.take_turns(integer[]) is
    'Locks the rows of sync_private.name_turn of the given turns until commit, waiting up to 2 s (longer than a merge holds a turn), then taking only those free, and returns the turns taken. The hook''s merger (sync_private.process with p_skip_held) leaves pending the deliveries whose names need a turn not taken.';

-- sync_private.record_merge_findings
-- The findings of the merge's own writes, from the reasons its judge already gave.
create function sync_private.record_merge_findings(
    p_outcomes sync_private.outcome[],
    p_old_names text[],
    p_rules jsonb,
    p_version bigint
)
    returns void
    language plpgsql
    -- Plans: see sync_private.judge. sync.finding starts empty and grows
    -- without bound, so a plan made on a young table must not scan it: each
    -- written field reaches its findings through a lateral aggregate (which
    -- can only run once per field, by index), and the statements that change
    -- findings name them by id. A join left to the planner was made, on a
    -- new database, into a scan of every open finding per written field:
    -- 33 ms per batch of 8 after 500 batches (measured). Joins between
    -- sets are hashed: a nested loop, chosen on estimates that know nothing
    -- of the batch's size, matched each changed finding against every
    -- written field (1,000 by 2,700 per batch: 166 ms, measured); the
    -- lateral lookups stay nested loops, the only way to run them.
    set plan_cache_mode = force_generic_plan
    set enable_seqscan = off
    set enable_nestloop = off
    set enable_hashjoin = on
    set jit = off
as $$
declare
    v_label constant text := format('a delivery by %s', session_user);
    v_names text[];
    v_writers integer[];
begin
    -- Every field a delivery wrote was judged by the rules the catalog is
    -- judged by: its reason for that field (a warning: an error would have
    -- refused the delta) is the finding, and no reason closes the field's
    -- findings. Only the last writer of a field in the batch counts.
    with written as (
        select distinct on (o.fragrance_id, f.field)
            o.fragrance_id, f.field, o.payload -> f.field as value,
            (select r from jsonb_array_elements(o.reasons) as r
             where r ->> 'field' = f.field and r ->> 'severity' in ('error', 'warning')
               and p_rules #>> array[r ->> 'code', 'applies_to'] in ('catalog', 'both')
             limit 1) as reason
        from unnest(p_outcomes) as o
        cross join unnest(o.applied_fields) as f (field)
        where o.status = 'applied'
        order by o.fragrance_id, f.field, o.inbox_id desc
    ),
    standing as materialized (
        -- Per written field: its open findings of other rules (to close), and
        -- the one of its reason's rule, if open, with whether it now reads differently.
        select w.*, s.other_ids, s.same_id, s.same_differs
        from written as w
        cross join lateral (
            select array_agg(f.id) filter (where f.rule is distinct from w.reason ->> 'code') as other_ids,
                   max(f.id) filter (where f.rule = w.reason ->> 'code') as same_id,
                   bool_or((f.value, f.message, f.severity)
                           is distinct from (w.value, w.reason ->> 'message', w.reason ->> 'severity'))
                       filter (where f.rule = w.reason ->> 'code') as same_differs
            from sync.finding as f
            where f.closed_at is null and f.fragrance_id = w.fragrance_id and f.field = w.field
              and f.rule <> all ('{name.duplicate,name.lookalike}')) as s
    ),
    gone as (
        update sync.finding as fi
        set closed_at = now(), closed_by = v_label
        where fi.id = any (array(select unnest(s.other_ids) from standing as s))
    ),
    changed as (
        update sync.finding as fi
        set value = s.value, message = s.reason ->> 'message', severity = s.reason ->> 'severity',
            rules_version = p_version
        from standing as s
        where fi.id = s.same_id and s.same_differs
          and fi.id = any (array(select c.same_id from standing as c where c.same_differs))  -- by key
    )
    insert into sync.finding (rule, fragrance_id, field, value, message, severity, rules_version)
    select s.reason ->> 'code', s.fragrance_id, s.field, s.value, s.reason ->> 'message',
        s.reason ->> 'severity', p_version
    from standing as s
    where s.reason is not null and s.same_id is null
    order by s.fragrance_id
    on conflict (rule, fragrance_id) where closed_at is null do nothing;

    -- A name written, or left: the writers are judged again for
    -- name.duplicate and name.lookalike, and so are the other holders of a
    -- name that went from or to being shared, as written or folded
    -- (sync_private.name_neighbours).
    v_names := p_old_names || array(
        select o.payload ->> 'name' from unnest(p_outcomes) as o
        where o.status = 'applied' and 'name' = any (o.applied_fields));
    if cardinality(v_names) > 0 then
        perform sync_private.lock_names(v_names);
        v_writers := array(select o.fragrance_id from unnest(p_outcomes) as o
                           where o.status = 'applied' and 'name' = any (o.applied_fields));
        perform sync_private.reconcile_findings(
            array(select unnest(v_writers)
                  union select unnest(sync_private.name_neighbours(v_names, v_writers))),
            v_label, array['name.duplicate', 'name.lookalike'], p_rules, p_version);
    end if;
end;
$$;
comment on function sync_private.record_merge_findings(sync_private.outcome[], text[], jsonb, bigint) is
    'Keeps sync.finding up to date for what sync_private.write wrote, without judging the rows again: the reason the judge gave each written field opens or updates its finding, no reason closes the field''s findings; the writers of names are judged again for name.duplicate, with the other holder of a name written or left (p_old_names) that may have gone from or to being shared (sync_private.name_neighbours).';

-- sync_private.check_written_rows
-- Trigger: the findings of the rows a statement wrote, in the same transaction.
create function sync_private.check_written_rows() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_ids integer[];
    v_names text[];
    v_namers integer[];
    v_scope integer[];
begin
    -- The merge keeps the findings of its own writes (sync_private.record_merge_findings).
    if exists (select from sync_private.merging as m where m.xid = pg_current_xact_id()) then
        return null;
    end if;
    -- The rows written, and those whose name the statement wrote or left:
    -- every row an INSERT or a DELETE writes; of an UPDATE, only the rows
    -- whose name changed (an id that changed counts as a row going and one
    -- coming). A statement that leaves names as they are (a cost, a
    -- description) takes no name's turn: it took the turns of every row it
    -- wrote, so a DBA's open transaction that changed costs held back the
    -- merge of other fragrances' names (hostile review).
    if tg_op = 'INSERT' then
        select array_agg(n.fragrance_id), array_agg(distinct n.name) into v_ids, v_names from new_rows as n;
        v_namers := v_ids;
    elsif tg_op = 'DELETE' then
        select array_agg(o.fragrance_id), array_agg(distinct o.name) into v_ids, v_names from old_rows as o;
        v_namers := v_ids;
    else
        select array_agg(x.fragrance_id) into v_ids
        from (select n.fragrance_id from new_rows as n
              union all
              select o.fragrance_id from old_rows as o) as x;
        select coalesce(array_agg(x.fragrance_id), '{}'), array_agg(distinct x.name) into v_namers, v_names
        from (select coalesce(n.fragrance_id, o.fragrance_id) as fragrance_id, n.name as new_name, o.name as old_name
              from new_rows as n
              full join old_rows as o on o.fragrance_id = n.fragrance_id
              where n.name is distinct from o.name
                 or n.fragrance_id is null or o.fragrance_id is null) as c
        cross join lateral (values (c.fragrance_id, c.new_name), (c.fragrance_id, c.old_name)) as x (fragrance_id, name);
    end if;
    if v_ids is null then
        return null;
    end if;
    -- The other holders of a name the statement wrote or left, where it went
    -- from or to being shared: their name.duplicate findings open or close
    -- with it (sync_private.name_neighbours). Two writers of one name take
    -- turns (their rows are already locked by the write itself).
    v_scope := v_ids;
    if v_names is not null then
        perform sync_private.lock_names(v_names);
        v_scope := array(select unnest(v_ids) union select unnest(sync_private.name_neighbours(v_names, v_namers)));
    end if;
    perform sync_private.reconcile_findings(v_scope, format('a write by %s', session_user));
    return null;
end;
$$;
comment on function sync_private.check_written_rows() is
    'Trigger function (AFTER INSERT, UPDATE, DELETE on public.fragrances, per statement): opens the findings the written rows break and closes those they fixed, in the writing transaction, for rows written by anyone but the merge (a DBA, another application; the merge records its own, sync_private.record_merge_findings). The other holder of a written (or left) name that may have gone from or to being shared is judged again for name.duplicate (sync_private.name_neighbours); only names the statement wrote or left take their turn (sync_private.lock_names), so an UPDATE that changes no name (a cost, a description) holds back no merge of a name.';

create trigger _950_check_insert
    after insert on public.fragrances
    referencing new table as new_rows
    for each statement execute function sync_private.check_written_rows();
comment on trigger _950_check_insert on public.fragrances is
    'Fragrance sync: opens findings for inserted rows that break a data rule (sync.finding).';
create trigger _950_check_update
    after update on public.fragrances
    referencing old table as old_rows new table as new_rows
    for each statement execute function sync_private.check_written_rows();
comment on trigger _950_check_update on public.fragrances is
    'Fragrance sync: opens findings for changed rows that now break a data rule, closes those they fixed (sync.finding).';
create trigger _950_check_delete
    after delete on public.fragrances
    referencing old table as old_rows
    for each statement execute function sync_private.check_written_rows();
comment on trigger _950_check_delete on public.fragrances is
    'Fragrance sync: closes the findings of deleted rows, and judges again the names they shared (sync.finding).';
