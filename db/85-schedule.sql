-- Schedule: what runs without a person (the catalog check, the inbox purge,
-- the drift check), and when each last ran.
--
-- sync.job holds the schedules (a DBA changes them with one UPDATE) and
-- sync.run_job() runs a job and records the run in sync.job_run (the purge
-- runs on schedule as the procedure sync.purge_inbox, which commits between
-- chunks and records its run the same way). Where the server has pg_cron in
-- this database, the jobs are registered with it as fragrance_sync.<job> on
-- every code load and every change of sync.job; elsewhere the cron lines of
-- docs/operations.md run the same commands (sync_private.job_command).

-- sync_private.take_session_lock
-- Takes a session advisory lock on a fresh random key, held by this backend until released or its session ends; the key.
create function sync_private.take_session_lock() returns bigint
    language plpgsql
    volatile
as $$
declare
    v_key bigint;
begin
    -- Random, not the run's id: any login may take any advisory lock, and
    -- one that took the next run's key first would make that run read
    -- interrupted from its start (sync_private.lock_names says why the
    -- merge uses none). A key another session holds is passed over.
    loop
        v_key := ('x' || pg_catalog.left(pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint;
        exit when pg_catalog.pg_try_advisory_lock(v_key);
    end loop;
    return v_key;
end;
$$;
comment on function sync_private.take_session_lock() is
    'Takes a session-level advisory lock on a random key (held until pg_advisory_unlock or the end of the session) and returns the key: how a run of a job that commits by steps shows it still has a backend (sync_private.job_run_alive).';

-- sync_private.job_run_alive
-- Whether the backend that runs a job run still holds its session lock.
create function sync_private.job_run_alive(p_backend_pid integer, p_session_lock bigint) returns boolean
    language sql
    stable
as $$
    -- pg_locks, not pg_stat_activity: PostgreSQL shows a session's state
    -- and start only to its own login and to members of pg_read_all_stats,
    -- and a pid alone is reused. A lock of this backend on this key is
    -- this run's: another login may take the key once it sees it, but not
    -- as this pid. int8 advisory keys show as classid (the high 32 bits),
    -- objid (the low ones) and objsubid 1.
    select p_backend_pid is not null and p_session_lock is not null
       and exists (select from pg_catalog.pg_locks as l
                   where l.locktype = 'advisory' and l.granted and l.pid = p_backend_pid
                     and l.database = (select d.oid from pg_catalog.pg_database as d
                                       where d.datname = pg_catalog.current_database())
                     and l.classid = ((p_session_lock >> 32) & 4294967295)::oid
                     and l.objid = (p_session_lock & 4294967295)::oid
                     and l.objsubid = 1);
$$;
comment on function sync_private.job_run_alive(integer, bigint) is
    'Whether backend p_backend_pid still holds the session advisory lock p_session_lock (sync.job_run.backend_pid and session_lock): false once its session ended or it let the run go.';

-- sync_private.job_run_status
-- A run's status as it is now: a running run whose backend let it go, or left it between two steps, is interrupted.
create function sync_private.job_run_status(p_status text, p_backend_pid integer, p_session_lock bigint) returns text
    language sql
    stable
as $$
    -- A run of sync.purge_inbox is in a transaction from its first step to
    -- its end: the procedure starts the next one as it commits the last. A
    -- cancel between two steps (in a COMMIT, before a chunk) ends the CALL
    -- with nothing to record it, while the session, and its session lock,
    -- stay: a psql prompt left open kept such a run reading running until
    -- it closed (hostile review). So a run reads running only while its
    -- backend holds both the run's lock and a transaction (its own
    -- virtualxid lock, granted from a transaction's start to its end). Within
    -- a COMMIT of the procedure, for some microseconds, it holds no
    -- transaction: a read then says interrupted, and the next says running
    -- again. That is why only the lock decides what is recorded
    -- (sync_private.end_interrupted_runs): the run ends there only once
    -- its backend let the lock go.
    select case when p_status = 'running'
                 and not (sync_private.job_run_alive(p_backend_pid, p_session_lock)
                          and exists (select from pg_catalog.pg_locks as l
                                      where l.pid = p_backend_pid and l.locktype = 'virtualxid'
                                        and l.granted and l.virtualxid = l.virtualtransaction))
                then 'interrupted' else p_status end;
$$;
comment on function sync_private.job_run_status(text, integer, bigint) is
    'The status of a run of a job now (sync.job_run.status, backend_pid, session_lock): as recorded, but interrupted for a running run whose backend no longer holds it (its session ended) or holds it outside any transaction (a cancel came between two steps of the purge and its session stayed). What sync.schedule() and sync.health show.';

-- sync_private.end_interrupted_runs
-- Records as interrupted the running runs whose backend let them go.
create function sync_private.end_interrupted_runs() returns void
    language sql
as $$
    -- finished_at stays null: nobody saw when the session ended. Only runs
    -- whose backend let the lock go: one that holds it outside a transaction
    -- may be between two commits (sync_private.job_run_status).
    update sync.job_run as r
    set status = 'interrupted',
        detail = coalesce(r.detail, '{}') || jsonb_build_object(
            'error', 'its session ended (or a cancel came between two steps) before it finished')
    where r.status = 'running'
      and not sync_private.job_run_alive(r.backend_pid, r.session_lock);
$$;
comment on function sync_private.end_interrupted_runs() is
    'Records in sync.job_run, as interrupted, the running runs whose backend no longer holds them; sync.run_job and the start of each purge run it.';

-- sync.run_job
-- Runs one job now and records the run: what it did, or why it failed.
create function sync.run_job(p_name text) returns sync.job_run
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    -- No JIT: each job's statements run once a night, and their plans cost
    -- the whole catalog, past JIT's thresholds from about 100,000
    -- fragrances. At 200,000, compiling the drift check's took 0.37 s of
    -- its 1.9 s (1.54 s without; measured side by side, medians of 3).
    set jit = off
as $$
declare
    v_run sync.job_run;
    v_detail jsonb;
    v_summary jsonb;
    v_message text;
    v_state text;
begin
    if not exists (select from sync.job as j where j.name = p_name) then
        raise exception 'there is no job %', sync_private.show_argument(p_name)
            using errcode = 'FS080', hint = 'The jobs: SELECT * FROM sync.schedule();';
    end if;
    perform sync_private.end_interrupted_runs();
    if p_name = 'purge_inbox' then
        -- Raised, not recorded: a refused purge did nothing, and a failed
        -- run beside the one going would read as the purge failing.
        perform sync_private.refuse_a_second_purge();
    end if;
    insert into sync.job_run (job) values (p_name) returning * into v_run;
    -- The run row stays whatever happens below; a failure undoes only the job's work.
    begin
        case p_name
            when 'check_catalog' then
                select coalesce(jsonb_agg(to_jsonb(c)), '[]') into v_detail from sync.check_catalog() as c;
            when 'purge_inbox' then
                -- All in this one transaction; the schedule calls the procedure
                -- sync.purge_inbox instead, which commits between chunks.
                v_detail := sync_private.purge_due(null) || jsonb_build_object('transactions', 1);
            when 'check_drift' then
                -- The snapshot stays the one the figures are of: a load
                -- waits for the check (its lock conflicts with share), which
                -- reads the snapshot in three statements below.
                lock table sync.cms_snapshot in share mode;
                -- With no snapshot there is nothing to compare: "no drift" would be false.
                if not exists (select from sync.cms_snapshot) then
                    raise exception 'no CMS snapshot is loaded, so drift cannot be checked'
                        using errcode = 'FS050',
                              -- Not sync.load_snapshot_from_server(), once named here: it is granted to
                              -- nobody, and a DBA who followed the hint got a permission error.
                              hint = 'Load a CMS export first (docs/drift-and-undo.md, "Finding and repairing drift"): '
                                  || 'psql -v file=cms.json -f sql/load-snapshot-json.sql, or SELECT sync.load_snapshot(''[...]''::jsonb);';
                end if;
                -- And the figures the status page shows, with the snapshot
                -- they are of: the page reads them here rather than compute
                -- the drift at every load (sync_private.catalog_as_checked).
                -- Both from one read of the drift (the summary): the figures
                -- read it again once, and the check took twice as long.
                v_summary := coalesce((select jsonb_agg(to_jsonb(d)) from sync.drift_summary as d), '[]');
                select jsonb_build_object(
                    'snapshot_taken_at', (select min(s.taken_at) from sync.cms_snapshot as s),
                    'drift', v_summary,
                    'catalog', sync_private.catalog_in_sync(v_summary))
                into v_detail;
        end case;
        update sync.job_run set status = 'ok', finished_at = clock_timestamp(), detail = v_detail
        where id = v_run.id
        returning * into v_run;
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
        update sync.job_run
        set status = 'failed', finished_at = clock_timestamp(),
            detail = jsonb_build_object('sqlstate', v_state, 'error', v_message)
        where id = v_run.id
        returning * into v_run;
    end;
    return v_run;
end;
$$;
comment on function sync.run_job(text) is
    'Runs one job of sync.job now, in this transaction (check_catalog; purge_inbox, which deletes what sync.purge_inbox deletes but in one transaction; check_drift, whose detail holds the drift summary and the figures of the status page) and records it in sync.job_run with what it did, or the error (a failed job is recorded, not raised). pg_cron and the cron lines of docs/operations.md call it for check_catalog and check_drift, and CALL sync.purge_inbox() for the purge. Usage: SELECT * FROM sync.run_job(''check_catalog'');';

-- sync_private.pg_cron_job_name
-- The name a job of ours has in pg_cron.
create function sync_private.pg_cron_job_name(p_name text) returns text
    language sql
    immutable
as $$
    select 'fragrance_sync.' || p_name;
$$;
comment on function sync_private.pg_cron_job_name(text) is
    'The pg_cron job name of one of our jobs: fragrance_sync.<job>.';

-- sync_private.job_command
-- The SQL that runs a job on schedule.
create function sync_private.job_command(p_name text) returns text
    language sql
    immutable
as $$
    -- The purge by its procedure, which commits between chunks: a run of
    -- sync.run_job is one transaction, and the first purge after a year
    -- wrote about 1 GB of WAL in one (docs/operations.md).
    --
    -- A site's statement_timeout (on the database or the job's owner, for
    -- its applications) cancelled a long check every night: the catalog
    -- check of 1,000,000 fragrances takes about 40 s, and a cancel is not an
    -- error run_job can record, so nothing said why it never ran but health,
    -- a day later, asking whether pg_cron still runs it. A function cannot
    -- lift the timeout of the statement that called it: the command does,
    -- before it. The purge cannot (a CALL after it would share its
    -- transaction and could not commit): its committed steps stay.
    select case p_name
               when 'purge_inbox' then 'call sync.purge_inbox()'
               else format('set statement_timeout = 0; select status from sync.run_job(%L)', p_name)
           end;
$$;
comment on function sync_private.job_command(text) is
    'The command pg_cron runs for one of our jobs: CALL sync.purge_inbox() for purge_inbox (it commits between chunks), SET statement_timeout = 0; SELECT status FROM sync.run_job(<job>) for the others (a site''s statement_timeout does not cut a nightly check short).';

-- sync_private.pg_cron_refusal
-- Why pg_cron, installed in this database, cannot take our jobs: null when it can, or is not here.
create function sync_private.pg_cron_refusal() returns text
    language sql
    stable
as $$
    -- On a managed database a superuser (or the provider's admin) creates
    -- pg_cron, and its schema is usable by nobody else until granted. The
    -- owner of the sync (who deploys it, and whom the security definer
    -- functions run as) then could not even look into schema cron: the code
    -- load failed with "permission denied for schema cron", and so did every
    -- deploy, every change of sync.job and sync.schedule() (hostile review).
    -- The jobs are optional in pg_cron: they run from the cron lines instead.
    select format('pg_cron is installed in this database, but %I, who owns the sync, may not use it:'
                  ' run the jobs from cron (docs/operations.md, "Run without a person"), or have a'
                  ' superuser run: grant usage on schema cron to %I; then deploy again',
                  current_user, current_user)
    where to_regnamespace('cron') is not null
      and exists (select from pg_catalog.pg_extension where extname = 'pg_cron')
      and not pg_catalog.has_schema_privilege('cron', 'usage');
$$;
comment on function sync_private.pg_cron_refusal() is
    'Why pg_cron, installed in this database, cannot take our jobs (the owner of the sync lacks USAGE on schema cron), with the grant that lets it; null when it can or when pg_cron is not here. The code load prints it, sync.schedule() says it.';

-- sync_private.schedule_with_pg_cron
-- Registers the enabled jobs with pg_cron, and removes the disabled ones, when pg_cron is here.
create function sync_private.schedule_with_pg_cron() returns text
    language plpgsql
as $$
declare
    v_job sync.job;
    v_jobid bigint;
    v_refusal text := sync_private.pg_cron_refusal();
begin
    if v_refusal is not null then
        return v_refusal;
    end if;
    if to_regprocedure('cron.schedule(text, text, text)') is null then
        return 'pg_cron is not installed in this database: run the jobs from cron (docs/operations.md, "Run without a person")';
    end if;
    for v_job in select * from sync.job order by name loop
        v_jobid := null;
        if v_job.enabled then
            v_jobid := cron.schedule(sync_private.pg_cron_job_name(v_job.name), v_job.schedule,
                                     sync_private.job_command(v_job.name));
        else
            select c.jobid into v_jobid from cron.job as c
            where c.jobname = sync_private.pg_cron_job_name(v_job.name) and c.username = current_user;
            if v_jobid is not null then
                perform cron.unschedule(sync_private.pg_cron_job_name(v_job.name));
            end if;
        end if;
        -- Each jobid is recorded as ours, before an unschedule takes it from
        -- cron.job: the purge of pg_cron's log deletes the rows of these
        -- jobids only, its rows after it is disabled too, never another
        -- job's, whatever its command (sync_private.purge_cron_run_details).
        -- Not while a rollback past migration 0059, which made the table,
        -- changes sync.job with this code still loaded.
        if v_jobid is not null and to_regclass('sync_private.pg_cron_job') is not null then
            insert into sync_private.pg_cron_job (extension, jobid, job)
            select e.oid, v_jobid, v_job.name from pg_catalog.pg_extension as e where e.extname = 'pg_cron'
            on conflict do nothing;
        end if;
    end loop;
    return 'scheduled with pg_cron';
end;
$$;
comment on function sync_private.schedule_with_pg_cron() is
    'Makes pg_cron''s jobs match sync.job (fragrance_sync.<job>, running sync_private.job_command) when pg_cron is installed in this database, and records the jobid of each in sync_private.pg_cron_job (whose log rows the purge may delete); says so when it is not.';

-- sync_private.reschedule
-- Trigger: a change of sync.job reaches pg_cron at once.
create function sync_private.reschedule() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    perform sync_private.schedule_with_pg_cron();
    return null;
end;
$$;
comment on function sync_private.reschedule() is
    'Trigger function of sync.job''s _900_reschedule: registers the changed schedules with pg_cron, when it is here.';

create trigger _900_reschedule
    after update on sync.job
    for each statement execute function sync_private.reschedule();
comment on trigger _900_reschedule on sync.job is
    'Registers a changed schedule with pg_cron at once (when pg_cron is installed here).';

-- sync_private.date_enabling
-- Trigger: a job enabled again is dated, so sync.health judges it from then until it runs.
create function sync_private.date_enabling() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- A job that never ran has no run for sync.health to judge: it is
    -- judged from when it was enabled, and one enabled long after the
    -- install is not late before its schedule could run it.
    if new.enabled and not old.enabled then
        new.enabled_at := now();
    end if;
    return new;
end;
$$;
comment on function sync_private.date_enabling() is
    'Trigger function of sync.job''s _100_date_enabling: sets enabled_at to now when an UPDATE enables a disabled job.';

create trigger _100_date_enabling
    before update on sync.job
    for each row execute function sync_private.date_enabling();
comment on trigger _100_date_enabling on sync.job is
    'Dates a job enabled again (sync.job.enabled_at): sync.health judges a job that never ran from that moment.';

-- sync.schedule
-- What runs without a person, where it is scheduled, and when each last ran.
create function sync.schedule()
    returns table (job text, schedule text, enabled boolean, scheduled_by text, last_started_at timestamptz,
                   last_status text, last_detail jsonb, description text)
    language plpgsql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_registered text[] := '{}';
    v_refusal text := sync_private.pg_cron_refusal();
begin
    -- pg_cron's table exists only where it is installed (and is readable
    -- only where its schema is granted): read it dynamically.
    if v_refusal is null and to_regclass('cron.job') is not null then
        execute 'select coalesce(array_agg(jobname || '' '' || schedule), ''{}'') from cron.job where active'
        into v_registered;
    end if;
    return query
    select j.name, j.schedule, j.enabled,
        case when not j.enabled then 'nobody (disabled)'
             when sync_private.pg_cron_job_name(j.name) || ' ' || j.schedule = any (v_registered)
                 then 'pg_cron (' || sync_private.pg_cron_job_name(j.name) || ')'
             else 'cron, outside the database: see docs/operations.md, "Run without a person"'
                  || coalesce(' (' || v_refusal || ')', '') end,
        r.started_at, sync_private.job_run_status(r.status, r.backend_pid, r.session_lock), r.detail, j.description
    from sync.job as j
    left join lateral (select * from sync.job_run as x where x.job = j.name order by x.id desc limit 1) as r on true
    order by j.name;
end;
$$;
comment on function sync.schedule() is
    'The jobs that run without a person: their schedule, whether pg_cron runs them here (else the cron lines of docs/operations.md, "Run without a person", must), and their last run with its status (running, ok, failed, or interrupted: cancelled, or its session ended, before it finished) and detail. Usage: SELECT * FROM sync.schedule();';

-- sync_private.cron_matches
-- Whether a cron schedule (minute hour day month weekday) names a moment's minute.
create function sync_private.cron_matches(p_schedule text, p_at timestamp) returns boolean
    language sql
    immutable
    parallel safe
as $$
    -- Cron's fields: each a comma list of *, a number or a range a-b, each
    -- with an optional step /n (a number with a step runs to the field's
    -- end, as Vixie cron reads it). Weekday 0 and 7 are Sunday. Where both
    -- the day of the month and the weekday are restricted, either matches
    -- (cron's rule); a field * matches anything. Names (mon, jan) and @daily
    -- are not read: pg_cron's syntax beyond this is for pg_cron alone.
    with parts as (
        select regexp_split_to_array(btrim(p_schedule), E'\\s+') as text
    ),
    field as (
        select f.n, f.text, v.value, v.low, v.high
        from parts as p
        cross join lateral unnest(p.text) with ordinality as f (text, n)
        join (values (1, extract(minute from p_at)::integer, 0, 59),
                     (2, extract(hour from p_at)::integer, 0, 23),
                     (3, extract(day from p_at)::integer, 1, 31),
                     (4, extract(month from p_at)::integer, 1, 12),
                     (5, extract(dow from p_at)::integer, 0, 7)) as v (n, value, low, high)
            on v.n = f.n
    ),
    judged as (
        select f.n, f.text,
            exists (
                select
                from unnest(string_to_array(f.text, ',')) as part (text)
                cross join lateral regexp_match(part.text, E'^(?:(\\*)|([0-9]+)(?:-([0-9]+))?)(?:/([0-9]+))?$') as m
                cross join lateral (
                    select case when m[1] is not null then f.low else m[2]::integer end as first,
                           case when m[1] is not null or (m[3] is null and m[4] is not null) then f.high
                                else coalesce(m[3], m[2])::integer end as last,
                           coalesce(m[4]::integer, 1) as step
                ) as r
                where m is not null and r.step > 0
                  and (f.value between r.first and r.last and (f.value - r.first) % r.step = 0
                       -- Sunday is 0 and 7.
                       or f.n = 5 and f.value = 0 and 7 between r.first and r.last and (7 - r.first) % r.step = 0)
            ) as matches
        from field as f
    )
    select (select cardinality(p.text) = 5 from parts as p)
       and bool_and(j.matches) filter (where j.n in (1, 2, 4))
       and case when bool_or(j.text = '*') filter (where j.n in (3, 5))
                then bool_and(j.matches) filter (where j.n in (3, 5))
                else bool_or(j.matches) filter (where j.n in (3, 5)) end
    from judged as j;
$$;
comment on function sync_private.cron_matches(text, timestamp) is
    'Whether the cron schedule p_schedule (minute hour day-of-month month weekday: *, numbers, ranges a-b, lists, steps /n; weekday 0 or 7 is Sunday; day and weekday both restricted: either) names the minute of p_at, a local time. sync.due_jobs reads sync.job''s schedules with it.';

-- sync.due_jobs
-- The enabled jobs whose schedule named a minute of the last hour since they last ran, and that pg_cron does not run.
create function sync.due_jobs(p_now timestamptz default now())
    returns table (job text, due_at timestamptz)
    language plpgsql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- For a server without pg_cron (docker-compose's database, a managed
    -- one): one cron line that calls sync.run_due_jobs every minute follows
    -- sync.job as it is tuned, where three lines copied its schedules. A
    -- minute of the last hour that came after the job's last run (or its
    -- enabling) makes it due, so a scheduler a few minutes late, or a run
    -- of another job that took a while, still runs it; one down for longer
    -- skips it, as cron would, and sync.health says so a day on. Minutes are
    -- read in the session's time zone (the server's, unless the login or
    -- the database sets another), as sync.job says its schedule is.
    --
    -- An infinite moment has no minutes before it: the hour's series of
    -- minutes never ended.
    if p_now is null or not isfinite(p_now) then
        raise exception 'sync.due_jobs needs a moment, got %', coalesce(p_now::text, 'null')
            using errcode = 'FS005', hint = 'For example SELECT * FROM sync.due_jobs(); (now)';
    end if;
    return query
    select j.name, max(m.at)
    from sync.schedule() as s
    join sync.job as j on j.name = s.job
    cross join lateral generate_series(date_trunc('minute', p_now) - interval '59 minutes',
                                       date_trunc('minute', p_now), interval '1 minute') as m (at)
    where j.enabled
      and s.scheduled_by not like 'pg_cron%'
      and m.at >= date_trunc('minute', j.enabled_at)
      and m.at > coalesce((select max(r.started_at) from sync.job_run as r where r.job = j.name), '-infinity')
      and sync_private.cron_matches(j.schedule, m.at::timestamp)
    group by j.name
    order by max(m.at), j.name;
end;
$$;
comment on function sync.due_jobs(timestamptz) is
    'The enabled jobs of sync.job that pg_cron does not run and whose schedule named a minute of the last hour after their last run (and after they were enabled), with that minute: what sync.run_due_jobs runs. Usage: SELECT * FROM sync.due_jobs();';

-- sync.run_due_jobs
-- Runs the jobs that are due (sync.due_jobs), each in its own transactions; for a cron line every minute.
create procedure sync.run_due_jobs()
    language plpgsql
as $$
declare
    v_job text;
    v_status text;
    v_holder name;
    v_holder_pid integer;
    -- The key two schedulers share (a bigint: pg_locks shows it as classid, objid).
    v_key constant bigint := pg_catalog.hashtext('sync.run_due_jobs');
begin
    -- A procedure, so each job commits on its own and the purge can commit
    -- between its chunks (sync.purge_inbox); like it, this runs as its
    -- caller (a procedure that commits may carry no SET or SECURITY
    -- DEFINER) and names every function with its schema. Call it on its
    -- own, outside a transaction block, in a session with no
    -- statement_timeout: `* * * * * psql "$FRAGRANCE_DBA_URL" -qAtc "set
    -- statement_timeout = 0" -c "call sync.run_due_jobs()"`. Two schedulers
    -- at once (two hosts' cron lines) run each job once: the second finds
    -- the first's lock and returns.
    --
    -- Any login may take any advisory lock, this key too: a login of no
    -- standing (the smart library's, or any with CONNECT) that held it kept
    -- every cron line from running any job, for as long as its session
    -- lasted, while each said "another session is running the due jobs"
    -- (hostile review). A holder that could not run the jobs itself (not a
    -- member of sync_dba nor of the sync's owner) is so not taken for a
    -- scheduler: the jobs run anyway, with a warning that names it. Two
    -- schedulers racing while such a login holds the key may then both run
    -- a job, which at worst repeats it.
    if not pg_catalog.pg_try_advisory_lock(v_key) then
        select a.usename, a.pid into v_holder, v_holder_pid
        from pg_catalog.pg_locks as l
        join pg_catalog.pg_stat_activity as a on a.pid operator(pg_catalog.=) l.pid
        where l.locktype operator(pg_catalog.=) 'advisory' and l.granted
          and l.objsubid operator(pg_catalog.=) 1
          and l.database operator(pg_catalog.=) (select d.oid from pg_catalog.pg_database as d
                                                 where d.datname operator(pg_catalog.=) pg_catalog.current_database())
          and l.classid operator(pg_catalog.=)
              pg_catalog.int8and(pg_catalog.int8shr(v_key, 32), 4294967295)::oid
          and l.objid operator(pg_catalog.=) pg_catalog.int8and(v_key, 4294967295)::oid
        limit 1;
        if v_holder is null
           or pg_catalog.pg_has_role(v_holder, 'sync_dba', 'member')
           or pg_catalog.pg_has_role(v_holder, (select n.nspowner from pg_catalog.pg_namespace as n
                                                where n.nspname operator(pg_catalog.=) 'sync'), 'member')
        then
            raise notice 'another session is running the due jobs; this one leaves them to it';
            return;
        end if;
        raise warning 'the lock that keeps two schedulers from running the due jobs at once is held by %, who may not run them (backend %): the jobs run anyway',
            v_holder, v_holder_pid
            using hint = pg_catalog.format('End that session: SELECT pg_terminate_backend(%s);', v_holder_pid);
    end if;
    for v_job in select d.job from sync.due_jobs() as d loop
        if v_job operator(pg_catalog.=) 'purge_inbox' then
            v_status := null;
            call sync.purge_inbox(10000, v_status);
        else
            perform sync.run_job(v_job);
            commit;
        end if;
    end loop;
    perform pg_catalog.pg_advisory_unlock(v_key);
end;
$$;
comment on procedure sync.run_due_jobs() is
    'Runs the jobs sync.due_jobs() lists, one after the other, each committed on its own (the purge by sync.purge_inbox, in chunks); returns at once when another session is running them (one that holds their advisory lock and may run them: a holder that may not, a member of neither sync_dba nor the owner, is warned about and the jobs run). For servers without pg_cron, from one cron line a minute, in a session with no statement_timeout: CALL sync.run_due_jobs();';

-- The jobs reach pg_cron at every code load, as they would after an UPDATE of sync.job.
select sync_private.schedule_with_pg_cron();

create trigger _010_refuse_truncate_job_run
    before truncate on sync.job_run
    for each statement execute function sync_private.refuse_truncate(
        'Runs older than sync.settings.purge_after go with the scheduled CALL sync.purge_inbox();, which keeps each job''s last run and last successful one (sync.schedule(), sync.health and the status page read them).');
comment on trigger _010_refuse_truncate_job_run on sync.job_run is
    'Refuses a TRUNCATE of the jobs'' runs (FS092): sync.schedule(), sync.health and the status page would lose each job''s last run and last successful one.';
