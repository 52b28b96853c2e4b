-- Retention: purge old applied and ignored deliveries, findings long closed,
-- deliveries discarded long ago, and old runs of the jobs.
--
-- Every delivery stays in sync.inbox until purged. The purge keeps what still
-- needs a person (rejected) or the merge (pending), and discarded deliveries
-- for sync.settings.discarded_purge_after after they were discarded; the
-- history has no foreign key to the inbox and keeps everything, and
-- sync.field_version keeps inbox ids as plain numbers, and beside them the
-- positions a repair's or a revert's writes count at, so ordering survives
-- any purge. What grows for good (the history, the rules' versions) and how
-- fast: docs/operations.md, "What grows".

-- sync_private.lost_to_a_kept_delivery
-- Whether a delivery left a field as stale to a later-received one that was merged before it and is still in the inbox.
create function sync_private.lost_to_a_kept_delivery(p_delivery sync.inbox) returns boolean
    language sql
    stable
as $$
    -- It was stale to one merged before it, so received before it was
    -- merged: only those are looked for (by inbox_fragrance_idx), not every
    -- later change of the fragrance, which would keep it for good on a
    -- fragrance the CMS keeps editing. A delivery with no stale field costs
    -- nothing. Inlined into the purge's delete (no SET), not called per row.
    select p_delivery.stale_fields <> '{}'
       and exists (select from sync.inbox as l
                   where l.fragrance_id = p_delivery.fragrance_id
                     and l.id > p_delivery.id
                     and l.status = 'applied'
                     and l.applied_fields && p_delivery.stale_fields
                     and l.received_at <= p_delivery.processed_at);
$$;
comment on function sync_private.lost_to_a_kept_delivery(sync.inbox) is
    'Whether the delivery left a field as stale (stale_fields) that a delivery of the same fragrance, received after it but before it was merged, applied and is still in the inbox: sync.revert of that one reads it (the value before that change, by receipt order, is the stale one''s), so sync.purge_applied keeps it until that one is purged.';

-- sync_private.reach_back
-- The moment p_age before p_from, counted in UTC: a day is 24 hours whatever the session's TimeZone.
create function sync_private.reach_back(p_from timestamptz, p_age interval) returns timestamptz
    language sql
    immutable
    parallel safe
as $$
    -- Every age-based cutoff of the purges (and of the health's snapshot age)
    -- goes through here, so they all count alike. In the session's TimeZone,
    -- timestamptz - '1 day' is the same wall-clock time the day before, 23 or
    -- 25 hours on a day the clocks change: in Europe/Paris on 2027-03-28 a
    -- purge_after of '30 days' reached back 30 days less an hour, and the
    -- scheduled purge deleted findings, discarded deliveries and job runs an
    -- hour early, or kept them an hour longer in October (hostile review).
    -- UTC has no such day; a month is still a calendar month. Beyond the
    -- calendar it raises datetime_field_overflow (22008), for the caller to say so.
    select (p_from at time zone 'UTC' - p_age) at time zone 'UTC';
$$;
comment on function sync_private.reach_back(timestamptz, interval) is
    'The moment p_age before p_from, counted in UTC so that a day is 24 hours whatever the session''s TimeZone (a month a calendar month); raises 22008 beyond the calendar. Every age-based cutoff of the purges (sync.purge_applied, sync_private.purge_closed_findings, purge_discarded, purge_job_runs, purge_cron_run_details) and sync.health_at''s snapshot age use it.';

-- sync.purge_applied
-- Deletes applied and ignored deliveries received and processed more than p_older_than ago; returns how many.
create function sync.purge_applied(
    p_older_than interval,
    p_force boolean default false,
    p_limit integer default null
) returns bigint
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_count bigint;
    v_cutoff timestamptz;
    v_last_webhook timestamptz;
begin
    if p_older_than is null then
        raise exception 'p_older_than must be an age of zero or more, got null'
            using errcode = 'FS055', hint = 'For example SELECT sync.purge_applied(''90 days'');';
    end if;
    -- Judged by the moment it reaches back to, not by comparing intervals:
    -- those count a month as 30 days, the subtraction in calendar months, so
    -- '-1 mon 31 days' compared as a day and purged up to now (hostile review).
    --
    -- In UTC, whatever the session's TimeZone (sync_private.reach_back):
    -- '1 day' reached back 23 hours in Europe/Paris on 2027-03-28 and '23
    -- hours 30 minutes' passed the check below without p_force (review).
    begin
        v_cutoff := sync_private.reach_back(now(), p_older_than);
    exception when datetime_field_overflow then
        raise exception 'p_older_than reaches back beyond the calendar, got %', p_older_than
            using errcode = 'FS055', hint = 'For example SELECT sync.purge_applied(''90 days'');';
    end;
    if v_cutoff > now() then
        raise exception 'p_older_than must be an age of zero or more, got % (that is after now)', p_older_than
            using errcode = 'FS055', hint = 'For example SELECT sync.purge_applied(''90 days'');';
    end if;
    -- 24 hours, not '1 day': the latter is the session's calendar day too.
    if v_cutoff > now() - interval '24 hours' and not coalesce(p_force, false) then
        raise exception 'refusing to purge deliveries younger than a day (asked for %, back to %)', p_older_than, v_cutoff
            -- The hint repeats the call asked for: it once said '1 hour'
            -- whatever was asked, and run as it stood purged more than the
            -- DBA meant ('12 hours' asked, an hour kept; hostile review).
            using errcode = 'FS055',
                  hint = format('Recent deliveries are what you look at when something goes wrong. '
                      'If you mean it: SELECT sync.purge_applied(%L%s, p_force => true);',
                      p_older_than::text, coalesce(', p_limit => ' || p_limit, ''));
    end if;
    if p_limit is not null then
        perform sync_private.check_limit(p_limit, format('SELECT sync.purge_applied(%L%s, p_limit => 1000);',
                                                         p_older_than::text,
                                                         case when p_force then ', p_force => true' else '' end));
    end if;
    -- Old by both clocks: a spooled delivery keeps the moment the hook received
    -- it, which an outage can put days before the drain that stored and
    -- applied it. Purged at once, its key would be gone, and a drain replayed
    -- after a crash would store it again, as a new and newer delivery over
    -- what came since (hostile review). processed_at keeps it p_older_than.
    --
    -- And a delivery merged after a later-received one that set the same
    -- field (stale on it) stays as long as that one does: sync.revert of
    -- the later one reads it to know that the value before the change, by
    -- receipt order, is the stale one's, never written. Purged oldest first
    -- (a chunk of sync.purge_inbox, a p_limit here), it went first, and a
    -- revert in between put back the value from before both (hostile
    -- review). Only those received before it was merged are waited for
    -- (sync_private.lost_to_a_kept_delivery): as old by both clocks, they go
    -- in the same purge, and it at the next.
    --
    -- The moment of the latest webhook deleted is kept: sync.health judges
    -- the CMS's silence by its last delivery, and a silence longer than
    -- purge_after (a day at least) outlived it. Found no more, it read "no
    -- delivery has ever been received", a warning, where it was critical
    -- (hostile review).
    if p_limit is null then
        with gone as (
            delete from sync.inbox as i
            where i.received_at < v_cutoff
              and coalesce(i.processed_at, i.received_at) < v_cutoff
              and i.status in ('applied', 'ignored')
              and not sync_private.lost_to_a_kept_delivery(i)
            returning i.received_at, i.origin)
        select count(*), max(g.received_at) filter (where g.origin = 'webhook')
        into v_count, v_last_webhook
        from gone as g;
    else
        -- Oldest first, so a big backlog can go in short transactions:
        -- call again until it returns 0.
        with gone as (
            delete from sync.inbox
            where id = any (array(
                select c.id from sync.inbox as c
                where c.received_at < v_cutoff
                  and coalesce(c.processed_at, c.received_at) < v_cutoff
                  and c.status in ('applied', 'ignored')
                  and not sync_private.lost_to_a_kept_delivery(c)
                order by c.received_at
                limit p_limit))
            returning received_at, origin)
        select count(*), max(g.received_at) filter (where g.origin = 'webhook')
        into v_count, v_last_webhook
        from gone as g;
    end if;
    if v_last_webhook is not null then
        insert into sync_private.purged_webhook as w (last_received_at) values (v_last_webhook)
        on conflict (only_row) do update
        set last_received_at = greatest(w.last_received_at, excluded.last_received_at);
    end if;
    return v_count;
end;
$$;
comment on function sync.purge_applied(interval, boolean, integer) is
    'Deletes applied and ignored deliveries received and processed more than p_older_than ago and returns the count; keeps rejected, discarded and pending ones, one left as stale while the delivery it lost to stays (sync_private.lost_to_a_kept_delivery: a revert of that one reads it), all of sync.fragrance_history, and the receipt time of the latest webhook deleted (sync.health''s last delivery). Ages under 24 hours need p_force => true (else FS055); ages are counted in UTC, so a day is 24 hours whatever the session''s TimeZone; p_limit deletes at most that many, oldest first. Usage: SELECT sync.purge_applied(''90 days''); or SELECT sync.purge_applied(''90 days'', p_limit => 100000);';

-- sync_private.purge_closed_findings
-- Deletes findings closed more than p_older_than ago, at most p_limit of them (null: all); returns how many.
create function sync_private.purge_closed_findings(p_older_than interval, p_limit integer default null)
    returns bigint
    language plpgsql
as $$
declare
    v_count bigint;
    v_cutoff timestamptz := sync_private.reach_back(now(), p_older_than);
begin
    -- Called by the scheduled purge with sync.settings.purge_after, which the
    -- settings' own check keeps a day or more in every part. Open findings
    -- stay whatever their age: they describe the catalog now. A closed one
    -- only says what got fixed, and without a purge each fix kept a row for
    -- good (about one per CMS change that opens or closes a warning).
    if p_limit is null then
        delete from sync.finding as f
        where f.closed_at < v_cutoff;
    else
        -- Oldest first, by finding_closed_at_idx: one bounded transaction of
        -- sync.purge_inbox.
        delete from sync.finding as f
        where f.id = any (array(
            select c.id from sync.finding as c
            where c.closed_at < v_cutoff
            order by c.closed_at
            limit p_limit));
    end if;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;
comment on function sync_private.purge_closed_findings(interval, integer) is
    'Deletes the findings of sync.finding closed more than p_older_than ago, at most p_limit of them, oldest first (null: all), and returns the count; open findings stay. The scheduled purge (sync.purge_inbox, sync.run_job(''purge_inbox'')) calls it with sync.settings.purge_after.';

-- sync_private.purge_discarded
-- Deletes deliveries discarded more than p_older_than ago, at most p_limit of them (null: all); returns how many.
create function sync_private.purge_discarded(p_older_than interval, p_limit integer default null)
    returns bigint
    language plpgsql
as $$
declare
    v_count bigint;
    v_cutoff timestamptz := sync_private.reach_back(now(), p_older_than);
begin
    -- A discarded delivery is a DBA's decision (sync.discard) and its
    -- evidence: kept sync.settings.discarded_purge_after (a year by default)
    -- from the moment it was discarded, not received, so a reject of last
    -- year written off today is still there to answer for it. Rejected
    -- deliveries are never purged: they still need a person.
    --
    -- The rows are chosen by id, then judged again as they are deleted: a
    -- DBA's sync.retry of an old discard (ADR 0039) may hold one as the
    -- purge reaches it, and the DELETE, by id alone, waited for it and then
    -- deleted what it had become, refused again and back in the quarantine
    -- or just applied (hostile review). PostgreSQL reads the row again
    -- after the wait (READ COMMITTED), so the status and moment written
    -- here decide on the row as the retry left it.
    delete from sync.inbox as i
    where i.id = any (array(
        select d.id from sync.inbox as d
        where d.status = 'discarded' and d.discarded_at < v_cutoff
        order by d.discarded_at
        limit p_limit))
      and i.status = 'discarded' and i.discarded_at < v_cutoff;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;
comment on function sync_private.purge_discarded(interval, integer) is
    'Deletes the deliveries a DBA discarded more than p_older_than ago (sync.inbox.discarded_at), at most p_limit of them, oldest first (null: all), and returns the count. The scheduled purge calls it with sync.settings.discarded_purge_after.';

-- sync_private.purge_job_runs
-- Deletes runs of the jobs started more than p_older_than ago, but each job's last and last successful run; returns how many.
create function sync_private.purge_job_runs(p_older_than interval, p_limit integer default null)
    returns bigint
    language plpgsql
as $$
declare
    v_count bigint;
    v_cutoff timestamptz := sync_private.reach_back(now(), p_older_than);
begin
    -- The scheduler's own log: three runs a day, each with its counts (the
    -- catalog check's per rule, the drift check's per field), kept for good
    -- before. The last run of each job stays whatever its age, so
    -- sync.schedule() still says when a job disabled for months last ran,
    -- and so does its last successful one: the status page says since when
    -- the catalog was checked, and a check failing for months must not
    -- turn that into "never".
    delete from sync.job_run as r
    where r.id = any (array(
        select o.id from sync.job_run as o
        where o.started_at < v_cutoff
          and o.id < (select max(l.id) from sync.job_run as l where l.job = o.job)
          and o.id <> coalesce((select max(k.id) from sync.job_run as k
                                where k.job = o.job and k.status = 'ok'), 0)
        order by o.id
        limit p_limit));
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;
comment on function sync_private.purge_job_runs(interval, integer) is
    'Deletes the runs of sync.job_run started more than p_older_than ago, at most p_limit of them, oldest first (null: all), keeping the last run and the last successful run of each job whatever their age; returns the count. The scheduled purge calls it with sync.settings.purge_after.';

-- sync_private.purge_cron_run_details
-- Deletes pg_cron's log rows of our jobs that started more than p_older_than ago, at most p_limit (null: all); returns how many.
create function sync_private.purge_cron_run_details(p_older_than interval, p_limit integer default null)
    returns bigint
    language plpgsql
as $$
declare
    v_count bigint;
begin
    -- pg_cron logs every run in cron.job_run_details and never purges it;
    -- its documentation has a site schedule a delete. Ours are three rows a
    -- day, kept for good, beside sync.job_run, which says the same and is
    -- purged: this purge takes ours with the same age. Only ours, by the
    -- jobids pg_cron gave our jobs (sync_private.pg_cron_job, kept after a
    -- job is disabled): other jobs' rows are their owners' business. Taken
    -- by their command too, they went with ours where another job ran the
    -- same text (review). Rows of a job unscheduled before the sync kept
    -- its jobids (migration 0059) stay, as another job's would: their jobid
    -- is in neither table, and database, user name and command are what a
    -- site's own job running our command also has (docs/operations.md says
    -- so, and how a DBA who knows which jobids were ours deletes them).
    -- Where pg_cron is not here, or we may not use it or delete from its
    -- log (pg_cron grants that to everyone, a managed server may not),
    -- nothing.
    if sync_private.pg_cron_refusal() is not null
       or to_regclass('cron.job_run_details') is null
       or not pg_catalog.has_table_privilege('cron.job_run_details', 'delete') then
        return 0;
    end if;
    execute $sql$
        delete from cron.job_run_details as d
        where d.runid = any (array(
            select o.runid from cron.job_run_details as o
            where o.start_time < $1
              and o.jobid in (select p.jobid from sync_private.pg_cron_job as p
                              join pg_catalog.pg_extension as e on e.oid = p.extension
                              where e.extname = 'pg_cron')
            order by o.runid
            limit $2))
    $sql$ using sync_private.reach_back(now(), p_older_than), p_limit;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;
comment on function sync_private.purge_cron_run_details(interval, integer) is
    'Deletes the rows of pg_cron''s log (cron.job_run_details) of our jobs (the jobids of sync_private.pg_cron_job) that started more than p_older_than ago, at most p_limit, oldest first (null: all), and returns the count; 0 where pg_cron is not installed here or its log may not be deleted from. Other jobs'' rows stay. The scheduled purge calls it with sync.settings.purge_after.';

-- sync_private.purge_due
-- One pass of the scheduled purge: each kind of row past its retention, at most p_limit of each (null: all).
create function sync_private.purge_due(p_limit integer) returns jsonb
    language plpgsql
as $$
declare
    v_settings sync.settings;
begin
    -- What the purge_inbox job deletes, and its one list of counts: sync.run_job
    -- calls it once (null, one transaction), sync.purge_inbox_step once per
    -- transaction of sync.purge_inbox.
    select * into v_settings from sync.settings;
    return jsonb_build_object(
        'deleted', sync.purge_applied(v_settings.purge_after, p_limit => p_limit),
        'closed_findings_deleted', sync_private.purge_closed_findings(v_settings.purge_after, p_limit),
        'discarded_deleted', sync_private.purge_discarded(v_settings.discarded_purge_after, p_limit),
        'job_runs_deleted', sync_private.purge_job_runs(v_settings.purge_after, p_limit),
        'cron_run_details_deleted', sync_private.purge_cron_run_details(v_settings.purge_after, p_limit));
end;
$$;
comment on function sync_private.purge_due(integer) is
    'Deletes what the purge_inbox job purges, at most p_limit rows of each kind (null: all): applied and ignored deliveries and findings closed more than sync.settings.purge_after ago, deliveries discarded more than discarded_purge_after ago, runs of the jobs older than purge_after but each job''s last and last successful run, and pg_cron''s log rows of our jobs older than purge_after where pg_cron is here. Returns the counts: {"deleted", "closed_findings_deleted", "discarded_deleted", "job_runs_deleted", "cron_run_details_deleted"}.';

-- sync_private.refuse_a_second_purge
-- Raises FS084 when a run of the purge is going; else holds the purge_inbox row of sync.job to the end of this transaction.
create function sync_private.refuse_a_second_purge() returns void
    language plpgsql
as $$
declare
    v_run sync.job_run;
begin
    -- Two purges at once: the second waited on the first's rows, found them
    -- deleted, and ended "ok" with nothing deleted while the first still had
    -- chunks to go; a DBA who read it took the purge for done (hostile
    -- review). The purge_inbox row of sync.job is the turnstile: every start
    -- of a purge (a step that starts sync.purge_inbox, sync.run_job's
    -- purge, which holds it to its end) locks it, so a start made while
    -- another one commits sees that one's run. A run of the procedure that
    -- is going holds its session lock and is refused against; one whose
    -- backend let it go was just recorded interrupted and is not.
    perform from sync.job as j where j.name = 'purge_inbox' for no key update;
    select * into v_run from sync.job_run as r
    where r.job = 'purge_inbox' and r.status = 'running'
      and sync_private.job_run_alive(r.backend_pid, r.session_lock)
    order by r.id
    limit 1;
    -- A run whose CALL was cancelled between two steps holds its lock while
    -- its session stays (a psql left open), outside any transaction: it is
    -- over, and sync.schedule() says interrupted. Told "already running,
    -- let it end", a DBA waited for a run that never would, and every purge,
    -- the nightly one too, was refused meanwhile (hostile review). Still
    -- refused, since only the lock is sure (a step's COMMIT is outside a
    -- transaction for some microseconds), but saying whose session to end.
    if found and sync_private.job_run_status(v_run.status, v_run.backend_pid, v_run.session_lock) = 'interrupted' then
        raise exception 'the purge''s run % was interrupted (cancelled between two of its steps), and its session, backend %, still holds it',
                        v_run.id, v_run.backend_pid
            using errcode = 'FS086',
                  detail = 'That session is open but runs no purge; until it ends, no purge can start. This one purged nothing and left no run.',
                  hint = format('End that session: close the psql that ran it, or SELECT pg_terminate_backend(%s); '
                      'then CALL sync.purge_inbox(); goes on where it stopped.', v_run.backend_pid);
    end if;
    if found then
        raise exception 'the purge is already running: run % since %, by backend %',
                        v_run.id, v_run.started_at, v_run.backend_pid
            using errcode = 'FS084',
                  detail = 'Two purges at once would both wait on the same rows; this one purged nothing and left no run.',
                  hint = 'Let that run end, and watch it: SELECT * FROM sync.schedule() WHERE job = ''purge_inbox''; '
                      || 'it purges all that is due, so no second CALL is needed.';
    end if;
end;
$$;
comment on function sync_private.refuse_a_second_purge() is
    'Locks the purge_inbox row of sync.job until the end of the transaction and raises FS084 when a run of sync.purge_inbox is going (running, its backend holding its session lock), FS086 when that backend holds it outside any transaction (its CALL was cancelled between two steps and its session stays: the hint names it): the start of each purge (sync.purge_inbox_step, sync.run_job(''purge_inbox'')) calls it, so two purges never run at once.';

-- sync.purge_inbox_step
-- One transaction of sync.purge_inbox: starts its run (p_run_id null), or purges one chunk and records it in the run.
create function sync.purge_inbox_step(p_run_id bigint, p_limit integer) returns sync.job_run
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_run sync.job_run;
    v_counts jsonb;
    v_state text;
    v_message text;
begin
    -- sync.purge_inbox commits after each call: the run row is there from
    -- the start (sync.schedule() shows it running, with its counts so far),
    -- and each chunk's counts are added to it as that chunk commits.
    perform sync_private.check_limit(p_limit, 'CALL sync.purge_inbox(10000);');
    if p_run_id is null then
        -- The run holds a session lock until it ends (sync.purge_inbox
        -- releases it): cancelled between its steps, or with its session
        -- gone, a run row once read running for good (hostile review). Taken
        -- before the row commits, so no running row is ever seen without it.
        perform sync_private.end_interrupted_runs();
        perform sync_private.refuse_a_second_purge();
        insert into sync.job_run (job, detail, backend_pid, session_lock)
        values ('purge_inbox', jsonb_build_object('deleted', 0, 'closed_findings_deleted', 0,
                                                  'discarded_deleted', 0, 'job_runs_deleted', 0,
                                                  'cron_run_details_deleted', 0, 'transactions', 0),
                pg_catalog.pg_backend_pid(), sync_private.take_session_lock())
        returning * into v_run;
        return v_run;
    end if;
    select * into v_run from sync.job_run as r where r.id = p_run_id for update;
    -- Only the session that started the run steps it: another one's step
    -- purged beside the procedure, ended the run ok while it still had
    -- chunks to go, and the procedure's next step failed here (hostile
    -- review). The run's backend is the procedure's (it holds the run's lock).
    if not found or v_run.job <> 'purge_inbox' or v_run.status <> 'running'
        or v_run.backend_pid is distinct from pg_catalog.pg_backend_pid()
    then
        raise exception 'job run % is not a running purge_inbox run of this session', p_run_id
            using errcode = 'FS081',
                  hint = 'CALL sync.purge_inbox(); starts a run and takes it to its end.';
    end if;
    begin
        v_counts := sync_private.purge_due(p_limit);
        update sync.job_run as r
        set detail = (select jsonb_object_agg(k.key, coalesce((v_run.detail ->> k.key)::bigint, 0) + k.value::bigint)
                      from jsonb_each_text(v_counts) as k)
                     || jsonb_build_object('transactions', coalesce((v_run.detail ->> 'transactions')::bigint, 0) + 1),
            -- Done once no kind filled its chunk: nothing of it is left.
            status = case when exists (select from jsonb_each_text(v_counts) as k where k.value::bigint >= p_limit)
                          then 'running' else 'ok' end,
            finished_at = case when exists (select from jsonb_each_text(v_counts) as k where k.value::bigint >= p_limit)
                               then null else clock_timestamp() end
        where r.id = v_run.id
        returning * into v_run;
    exception when query_canceled or others then
        -- Recorded, not raised, as sync.run_job records a failed job; the
        -- chunks before this one stay purged and counted. A cancel
        -- (pg_cancel_backend, a statement_timeout) is no error "others"
        -- catches, so it is named; it lands here nearly always, in the
        -- chunk. Its run is interrupted, not failed, and sync.purge_inbox
        -- raises the cancel again once that record commits.
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
        update sync.job_run as r
        set status = case when v_state = '57014' then 'interrupted' else 'failed' end,
            finished_at = clock_timestamp(),
            detail = v_run.detail || jsonb_build_object('sqlstate', v_state, 'error', v_message)
        where r.id = v_run.id
        returning * into v_run;
    end;
    return v_run;
end;
$$;
comment on function sync.purge_inbox_step(bigint, integer) is
    'One transaction of the procedure sync.purge_inbox: with p_run_id null, records runs whose session ended as interrupted (sync_private.end_interrupted_runs) and a new running run of purge_inbox in sync.job_run, its backend and a session lock it holds until the procedure ends; else purges at most p_limit rows of each kind (sync_private.purge_due) and adds the counts to that run (FS081 unless it is a running run this session started), which ends ok once a chunk finds less than p_limit of every kind left, failed with the error, or interrupted when the chunk is cancelled. Call the procedure rather than this.';

-- sync.purge_inbox
-- The scheduled purge: what run_job('purge_inbox') deletes, in transactions of at most p_limit rows of each kind.
create procedure sync.purge_inbox(p_limit integer default 10000, inout p_status text default null)
    language plpgsql
as $$
declare
    v_run sync.job_run;
begin
    -- sync.run_job is a function, and a function runs in one transaction:
    -- the first purge after a year deleted millions of rows in one, about
    -- 1 GB of WAL that replicas and archiving took at once, and locks and
    -- dead rows held until its end. A procedure may commit between chunks;
    -- only one without SECURITY DEFINER or SET may (PostgreSQL), so this one
    -- runs as its caller, pg_cron's job owner or a sync_dba login, and does
    -- its work through sync.purge_inbox_step, which runs as the owner. Call it
    -- on its own, outside a transaction block (CALL at psql's prompt, psql -c,
    -- pg_cron's command); in one, its first COMMIT fails (2D000).
    v_run := sync.purge_inbox_step(null, p_limit);
    commit;
    while v_run.status = 'running' loop
        v_run := sync.purge_inbox_step(v_run.id, p_limit);
        commit;
    end loop;
    -- Released once the end is committed: until then the run reads running.
    -- A cancel that lands outside a chunk (between two steps) leaves the
    -- row running and the lock held until this session ends, outside any
    -- transaction: the run reads interrupted (sync_private.job_run_status),
    -- and is recorded so once the lock is gone.
    perform pg_catalog.pg_advisory_unlock(v_run.session_lock);
    if v_run.status = 'interrupted' then
        -- Raised as the cancel it was, after its record committed: the
        -- caller (pg_cron, psql, a statement_timeout) sees it did not finish.
        raise exception '%', v_run.detail ->> 'error'
            using errcode = v_run.detail ->> 'sqlstate',
                  -- Schema-qualified: this procedure runs with its caller's
                  -- search_path (it may carry no SET), so an unqualified
                  -- format could be anyone's format(text, bigint, text).
                  detail = pg_catalog.format('The purge''s run %s is recorded as interrupted in sync.job_run, after %s transactions; what they purged stays purged.',
                                  v_run.id, v_run.detail ->> 'transactions'),
                  hint = 'CALL sync.purge_inbox(); goes on where it stopped.';
    end if;
    p_status := v_run.status;
end;
$$;
comment on procedure sync.purge_inbox(integer, text) is
    'The scheduled purge (what pg_cron and the cron line run): deletes what sync.run_job(''purge_inbox'') deletes (applied and ignored deliveries and findings closed more than sync.settings.purge_after ago, deliveries discarded more than discarded_purge_after ago, job runs older than purge_after but each job''s last and last successful run, and, where pg_cron is here, the rows of its log cron.job_run_details of our jobs older than purge_after), committing after every p_limit rows of each kind, and records the run in sync.job_run; returns its status (ok, failed). Cancelled in a chunk, it records the run as interrupted and raises the cancel; a run whose session ends reads interrupted. Call it outside a transaction block. Usage: CALL sync.purge_inbox();';
