-- Sync health: silence judged against the CMS's cadence, one verdict row, and the data behind /metrics and /status
-- depends: 0007-roles

-- Thresholds live in the one-row settings table, so a DBA changes them with one UPDATE.
-- The CMS sends one change every 20 to 25 seconds, all day, with no quiet hours:
--   * 2 minutes of silence is at least 4 missed ticks in a row. A lost request
--     or two happens (fire and forget, no retries); four in a row does not on a
--     healthy link, so it is worth a look but not a page.
--   * 10 minutes is at least 24 missed ticks: the CMS is dead, stuck on a change
--     its own database refuses (it then never sends again, see the contract), or
--     nobody re-registered the listener after a CMS restart. Page someone.
-- A quiet but healthy CMS does not exist for this cadence; if another CMS is
-- bursty, raise the thresholds rather than ignoring the verdict.
alter table sync.settings
    add column expected_interval interval not null default '25 seconds',
    add column silence_warn_after interval not null default '2 minutes',
    add column silence_critical_after interval not null default '10 minutes',
    add column pending_warn_after interval not null default '5 minutes',
    add column reject_share_warn numeric not null default 0.10,
    add constraint settings_cadence_positive check (expected_interval > interval '0'),
    add constraint settings_silence_thresholds_ordered
        check (silence_warn_after >= expected_interval and silence_critical_after > silence_warn_after),
    add constraint settings_pending_warn_positive check (pending_warn_after > interval '0'),
    add constraint settings_reject_share_is_a_share check (reject_share_warn > 0 and reject_share_warn <= 1);
comment on column sync.settings.expected_interval is
    'Longest normal gap between two CMS deliveries (the CMS sends every 20 to 25 s); used to say how many changes a silence has missed.';
comment on column sync.settings.silence_warn_after is
    'No delivery for this long turns sync.health to warn (default 2 minutes: at least 4 missed ticks).';
comment on column sync.settings.silence_critical_after is
    'No delivery for this long turns sync.health to critical (default 10 minutes: at least 24 missed ticks, the CMS is down or stuck).';
comment on column sync.settings.pending_warn_after is
    'A delivery pending for longer than this turns sync.health to warn: the smart library lags behind what was received.';
comment on column sync.settings.reject_share_warn is
    'When at least this share (0 to 1) of the last hour''s deliveries is rejected, sync.health turns to warn.';

-- Health is judged on received_at ranges (the last delivery before a moment, the last
-- hour, the last day). The index that serves them, sync.inbox_received_at_idx, is
-- created by 0011-retention on main (purges walk the same column); creating it here too
-- would make whichever of the two runs second fail. Without it health is still
-- right, only slower on a large inbox.

-- sync._say_interval
-- Renders an interval for people: '18 s', '3 min 5 s', '2 min', '2 h 10 min', '3 d 4 h'.
create function sync._say_interval(p_interval interval) returns text
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
comment on function sync._say_interval(interval) is
    'An interval in words for verdict reasons and the status page, to the second.';

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
    unknown_fields jsonb
);
comment on type sync.health_report is
    'Sync health at one moment: verdict (ok, warn, critical) and reason, the last delivery and its age, traffic in the last hour and day, the backlog, rejects by code and unknown CMS fields.';

-- sync.health_at
-- Judges the sync at a given moment from the inbox alone, so tests drive the clock through the data.
create function sync.health_at(p_now timestamptz) returns sync.health_report
    language plpgsql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_settings sync.settings;
    v_report sync.health_report;
    v_oldest_pending timestamptz;
    v_rejected_last_hour bigint;
    v_warnings text[] := '{}';
    v_missed numeric;
begin
    select * into v_settings from sync.settings;
    v_report.checked_at := p_now;

    select max(received_at) into v_report.last_received_at
    from sync.inbox where received_at <= p_now;
    v_report.last_received_age := p_now - v_report.last_received_at;

    -- Observed cadence: the median gap between the last hour's deliveries.
    select percentile_cont(0.5) within group (order by gap)
    into v_report.typical_interval
    from (select received_at - lag(received_at) over (order by received_at, id) as gap
          from sync.inbox
          where received_at > p_now - interval '1 hour' and received_at <= p_now) as g
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
    where received_at > p_now - interval '1 day' and received_at <= p_now;

    select count(*), min(received_at) into v_report.pending, v_oldest_pending
    from sync.inbox where status = 'pending' and received_at <= p_now;
    v_report.oldest_pending_age := p_now - v_oldest_pending;

    select count(*) into v_report.quarantined
    from sync.inbox where status = 'rejected' and received_at <= p_now;

    select coalesce(jsonb_object_agg(code, deliveries order by code), '{}')
    into v_report.rejects_by_code_last_day
    from (select r ->> 'code' as code, count(distinct i.id) as deliveries
          from sync.inbox as i
          cross join lateral jsonb_array_elements(i.reasons) as r
          where i.received_at > p_now - interval '1 day' and i.received_at <= p_now
            and i.status in ('rejected', 'discarded')
            and r ->> 'severity' = 'error'
          group by r ->> 'code') as c;

    select coalesce(jsonb_object_agg(field, deliveries order by field), '{}')
    into v_report.unknown_fields
    from (select r ->> 'field' as field, count(distinct i.id) as deliveries
          from sync.inbox as i
          cross join lateral jsonb_array_elements(i.reasons) as r
          where i.reasons @> '[{"code": "field.unknown"}]'
            and i.received_at <= p_now
            and r ->> 'code' = 'field.unknown'
          group by r ->> 'field') as u;

    -- The verdict: silence first (the CMS fails without a word), then lag and rejects.
    v_missed := floor(extract(epoch from v_report.last_received_age) / extract(epoch from v_settings.expected_interval));
    if v_report.last_received_at is null then
        v_report.verdict := 'warn';
        v_warnings := v_warnings || 'no delivery has ever been received: register the listener with the CMS (POST /listener)'::text;
    elsif v_report.last_received_age >= v_settings.silence_critical_after then
        v_report.verdict := 'critical';
        v_report.reason := format(
            'no delivery for %s, about %s changes missed (critical after %s): the CMS is down, stuck on a change its database refuses, or no longer has our listener registered',
            sync._say_interval(v_report.last_received_age),
            v_missed,
            sync._say_interval(v_settings.silence_critical_after));
    elsif v_report.last_received_age >= v_settings.silence_warn_after then
        v_warnings := v_warnings || format(
            'no delivery for %s, about %s changes missed (warn after %s, critical after %s)',
            sync._say_interval(v_report.last_received_age),
            v_missed,
            sync._say_interval(v_settings.silence_warn_after),
            sync._say_interval(v_settings.silence_critical_after));
    end if;

    if v_report.oldest_pending_age >= v_settings.pending_warn_after then
        v_warnings := v_warnings || format(
            '%s deliveries pending, the oldest for %s: run SELECT * FROM sync.apply_pending(1000);',
            v_report.pending, sync._say_interval(v_report.oldest_pending_age));
    end if;

    if v_rejected_last_hour > 0
        and v_rejected_last_hour >= v_settings.reject_share_warn * v_report.deliveries_last_hour
    then
        v_warnings := v_warnings || format(
            '%s of the last hour''s %s deliveries are rejected: see SELECT * FROM sync.quarantine;',
            v_rejected_last_hour, v_report.deliveries_last_hour);
    end if;

    if v_report.verdict = 'critical' then
        if cardinality(v_warnings) > 0 then
            v_report.reason := v_report.reason || '; also ' || array_to_string(v_warnings, '; ');
        end if;
    elsif cardinality(v_warnings) > 0 then
        v_report.verdict := 'warn';
        v_report.reason := array_to_string(v_warnings, '; ');
    else
        v_report.verdict := 'ok';
        v_report.reason := format('deliveries arrive on cadence: the last one %s ago, %s in the last hour',
            sync._say_interval(v_report.last_received_age), v_report.deliveries_last_hour);
    end if;
    return v_report;
end;
$$;
comment on function sync.health_at(timestamptz) is
    'Sync health as it was (or would be) at p_now, judged from sync.inbox and the thresholds in sync.settings: one row with a verdict (ok, warn, critical) and its reason. Counts use each delivery''s status now. Usage: SELECT * FROM sync.health_at(now() - interval ''1 hour'');';

-- sync.health: the verdict now.
create view sync.health as
select * from sync.health_at(now());
comment on view sync.health is
    'Sync health now, in one row: verdict (ok, warn, critical) and reason, last delivery and its age, traffic, backlog, rejects by code, unknown CMS fields. Thresholds: sync.settings. Usage: SELECT * FROM sync.health;';

-- sync.metric_snapshot: what the hook's /metrics reads from the database.
create type sync.metric_snapshot as (
    verdict text,
    last_received_at timestamptz,
    seconds_since_last_delivery double precision,
    pending bigint,
    quarantined bigint
);
comment on type sync.metric_snapshot is
    'The database side of the hook''s /metrics: health verdict, last delivery, backlog and quarantine sizes. Counts only, no payload.';

-- sync.metrics
-- The counts the hook's /metrics exposes, without giving the hook any table privilege.
create function sync.metrics() returns sync.metric_snapshot
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
    select h.verdict, h.last_received_at, extract(epoch from h.last_received_age)::double precision,
           h.pending, h.quarantined
    from sync.health_at(now()) as h;
$$;
comment on function sync.metrics() is
    'Health verdict, last delivery time and age in seconds, pending and quarantined counts, for the hook''s /metrics. Usage: SELECT * FROM sync.metrics();';

-- sync._preview
-- A body cut to 200 bytes and shown with non-UTF-8 and control bytes escaped, as sync.quarantine does.
create function sync._preview(p_body bytea) returns text
    language sql
    immutable
    parallel safe
as $$
    select case when length(p_body) > 200 then encode(substring(p_body from 1 for 200), 'escape') || '...'
                else encode(p_body, 'escape') end;
$$;
comment on function sync._preview(bytea) is
    'A delivery body for display: its first 200 bytes, non-UTF-8 and control bytes escaped.';

-- sync.status_report
-- Everything the hook's /status page shows, as one JSON document, bodies cut short.
create function sync.status_report(
    p_now timestamptz default now(),
    p_hours integer default 3,
    p_latest integer default 20
) returns jsonb
    language plpgsql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_since timestamptz;
begin
    if p_hours is null or p_hours not between 1 and 48 or p_latest is null or p_latest not between 1 and 500 then
        raise exception 'p_hours must be 1 to 48 and p_latest 1 to 500, got % and %', p_hours, p_latest
            using errcode = 'FS004';
    end if;
    v_since := date_trunc('minute', p_now) - make_interval(hours => p_hours) + interval '1 minute';
    return jsonb_build_object(
        'health', (select to_jsonb(h) || jsonb_build_object(
                              'last_received_age_words', sync._say_interval(h.last_received_age),
                              'oldest_pending_age_words', sync._say_interval(h.oldest_pending_age),
                              'typical_interval_words', sync._say_interval(h.typical_interval))
                   from sync.health_at(p_now) as h),
        'settings', (select jsonb_build_object(
                         'expected_interval_seconds', extract(epoch from s.expected_interval),
                         'silence_warn_after', sync._say_interval(s.silence_warn_after),
                         'silence_critical_after', sync._say_interval(s.silence_critical_after),
                         'apply_on_receipt', s.apply_on_receipt)
                     from sync.settings as s),
        'per_minute', (
            select jsonb_agg(jsonb_build_object('minute', m.minute, 'deliveries', coalesce(c.deliveries, 0),
                                                'rejected', coalesce(c.rejected, 0)) order by m.minute)
            from generate_series(v_since, date_trunc('minute', p_now), interval '1 minute') as m(minute)
            left join (select date_trunc('minute', received_at) as minute, count(*) as deliveries,
                              count(*) filter (where status in ('rejected', 'discarded')) as rejected
                       from sync.inbox
                       where received_at >= v_since and received_at <= p_now
                       group by 1) as c using (minute)),
        'latest', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'inbox_id', l.id, 'received_at', l.received_at, 'fragrance_id', l.fragrance_id,
                       'status', l.status, 'content_type', l.content_type,
                       'codes', (select coalesce(jsonb_agg(distinct r ->> 'code'), '[]')
                                 from jsonb_array_elements(l.reasons) as r),
                       'body_preview', sync._preview(l.body)) order by l.id desc)
            from (select * from sync.inbox where received_at <= p_now order by id desc limit p_latest) as l),
            '[]'),
        'rejects', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'code', g.code, 'deliveries', g.deliveries, 'example_inbox_id', g.example_id,
                       'example_message', g.message, 'example_body', sync._preview(e.body))
                       order by g.deliveries desc, g.code)
            from (select r ->> 'code' as code, count(distinct i.id) as deliveries, max(i.id) as example_id,
                         (array_agg(r ->> 'message' order by i.id desc))[1] as message
                  from sync.inbox as i
                  cross join lateral jsonb_array_elements(i.reasons) as r
                  where i.status = 'rejected' and i.received_at <= p_now and r ->> 'severity' = 'error'
                  group by r ->> 'code') as g
            join sync.inbox as e on e.id = g.example_id),
            '[]'),
        'unknown_fields', coalesce((
            select jsonb_agg(to_jsonb(u) order by u.last_seen desc) from sync.unknown_field as u),
            '[]'));
end;
$$;
comment on function sync.status_report(timestamptz, integer, integer) is
    'The data of the hook''s /status page as one jsonb document: health, settings, deliveries per minute over the last p_hours, the p_latest latest deliveries, quarantined deliveries by error code with the latest example, and unknown CMS fields. Bodies are cut to 200 bytes; the page escapes everything.';

-- Grants, beside what they grant: DBAs read health; the hook gets counts and the page data only.
grant select on sync.health to sync_dba;
grant execute on function
    sync.health_at(timestamptz),
    sync.metrics(),
    sync.status_report(timestamptz, integer, integer)
    to sync_dba;
grant execute on function
    sync.metrics(),
    sync.status_report(timestamptz, integer, integer)
    to sync_hook;

-- 0007's ALTER DEFAULT PRIVILEGES IN SCHEMA cannot take EXECUTE away from PUBLIC
-- (per-schema defaults only add to the global ones), so every new function is
-- executable by anyone with USAGE on sync, the hook included. Take it away here.
revoke execute on all functions in schema sync from public;
