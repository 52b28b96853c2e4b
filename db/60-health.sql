-- Health: is the sync in sync? Silence judged against the CMS's cadence, one
-- verdict row, and the data behind the hook's /metrics and /status.
--
-- The CMS sends one change every 20 to 25 seconds and fails without a word
-- (a change its own database refuses stops it for good; a restart forgets our
-- listener), so only silence tells. Thresholds live in sync.settings; why
-- these defaults: docs/decisions/0006-health-by-cadence.md.

-- sync_private.say_interval
-- Renders an interval for people: '18 s', '3 min 5 s', '2 min', '2 h 10 min', '3 d 4 h'.
create function sync_private.say_interval(p_interval interval) returns text
    language sql
    immutable
    parallel safe
as $$
    select case
        when s is null then 'never'
        when s >= 86400 then format('%s d', floor(s / 86400)) || coalesce(' ' || nullif(floor(mod(s, 86400) / 3600), 0) || ' h', '')
        when s >= 3600 then format('%s h', floor(s / 3600)) || coalesce(' ' || nullif(floor(mod(s, 3600) / 60), 0) || ' min', '')
        when s >= 60 then format('%s min', floor(s / 60)) || coalesce(' ' || nullif(floor(mod(s, 60)), 0) || ' s', '')
        else format('%s s', floor(greatest(s, 0)))
    end
    from (select extract(epoch from p_interval) as s) as x;
$$;
comment on function sync_private.say_interval(interval) is
    'An interval in words for verdict reasons and the status page, to the second.';

-- sync_private.longest_gap
-- The longest a cron schedule can leave between two runs, judged by which fields it restricts.
create function sync_private.longest_gap(p_schedule text) returns interval
    language sql
    immutable
    parallel safe
as $$
    -- Fields: minute hour day-of-month month day-of-week. Rough on purpose,
    -- and never too short: a schedule that names days of the month waits up
    -- to 31 days, one that names weekdays 7, one that names months a year.
    select case
        when f[4] <> '*' then interval '366 days'
        when f[3] <> '*' then interval '31 days'
        when f[5] <> '*' then interval '7 days'
        else interval '1 day'
    end
    from (select regexp_split_to_array(btrim(p_schedule), E'\\s+') as f) as x;
$$;
comment on function sync_private.longest_gap(text) is
    'The longest gap between two runs a cron schedule (minute hour day month weekday) can leave, roughly and never too short: 1 day, 7 days when it names weekdays, 31 when it names days of the month, 366 when it names months. sync.health_at warns a day after it.';

-- sync.health_report: the one-row answer of sync.health.
create type sync.health_report as (
    checked_at timestamptz,
    verdict text,
    reason text,
    last_received_at timestamptz,
    last_received_age interval,
    typical_interval interval,
    deliveries_last_hour bigint,
    deliveries_last_day bigint,
    applied_last_day bigint,
    ignored_last_day bigint,
    rejected_last_day bigint,
    pending bigint,
    oldest_pending_age interval,
    quarantined bigint,
    rejects_by_code_last_day jsonb,
    unknown_fields jsonb,
    open_findings jsonb,
    drift_checked_at timestamptz,
    drift_differences bigint,
    snapshot_taken_at timestamptz
);
comment on type sync.health_report is
    'Sync health at one moment: verdict (ok, warn, critical) and reason, the last delivery and its age, traffic in the last hour and day, the backlog, rejects by code and unknown CMS fields. The columns of sync.health.';
comment on column sync.health_report.checked_at is 'As sync.health.checked_at, at the moment judged.';
comment on column sync.health_report.verdict is 'As sync.health.verdict, at the moment judged.';
comment on column sync.health_report.reason is 'As sync.health.reason, at the moment judged.';
comment on column sync.health_report.last_received_at is 'As sync.health.last_received_at, at the moment judged.';
comment on column sync.health_report.last_received_age is 'As sync.health.last_received_age, at the moment judged.';
comment on column sync.health_report.typical_interval is 'As sync.health.typical_interval, at the moment judged.';
comment on column sync.health_report.deliveries_last_hour is 'As sync.health.deliveries_last_hour, at the moment judged.';
comment on column sync.health_report.deliveries_last_day is 'As sync.health.deliveries_last_day, at the moment judged.';
comment on column sync.health_report.applied_last_day is 'As sync.health.applied_last_day, at the moment judged.';
comment on column sync.health_report.ignored_last_day is 'As sync.health.ignored_last_day, at the moment judged.';
comment on column sync.health_report.rejected_last_day is 'As sync.health.rejected_last_day, at the moment judged.';
comment on column sync.health_report.pending is 'As sync.health.pending, at the moment judged.';
comment on column sync.health_report.oldest_pending_age is 'As sync.health.oldest_pending_age, at the moment judged.';
comment on column sync.health_report.quarantined is 'As sync.health.quarantined, at the moment judged.';
comment on column sync.health_report.rejects_by_code_last_day is 'As sync.health.rejects_by_code_last_day, at the moment judged.';
comment on column sync.health_report.unknown_fields is 'As sync.health.unknown_fields, at the moment judged.';
comment on column sync.health_report.open_findings is 'As sync.health.open_findings, at the moment judged.';
comment on column sync.health_report.drift_checked_at is 'As sync.health.drift_checked_at, at the moment judged.';
comment on column sync.health_report.drift_differences is 'As sync.health.drift_differences, at the moment judged.';
comment on column sync.health_report.snapshot_taken_at is 'As sync.health.snapshot_taken_at, at the moment judged.';

-- sync_private.unknown_fields_since
-- The unknown CMS fields of the deliveries received in a window, as sync.unknown_field counts them.
create function sync_private.unknown_fields_since(p_since timestamptz, p_until timestamptz)
    returns table (field text, deliveries bigint, first_seen timestamptz, last_seen timestamptz,
                   latest_inbox_id bigint)
    language plpgsql
    stable
    -- Planned at every call, on the inbox as it is then (see sync.health_at),
    -- and never by a scan of it: planned on statistics that say the inbox is
    -- empty, a scan looks free (tests/test_health.py).
    set plan_cache_mode = force_custom_plan
    set enable_seqscan = off
as $$
declare
    v_first bigint;
begin
    -- Read from the first delivery of the window on, by the index of those
    -- that carry an unknown field: the time bound alone left the planner free
    -- to read every such delivery ever kept. The window's rows are found by
    -- their receipt time (min(id) alone walked the ids from the first one
    -- ever kept); a spooled delivery keeps an older receipt time than its id
    -- says, so the time is checked again below.
    select min(w.id) into v_first
    from (select i.id from sync.inbox as i
          where i.received_at > p_since
          order by i.received_at
          offset 0) as w;
    return query
    select r ->> 'field', count(distinct i.id), min(i.received_at), max(i.received_at), max(i.id)
    from sync.inbox as i
    cross join lateral jsonb_array_elements(i.reasons) as r
    where i.id >= v_first
      and i.reasons @> '[{"code": "field.unknown"}]'
      and i.received_at > p_since and i.received_at <= p_until
      and r ->> 'code' = 'field.unknown'
      and r ->> 'field' is not null
    group by r ->> 'field';
end;
$$;
comment on function sync_private.unknown_fields_since(timestamptz, timestamptz) is
    'The unknown CMS fields carried by deliveries received after p_since and up to p_until: per field, how many deliveries, first and last seen, the latest inbox id. The bounded window of sync.unknown_field that sync.health_at and the status page read.';

-- sync_private.join_warnings
-- The warnings of a health report as one reason.
create function sync_private.join_warnings(p_warnings text[]) returns text
    language sql
    immutable
as $$
    -- "; " between two warnings, or a space after one that ends in a
    -- command's own ";": joined alike, the reason read "see SELECT * FROM
    -- sync.quarantine;; 3 fragrances break an error rule" (hostile review).
    select string_agg(w.warning || case when w.n = cardinality(p_warnings) then ''
                                        when w.warning like '%;' then ' '
                                        else '; ' end, '' order by w.n)
    from unnest(p_warnings) with ordinality as w (warning, n);
$$;
comment on function sync_private.join_warnings(text[]) is
    'The warnings of a health report as one reason: "; " between two, a space only after one that ends in a command''s ";". sync.health_at''s reason.';

-- sync_private.judge_health
-- sync.health_at's report, and since when the merger owes a webhook delivery, from one read of the backlog.
create function sync_private.judge_health(
    p_now timestamptz,
    p_count_findings boolean,
    out report sync.health_report,
    out merger_owes_since timestamptz
)
    language plpgsql
    stable
    -- Planned at every call, on the inbox as it is then: /metrics and the
    -- status page call this from the hook's pooled sessions, which live for
    -- days, and plans kept from calls on a new install's empty inbox scanned
    -- the whole inbox 7 times per scrape once it had grown (140,000 rows
    -- read for 20,000 stored, measured), until autovacuum analyzed it.
    set plan_cache_mode = force_custom_plan
    -- And never by a scan of it, as sync_private.unknown_fields_since: on
    -- statistics that say the inbox is empty, the look for deliveries dated
    -- after p_now chose a scan (20,000 rows read) once migration 0071
    -- widened the inbox's rows by a column (tests/test_health.py).
    set enable_seqscan = off
as $$
declare
    v_settings sync.settings;
    v_report sync.health_report;
    v_oldest_pending timestamptz;
    v_rejected_last_hour bigint;
    v_warnings text[] := '{}';
    v_missed numeric;
    v_broken bigint;
    v_broken_rules text;
    v_stored_last bigint;
    v_dated_ahead bigint;
    v_upto timestamptz;
begin
    -- An infinite moment has no age to judge: it failed below on 'cannot
    -- subtract infinite timestamps', with no hint (hostile review).
    if p_now is null or not isfinite(p_now) then
        raise exception 'sync.health_at needs a moment, got %', coalesce(p_now::text, 'null')
            using errcode = 'FS005', hint = 'For example SELECT * FROM sync.health_at(now() - interval ''1 hour'');';
    end if;
    -- No delivery is dated before sync_private.first_receipt_time()
    -- (sync_private.store refuses it, FS020), so an earlier moment is a
    -- typo ('0026-12-01' for 2026), not a question: it was judged "never
    -- received", and the first day of the calendar failed on 'timestamp out
    -- of range' (hostile review).
    if p_now < sync_private.first_receipt_time() then
        raise exception 'sync.health_at judges moments from % on, when a delivery can first be dated; got %',
            to_char(sync_private.first_receipt_time() at time zone 'UTC', 'YYYY-MM-DD "UTC"'), p_now
            using errcode = 'FS005', hint = 'For example SELECT * FROM sync.health_at(now() - interval ''1 hour'');';
    end if;
    select * into v_settings from sync.settings;
    v_report.checked_at := p_now;
    -- What waits now (the backlog, the quarantine, the open findings, the
    -- jobs' last runs) is a state, not a window: judged now, everything
    -- stored so far counts, whatever the clock dated it. Dated by a clock
    -- that ran ahead and stepped back since (NTP, a VM restored), a reject
    -- or a finding of an error rule left the scrape's counts and the verdict
    -- until the clock caught up, while sync.quarantine and
    -- sync.open_finding showed them (hostile review). A past moment sees
    -- what was there by its date.
    v_upto := case when p_now >= now() then 'infinity' else p_now end;

    -- Traffic and cadence are the CMS's: webhooks only. A repair or a revert
    -- is a DBA's delivery, and must not hide the CMS's silence (a repair is
    -- what docs/alerts.md asks for right when the CMS has gone quiet).
    --
    -- received_at is the database host's clock (the hook's for a spooled
    -- delivery), which can step back: ticks stored while it ran ahead are
    -- dated after the ones stored since, and as p_now passed their dates
    -- they stood in for deliveries: a CMS silent since the step was ok for
    -- as long as the clock had run ahead (hostile review). A delivery dated
    -- after p_now yet stored before one dated at or before it says the clock
    -- stepped back in between; only what was stored after the last such
    -- delivery counts then. In doubt the silence is the longer one. (Dated
    -- after p_now: none, for the view at now(), unless the clock stepped
    -- back; found by inbox_received_at_idx.)
    select i.id into v_stored_last
    from sync.inbox as i where i.received_at <= p_now and i.origin = 'webhook'
    order by i.id desc
    limit 1;
    select max(a.id) into v_dated_ahead
    from (select i.id from sync.inbox as i
          where i.received_at > p_now and i.origin = 'webhook'
          order by i.received_at
          offset 0) as a
    where a.id < v_stored_last;
    if v_dated_ahead is null then
        -- Or the last one the purge deleted, when it was later: a silence
        -- longer than purge_after outlives its last delivery, and read
        -- "no delivery has ever been received" (hostile review).
        select greatest(max(i.received_at),
                        (select w.last_received_at from sync_private.purged_webhook as w
                         where w.last_received_at <= p_now))
        into v_report.last_received_at
        from sync.inbox as i where i.received_at <= p_now and i.origin = 'webhook';
    else
        select max(received_at) into v_report.last_received_at
        from sync.inbox where received_at <= p_now and origin = 'webhook' and id > v_dated_ahead;
    end if;
    v_report.last_received_age := p_now - v_report.last_received_at;

    -- Observed cadence: the median gap between the last hour's deliveries.
    select percentile_cont(0.5) within group (order by gap)
    into v_report.typical_interval
    from (select received_at - lag(received_at) over (order by received_at, id) as gap
          from sync.inbox
          where received_at > p_now - interval '1 hour' and received_at <= p_now
            and origin = 'webhook') as g
    where gap is not null;

    select count(*),
           count(*) filter (where received_at > p_now - interval '1 hour'),
           count(*) filter (where status = 'applied'),
           count(*) filter (where status = 'ignored'),
           count(*) filter (where status in ('rejected', 'discarded')),
           count(*) filter (where status = 'rejected' and received_at > p_now - interval '1 hour')
    into v_report.deliveries_last_day, v_report.deliveries_last_hour, v_report.applied_last_day,
         v_report.ignored_last_day, v_report.rejected_last_day, v_rejected_last_hour
    from sync.inbox
    -- The last day is the last 24 hours: interval '1 day' is a calendar day
    -- in the session's time zone, 23 or 25 hours on the days its clocks change.
    where received_at > p_now - interval '24 hours' and received_at <= p_now and origin = 'webhook';

    -- And, in the same read, the oldest pending webhook delivery, for
    -- sync.metrics: it read every pending row a second time for it, at
    -- every scrape (hostile review).
    select count(*), min(received_at), min(received_at) filter (where origin = 'webhook')
    into v_report.pending, v_oldest_pending, merger_owes_since
    from sync.inbox where status = 'pending' and received_at <= v_upto;
    -- (Never less than 0: one dated ahead by the clock has waited no time yet.)
    v_report.oldest_pending_age := case when v_oldest_pending is not null
                                        then greatest(p_now - v_oldest_pending, interval '0') end;

    -- From inbox_rejected_received_at_idx alone: the quarantine is never
    -- purged, and counted through the rows it read every rejected delivery
    -- ever kept at every scrape (3,849 pages for 14,999, measured).
    select count(*) into v_report.quarantined
    from sync.inbox where status = 'rejected' and received_at <= v_upto;

    select coalesce(jsonb_object_agg(code, deliveries order by code), '{}')
    into v_report.rejects_by_code_last_day
    from (select r ->> 'code' as code, count(distinct i.id) as deliveries
          from sync.inbox as i
          cross join lateral jsonb_array_elements(i.reasons) as r
          where i.received_at > p_now - interval '24 hours' and i.received_at <= p_now
            and i.origin = 'webhook'
            and i.status in ('rejected', 'discarded')
            and r ->> 'severity' = 'error'
          group by r ->> 'code') as c;

    -- The findings open at p_now: those open now, and those closed since.
    -- Two conditions, one index each (the open ones from
    -- finding_open_rule_idx alone): "closed_at is null or closed_at > p_now"
    -- as one condition fitted no index, and this and the count of error
    -- rules below read the whole table at every scrape, closed findings
    -- included (2 x 205 MB at 500,000 closed, measured).
    --
    -- Left to the caller that counts them itself (sync.status_report, by
    -- rule for its table of findings): counted here too, the page read
    -- every open finding twice per load.
    if p_count_findings then
        select coalesce(jsonb_object_agg(rule, fragrances order by rule), '{}')
        into v_report.open_findings
        from (select f.rule, count(*) as fragrances
              from (select o.rule from sync.finding as o
                    -- (severity is not null: always true, and the condition of
                    -- finding_open_rule_idx, migration 0035)
                    where o.closed_at is null and o.severity is not null and o.first_seen_at <= v_upto
                    union all
                    select c.rule from sync.finding as c
                    where c.closed_at > v_upto and c.first_seen_at <= v_upto) as f
              group by f.rule) as o;
    end if;

    -- The 20 seen last in the last day: a summary, bounded whatever the CMS
    -- sends and however long the inbox is kept (all of them, all the time:
    -- sync.unknown_field). Once the CMS adds a field every delivery carries
    -- it, and over all retained rows this grew with the inbox at every
    -- scrape (hostile review).
    select coalesce(jsonb_object_agg(u.field, u.deliveries order by u.field), '{}')
    into v_report.unknown_fields
    from (select f.field, f.deliveries
          from sync_private.unknown_fields_since(p_now - interval '24 hours', p_now) as f
          order by f.last_seen desc, f.field
          limit 20) as u;

    -- The verdict: silence first (the CMS fails without a word), then lag and rejects.
    v_missed := floor(extract(epoch from v_report.last_received_age) / extract(epoch from v_settings.expected_interval));
    if v_report.last_received_at is null then
        v_report.verdict := 'warn';
        v_warnings := v_warnings || 'no delivery has ever been received: register the listener with the CMS (POST /listener)'::text;
    elsif v_report.last_received_age >= v_settings.silence_critical_after then
        v_report.verdict := 'critical';
        v_report.reason := format(
            'no delivery for %s, about %s changes missed (critical after %s): the CMS is down, stuck on a change its database refuses, or no longer has our listener registered',
            sync_private.say_interval(v_report.last_received_age),
            v_missed,
            sync_private.say_interval(v_settings.silence_critical_after));
    elsif v_report.last_received_age >= v_settings.silence_warn_after then
        v_warnings := v_warnings || format(
            'no delivery for %s, about %s changes missed (warn after %s, critical after %s)',
            sync_private.say_interval(v_report.last_received_age),
            v_missed,
            sync_private.say_interval(v_settings.silence_warn_after),
            sync_private.say_interval(v_settings.silence_critical_after));
    end if;

    if v_report.oldest_pending_age >= v_settings.pending_warn_after then
        v_warnings := v_warnings || format(
            '%s deliveries pending, the oldest for %s: run SELECT * FROM sync.apply_pending(1000); (it applies a repair staged with sync.repair(p_apply => false) too)',
            v_report.pending, sync_private.say_interval(v_report.oldest_pending_age));
    end if;

    if v_rejected_last_hour > 0
        and v_rejected_last_hour >= v_settings.reject_share_warn * v_report.deliveries_last_hour
    then
        v_warnings := v_warnings || format(
            '%s of the last hour''s %s deliveries are rejected: see SELECT * FROM sync.quarantine;',
            v_rejected_last_hour, v_report.deliveries_last_hour);
    end if;

    -- Warnings of the catalog at rest (padded descriptions, shared names) are
    -- its known shape; a value that breaks an error rule is not.
    -- (Open at p_now as above: by index, never the closed findings.)
    select count(distinct f.fragrance_id), string_agg(distinct f.rule, ', ')
    into v_broken, v_broken_rules
    from (select o.fragrance_id, o.rule from sync.finding as o
          where o.severity = 'error' and o.closed_at is null and o.first_seen_at <= v_upto
          union all
          select c.fragrance_id, c.rule from sync.finding as c
          where c.severity = 'error' and c.closed_at > v_upto and c.first_seen_at <= v_upto) as f;
    if v_broken > 0 then
        v_warnings := v_warnings || format(
            '%s fragrances break an error rule (%s): see SELECT * FROM sync.open_finding WHERE severity = ''error'';',
            v_broken, v_broken_rules);
    end if;

    -- A scheduled job whose last run failed: nothing else says so. A purge
    -- that fails lets the inbox grow, a catalog check that fails leaves the
    -- findings of bulk loads unfound, a drift check that fails (no snapshot
    -- loaded) leaves lost webhooks unrepaired; pg_cron and the cron lines
    -- only keep the run (hostile review). A disabled job is not watched.
    -- The purge is run again by its procedure: after weeks of failures,
    -- sync.run_job would delete the whole backlog in one transaction.
    --
    -- A job that stopped running leaves no failed run at all: pg_cron
    -- unable to connect as the job's owner (its error is only in
    -- cron.job_run_details), a cron line lost with a host. The purge then
    -- stops and the inbox grows until the disk fills, with health ok. So the
    -- last run's age is judged too, against the longest gap its schedule
    -- allows and a day more. A job that never ran is judged from when it
    -- was enabled (sync.job.enabled_at): left unjudged, a deploy without
    -- pg_cron and without the cron lines read ok for good, the purge, the
    -- catalog check and the drift check never run (hostile review).
    --
    -- A run interrupted (cancelled, or its session gone) did not finish
    -- either: it once read running for good, and health said nothing
    -- (hostile review). Its status now, not as recorded: a run whose
    -- session ended is still running in the table until the next run.
    select v_warnings || coalesce(array_agg(case
               when r.status = 'interrupted' then format(
                   'the scheduled job %s was interrupted %s ago (%s): %s',
                   r.job, sync_private.say_interval(p_now - r.started_at),
                   coalesce(r.detail ->> 'error', 'its session ended before it finished'),
                   case r.job when 'purge_inbox' then 'CALL sync.purge_inbox(); goes on where it stopped.'
                              else format('run it again: SELECT * FROM sync.run_job(%L);', r.job) end)
               when r.status = 'failed' then format(
                   'the scheduled job %s failed %s ago (%s): fix the cause, then %s',
                   r.job, sync_private.say_interval(p_now - r.started_at),
                   coalesce(r.detail ->> 'error', 'no error kept'),
                   case r.job when 'purge_inbox' then 'CALL sync.purge_inbox();'
                              else format('SELECT * FROM sync.run_job(%L);', r.job) end)
               when r.started_at is null then format(
                   'the scheduled job %s has never run, and it was enabled %s ago with a schedule (%s) that runs it at least every %s: '
                   'is pg_cron, or the cron line of docs/operations.md, running it? SELECT * FROM sync.schedule();',
                   j.name, sync_private.say_interval(p_now - j.enabled_at), j.schedule,
                   sync_private.say_interval(sync_private.longest_gap(j.schedule)))
               else format(
                   'the scheduled job %s last ran %s ago, and its schedule (%s) runs it at least every %s: '
                   'is pg_cron, or the cron line of docs/operations.md, still running it? SELECT * FROM sync.schedule();',
                   r.job, sync_private.say_interval(p_now - r.started_at), j.schedule,
                   sync_private.say_interval(sync_private.longest_gap(j.schedule)))
               end order by j.name), '{}')
    into v_warnings
    from sync.job as j
    left join lateral (select x.job, x.started_at,
                              sync_private.job_run_status(x.status, x.backend_pid, x.session_lock) as status,
                              x.detail
                       from sync.job_run as x
                       where x.job = j.name and x.started_at <= v_upto
                       order by x.id desc limit 1) as r on true
    where j.enabled
      and (r.status in ('failed', 'interrupted')
           or coalesce(r.started_at, j.enabled_at) < p_now - sync_private.longest_gap(j.schedule) - interval '1 day');

    -- The last drift check: when it finished, and how many fragrances it
    -- found off the CMS snapshot (missing, extra, or differing by something
    -- the library did not set after the snapshot was taken), from the
    -- figures it recorded (sync_private.catalog_in_sync). Nothing turned
    -- these into a number an alert could read: a nightly check that found
    -- 58 lost changes said so only to whoever opened the status page. Not a
    -- warning here (the alert FragranceSyncDriftFound opens its own ticket,
    -- and warn would open a second); sync.metrics exports both. Null: no
    -- successful check, or one of code older than its figures.
    select r.finished_at,
           (r.detail -> 'catalog' ->> 'cms_rows')::bigint
               - (r.detail -> 'catalog' ->> 'in_sync')::bigint
               - (r.detail -> 'catalog' ->> 'changed_since')::bigint
               + (r.detail -> 'catalog' ->> 'extra')::bigint
    into v_report.drift_checked_at, v_report.drift_differences
    from sync.job_run as r
    where r.job = 'check_drift' and r.status = 'ok' and r.finished_at <= v_upto
    order by r.id desc
    limit 1;

    -- The snapshot the drift check compares with, and its age: a snapshot
    -- months old read as fine, the nightly check found nothing against it,
    -- and every change lost since it was taken stayed unfound. Every row of
    -- a snapshot has the same moments (each load replaces it whole): the
    -- first by key, as sync_private.catalog_as_checked reads it.
    select x.taken_at into v_report.snapshot_taken_at
    from (select c.taken_at, c.loaded_at from sync.cms_snapshot as c
          order by c.fragrance_id
          limit 1) as x
    where x.loaded_at <= v_upto;
    if v_report.snapshot_taken_at < sync_private.reach_back(p_now, v_settings.snapshot_warn_after) then
        v_warnings := v_warnings || format(
            'the CMS snapshot the drift check compares with was taken %s ago (more than snapshot_warn_after, %s): '
            'changes lost since then stay unfound; load a fresh CMS export (docs/drift-and-undo.md, "Finding and repairing drift"), '
            'then SELECT * FROM sync.run_job(''check_drift'');',
            sync_private.say_interval(p_now - v_report.snapshot_taken_at),
            sync_private.say_interval(v_settings.snapshot_warn_after));
    end if;

    if v_report.verdict = 'critical' then
        if cardinality(v_warnings) > 0 then
            v_report.reason := v_report.reason || '; also ' || sync_private.join_warnings(v_warnings);
        end if;
    elsif cardinality(v_warnings) > 0 then
        v_report.verdict := 'warn';
        v_report.reason := sync_private.join_warnings(v_warnings);
    else
        v_report.verdict := 'ok';
        v_report.reason := format('deliveries arrive on cadence: the last one %s ago, %s in the last hour',
            sync_private.say_interval(v_report.last_received_age), v_report.deliveries_last_hour);
    end if;
    report := v_report;
    -- Owed only while the merger applies what is stored (see sync.metrics).
    if not v_settings.apply_on_receipt then
        merger_owes_since := null;
    end if;
end;
$$;
comment on function sync_private.judge_health(timestamptz, boolean) is
    'sync.health_at''s report at p_now (open_findings null unless p_count_findings: for a caller that counts them itself), and the receipt time of the oldest pending webhook delivery while apply_on_receipt is on (null: none, or off): what the hook''s merger owes, for sync.metrics, read with the pending count in one pass over the pending rows.';

-- sync.health_at
-- Judges the sync at a given moment from the inbox alone, so tests drive the clock through the data.
create function sync.health_at(p_now timestamptz) returns sync.health_report
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    select j.report from sync_private.judge_health(p_now, true) as j;
$$;
comment on function sync.health_at(timestamptz) is
    'Sync health as it was (or would be) at p_now, judged from sync.inbox and the thresholds in sync.settings: one row with a verdict (ok, warn, critical) and its reason. Counts use each delivery''s status now. Usage: SELECT * FROM sync.health_at(now() - interval ''1 hour'');';

-- sync.health: the verdict now.
create view sync.health as
select * from sync.health_at(now());
comment on view sync.health is
    'Sync health now, in one row: verdict (ok, warn, critical) and reason, last delivery and its age, traffic, backlog, rejects by code, unknown CMS fields. Thresholds: sync.settings. Usage: SELECT verdict, reason FROM sync.health;';
comment on column sync.health.checked_at is 'The moment judged (now).';
comment on column sync.health.verdict is 'ok, warn or critical.';
comment on column sync.health.reason is 'Why, in words, with what to do.';
comment on column sync.health.last_received_at is 'When the CMS''s last delivery (a webhook) was received (null: never), purged or not; repairs and reverts do not count.';
comment on column sync.health.last_received_age is 'How long ago that was: the silence the verdict is about.';
comment on column sync.health.typical_interval is 'Median gap between the last hour''s webhooks: the CMS''s real cadence.';
comment on column sync.health.deliveries_last_hour is 'Webhooks received in the last hour.';
comment on column sync.health.deliveries_last_day is 'Webhooks received in the last 24 hours (every "last day" here is the last 24 hours; this and the next four count the CMS''s deliveries, not repairs or reverts).';
comment on column sync.health.applied_last_day is 'Of the last day''s deliveries, those applied now.';
comment on column sync.health.ignored_last_day is 'Of the last day''s deliveries, those ignored now (nothing to change, or stale).';
comment on column sync.health.rejected_last_day is 'Of the last day''s deliveries, those rejected or discarded now.';
comment on column sync.health.pending is 'Deliveries stored but not processed yet, whoever made them.';
comment on column sync.health.oldest_pending_age is 'How long the oldest pending delivery has waited.';
comment on column sync.health.quarantined is 'Rejected deliveries waiting for a retry or a discard (sync.quarantine).';
comment on column sync.health.rejects_by_code_last_day is 'The last day''s rejected (or since discarded) webhooks by error code: deliveries, not reasons; a delivery counts once under each of its codes, e.g. {"cost.negative": 2}.';
comment on column sync.health.unknown_fields is 'Of the fields the CMS sent in the last day that the rules do not know, the 20 seen last, with how many of the last day''s deliveries carried them (all of them, all the time: sync.unknown_field).';
comment on column sync.health.open_findings is 'Fragrances breaking each data rule now (sync.open_finding), e.g. {"name.duplicate": 1538}; an error rule broken turns the verdict to warn.';
comment on column sync.health.drift_checked_at is 'When the last successful drift check (the check_drift job) finished; null: never.';
comment on column sync.health.drift_differences is 'Fragrances the last successful drift check found off the CMS snapshot: missing from the library, extra in it, or differing by something the library did not set after the snapshot was taken (those are newer, not wrong). Null: no successful check with figures. Exported to /metrics; the alert FragranceSyncDriftFound opens a ticket when above 0.';
comment on column sync.health.snapshot_taken_at is 'When the CMS snapshot loaded now (sync.cms_snapshot) was taken; null: none loaded. Taken longer ago than sync.settings.snapshot_warn_after turns the verdict to warn.';

-- sync.metric_snapshot: what the hook's /metrics reads from the database.
create type sync.metric_snapshot as (
    verdict text,
    last_received_at timestamptz,
    seconds_since_last_delivery double precision,
    pending bigint,
    quarantined bigint,
    open_findings jsonb,
    oldest_pending_age_seconds double precision,
    drift_differences bigint,
    drift_check_age_seconds double precision,
    snapshot_age_seconds double precision
);
comment on type sync.metric_snapshot is
    'The database side of the hook''s /metrics: health verdict, last delivery, backlog and quarantine sizes, the age of what the merger has yet to apply. Counts only, no payload.';
comment on column sync.metric_snapshot.verdict is 'As sync.health.verdict.';
comment on column sync.metric_snapshot.last_received_at is 'As sync.health.last_received_at.';
comment on column sync.metric_snapshot.seconds_since_last_delivery is 'sync.health.last_received_age in seconds.';
comment on column sync.metric_snapshot.pending is 'As sync.health.pending.';
comment on column sync.metric_snapshot.quarantined is 'As sync.health.quarantined.';
comment on column sync.metric_snapshot.open_findings is 'As sync.health.open_findings.';
comment on column sync.metric_snapshot.oldest_pending_age_seconds is
    'Seconds the oldest pending webhook delivery has waited since it was received, while sync.settings.apply_on_receipt is on: what the hook''s merger (sync.apply_received) has yet to apply. 0 when none waits, and while apply_on_receipt is off; a DBA''s pending repair or revert never counts.';
comment on column sync.metric_snapshot.drift_differences is 'As sync.health.drift_differences.';
comment on column sync.metric_snapshot.drift_check_age_seconds is 'Seconds since sync.health.drift_checked_at (null: no successful drift check).';
comment on column sync.metric_snapshot.snapshot_age_seconds is 'Seconds since sync.health.snapshot_taken_at (null: no CMS snapshot loaded).';

-- sync.metrics
-- The counts the hook's /metrics exposes, without giving the hook any table privilege.
create function sync.metrics() returns sync.metric_snapshot
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    -- Every rule that judges the catalog, 0 when nothing breaks it: the
    -- hook exports one series per rule, a fixed set.
    select h.verdict, h.last_received_at, extract(epoch from h.last_received_age)::double precision,
           h.pending, h.quarantined,
           (select jsonb_object_agg(r.code, coalesce((h.open_findings ->> r.code)::bigint, 0) order by r.code)
            from sync.rule as r where r.applies_to in ('catalog', 'both')),
           -- What the merger owes, and since when: a merger that died or
           -- fails every call lets the pending count grow by a change every
           -- 20 s, too slowly for a threshold on it to tell from a burst,
           -- while this grows with the clock, and pages
           -- (FragranceSyncMergeStalled). So does a transaction holding a
           -- fragrance for minutes: its deliveries wait as long, and the
           -- library is as stale for it. Only what sync.apply_received would
           -- apply: a DBA holding deliveries back (apply_on_receipt off) or a
           -- repair staged with p_apply => false is a choice, not a stall;
           -- sync.health warns about those. Pending rows only, by their
           -- partial index (inbox_pending_idx): never the whole inbox. The
           -- oldest by receipt time, not by id: a spooled delivery is stored
           -- after later ones but was received first. received_at is the
           -- clock when stored and now() this transaction's start: a delivery
           -- stored since counts 0, not less (and none counts 0).
           -- (Read by sync_private.judge_health with the pending count:
           -- a second read of every pending row here doubled what a scrape
           -- read of a backlog, hostile review.)
           greatest(coalesce(extract(epoch from now() - j.merger_owes_since), 0), 0)::double precision,
           h.drift_differences,
           extract(epoch from now() - h.drift_checked_at)::double precision,
           extract(epoch from now() - h.snapshot_taken_at)::double precision
    from sync_private.judge_health(now(), true) as j
    cross join lateral (select (j.report).*) as h;
$$;
comment on function sync.metrics() is
    'Health verdict, last delivery time and age in seconds, pending and quarantined counts, open findings per catalog rule (every rule, 0 when none), and the age in seconds of the oldest pending webhook delivery the merger has yet to apply (0: none, or apply_on_receipt off), the last drift check''s differences and age, and the CMS snapshot''s age, for the hook''s /metrics. Usage: SELECT * FROM sync.metrics();';

-- sync_private.unknown_fields_seen_last
-- The unknown CMS fields of the last day seen last, and how many there are, for the status page.
create function sync_private.unknown_fields_seen_last(p_count integer) returns jsonb
    language sql
    stable
as $$
    select jsonb_build_object(
               'latest', coalesce(jsonb_agg(to_jsonb(u) - 'nth' order by u.nth)
                                      filter (where u.nth <= p_count), '[]'),
               'total', count(*))
    from (select f.*, row_number() over (order by f.last_seen desc, f.field) as nth
          from sync_private.unknown_fields_since(now() - interval '24 hours', now()) as f) as u;
$$;
comment on function sync_private.unknown_fields_seen_last(integer) is
    'The p_count unknown CMS fields of the last day seen last (rows as sync.unknown_field has them, latest first) as latest, and how many fields the last day brought as total.';

-- sync_private.shorten
-- A text a sender chose, cut for the status page as sync_private.preview cuts a body.
create function sync_private.shorten(p_text text) returns text
    language sql
    immutable
    parallel safe
as $$
    select case when char_length(p_text) > 200 then left(p_text, 200) || '...' else p_text end;
$$;
comment on function sync_private.shorten(text) is
    'A text a sender chose (an unknown field''s name, a reason''s message) cut to its first 200 characters and "...", for the status page: a field name or a JSON token can be as long as a body.';

-- sync.status_report
-- Everything the hook's /status page shows now, as one JSON document, bodies cut short.
create function sync.status_report(p_hours integer default 3, p_latest integer default 10) returns jsonb
    language plpgsql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
    -- Planned at every call, on the inbox as it is then: the status page
    -- calls this from pooled sessions that live for days, and a plan kept
    -- from a call on a new install's empty inbox scanned the whole inbox 11
    -- times per call once it had grown (220,000 rows read for 20,000 stored,
    -- measured), until autovacuum analyzed it. Planning adds 2 to 15 ms to
    -- a call of about 30 (measured, 10,000 deliveries); the page reloads
    -- every 30 seconds.
    set plan_cache_mode = force_custom_plan
    -- No JIT: the page's queries run once. The drift the page once read
    -- was costed in millions past 100,000 fragrances, and compiling it cost
    -- 530 ms of each load of 1.9 s at 200,000 (584 ms of JIT in the plan,
    -- measured); the page now reads what the drift check recorded.
    set jit = off
as $$
declare
    v_now constant timestamptz := now();
    v_since timestamptz;
    v_unknown jsonb;
    v_findings jsonb;
begin
    -- Only now, and only as much as the page shows: the hook's login calls
    -- this, and must not page back through the inbox with it.
    if p_hours is null or p_hours not between 1 and 48 or p_latest is null or p_latest not between 1 and 20 then
        raise exception 'p_hours must be 1 to 48 and p_latest 1 to 20, got % and %', p_hours, p_latest
            using errcode = 'FS004', hint = 'As the status page asks: SELECT sync.status_report(3, 10);';
    end if;
    v_since := date_trunc('minute', v_now) - make_interval(hours => p_hours) + interval '1 minute';
    -- The unknown fields the page lists: of the last day, the 20 seen last,
    -- and how many in all. One delivery of 60,000 unknown keys (900 KB, under the body
    -- limit) made the whole list a 10 MB report, rendered by the hook at
    -- every reload of the page (measured).
    v_unknown := sync_private.unknown_fields_seen_last(20);
    -- Open findings by rule, with an example: counted once, for this table
    -- and for the health row's open_findings (sync_private.judge_health
    -- counted them again: every open finding read twice per load, and they
    -- grow with the catalog).
    v_findings := coalesce((
        select jsonb_agg(jsonb_build_object(
                   'rule', g.rule, 'severity', g.severity, 'fragrances', g.fragrances,
                   'example_fragrance_id', g.example_id, 'example_message', e.example_message)
                   order by g.severity, g.fragrances desc, g.rule)
        -- The example is the first fragrance breaking the rule, its message
        -- read by key: sorting every open finding for it cost two thirds of
        -- this part (measured at 255,680 open findings).
        from (select f.rule, min(f.severity) as severity, count(*) as fragrances,
                     min(f.fragrance_id) as example_id
              from sync.finding as f
              where f.closed_at is null and f.severity is not null  -- by finding_open_rule_idx alone
              group by f.rule) as g
        left join lateral (select x.message as example_message from sync.finding as x
                           where x.closed_at is null and x.fragrance_id = g.example_id
                             and x.rule = g.rule) as e on true),
        '[]');
    -- Names and messages a sender chose are cut for the page: an unknown key
    -- can take a whole body, and twenty keys of 1 MB made the anonymous page
    -- 21 MB (hostile review). The full names: sync.unknown_field.
    return jsonb_build_object(
        'health', (select to_jsonb(h) || jsonb_build_object(
                              'open_findings', (select coalesce(jsonb_object_agg(f ->> 'rule', f -> 'fragrances'
                                                                                 order by f ->> 'rule'), '{}')
                                                from jsonb_array_elements(v_findings) as f),
                              'unknown_fields', (select coalesce(jsonb_object_agg(sync_private.shorten(u.key), u.value), '{}')
                                                 from jsonb_each(h.unknown_fields) as u),
                              'last_received_age_words', sync_private.say_interval(h.last_received_age),
                              'oldest_pending_age_words', sync_private.say_interval(h.oldest_pending_age),
                              'typical_interval_words', sync_private.say_interval(h.typical_interval))
                   from sync_private.judge_health(v_now, false) as j
                   cross join lateral (select (j.report).*) as h),
        -- Findings come from writes as they happen; the adopted catalog is
        -- judged only by a whole check. Without its moment the page said
        -- "nothing breaks a rule" of a catalog never checked (hostile review).
        -- Null, not sync_private.say_interval's 'never', for a catalog
        -- never checked: the page then says so, where it said "last checked
        -- never ago" (hostile review).
        'catalog_checked_ago', (
            select case when max(r.finished_at) is not null
                        then sync_private.say_interval(v_now - max(r.finished_at)) end
            from sync.job_run as r
            where r.job = 'check_catalog' and r.status = 'ok'),
        'settings', (select jsonb_build_object(
                         'expected_interval_seconds', extract(epoch from s.expected_interval),
                         'silence_warn_after', sync_private.say_interval(s.silence_warn_after),
                         'silence_critical_after', sync_private.say_interval(s.silence_critical_after),
                         'apply_on_receipt', s.apply_on_receipt)
                     from sync.settings as s),
        'per_minute', (
            select jsonb_agg(jsonb_build_object('minute', m.minute, 'deliveries', coalesce(c.deliveries, 0),
                                                'rejected', coalesce(c.rejected, 0)) order by m.minute)
            from generate_series(v_since, date_trunc('minute', v_now), interval '1 minute') as m(minute)
            left join (select date_trunc('minute', received_at) as minute, count(*) as deliveries,
                              count(*) filter (where status in ('rejected', 'discarded')) as rejected
                       from sync.inbox
                       -- The CMS's deliveries, as the health row's traffic
                       -- beside it: a repair (what the silence's page asks
                       -- for) drew thousands of deliveries into the stretch
                       -- that showed the CMS silent (hostile review). The
                       -- latest deliveries below list every origin.
                       where received_at >= v_since and received_at <= v_now and origin = 'webhook'
                       group by 1) as c using (minute)),
        'latest', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'inbox_id', l.id, 'received_at', l.received_at, 'fragrance_id', l.fragrance_id,
                       'status', l.status, 'origin', l.origin, 'content_type', l.content_type,
                       'codes', (select coalesce(jsonb_agg(distinct r ->> 'code'), '[]')
                                 from jsonb_array_elements(l.reasons) as r),
                       'body_preview', sync_private.preview(l.body, l.reasons)) order by l.id desc)
            from (select * from sync.inbox order by id desc limit p_latest) as l),
            '[]'),
        'rejects', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'code', g.code, 'deliveries', g.deliveries, 'example_inbox_id', g.example_id,
                       'example_message', sync_private.shorten(g.message),
                       'example_body', sync_private.preview(e.body, e.reasons))
                       order by g.deliveries desc, g.code)
            from (select r ->> 'code' as code, count(distinct i.id) as deliveries, max(i.id) as example_id,
                         (array_agg(r ->> 'message' order by i.id desc))[1] as message
                  from sync.inbox as i
                  cross join lateral jsonb_array_elements(i.reasons) as r
                  where i.status = 'rejected' and r ->> 'severity' = 'error'
                  group by r ->> 'code') as g
            join sync.inbox as e on e.id = g.example_id),
            '[]'),
        'unknown_fields', (select coalesce(jsonb_agg(jsonb_set(u.value, '{field}',
                                                              to_jsonb(sync_private.shorten(u.value ->> 'field')))
                                                    order by u.n), '[]')
                           from jsonb_array_elements(v_unknown -> 'latest') with ordinality as u (value, n)),
        'unknown_fields_total', v_unknown -> 'total',
        'findings', v_findings,
        -- As the last drift check found it, and when: computed here, the
        -- drift cost 1.5 s per load at 200,000 fragrances, for anyone who
        -- reaches the page (hostile review).
        'catalog', sync_private.catalog_as_checked(v_now));
end;
$$;
comment on function sync.status_report(integer, integer) is
    'The data of the hook''s /status page now, as one jsonb document: health, settings, the CMS''s deliveries (webhooks) per minute over the last p_hours (1 to 48), the p_latest (1 to 20) latest deliveries, quarantined deliveries by error code with the latest example, the 20 unknown CMS fields of the last day seen last and how many the last day brought, open findings by rule with an example, and how many rows matched the CMS snapshot loaded now as the last drift check found them, with its moment (sync_private.catalog_as_checked). Bodies are cut to 200 bytes; the page escapes everything.';
