-- Roles and grants: who may call what. Loaded last, after every object exists.
--
-- sync_hook (the hook's login inherits it) stores deliveries and reads the
-- counts and page data; sync_dba runs and inspects the sync from psql;
-- smart_library_reader reads public.fragrances and nothing of ours. The roles
-- and the grants on tables are made by the migrations (roles are cluster-wide
-- and tables are data); the grants on code live here, because the code is
-- dropped and created again on every apply. Nobody is granted sync_private:
-- the API functions run as their owner (security definer) and call into it.

-- PostgreSQL lets PUBLIC execute every new function; none of ours.
revoke all on all functions in schema sync from public;
revoke all on all functions in schema sync_private from public;
-- "All functions" leaves procedures out (PostgreSQL): they are named apart.
revoke all on all procedures in schema sync from public;
revoke all on all procedures in schema sync_private from public;

-- The hook: store deliveries, read counts.
grant execute on function
    sync.receive(bytea, text, text, text),
    sync.receive_many(bytea[], text[], text[], text[], uuid[], timestamptz[]),
    sync.receive_spooled(uuid, timestamptz, bytea, text, text, text),
    sync.store_many(bytea[], text[], text[], text[], uuid[]),
    sync.store_spooled(bytea[], text[], text[], text[], uuid[], timestamptz[]),
    sync.apply_received(integer),
    sync.metrics(),
    sync.status_report(integer, integer)
    to sync_hook;

-- DBAs: every verb and view of the API.
grant execute on function
    sync.check_delta(jsonb),
    sync.prepare(bytea),
    sync.apply_pending(integer),
    sync.retry(bigint),
    sync.retry_all(text, integer),
    sync.discard(bigint, text),
    sync.revert(bigint),
    sync.fragrance_at(integer, timestamptz),
    sync.health_at(timestamptz),
    sync.metrics(),
    sync.status_report(integer, integer),
    sync.inbox_position(timestamptz),
    sync.plan_repair(),
    sync.drift_summary_now(),
    sync.repair(boolean),
    sync.load_snapshot(jsonb, text, timestamptz),
    sync.purge_applied(interval, boolean, integer),
    sync.purge_inbox_step(bigint, integer),
    sync.check_catalog(),
    sync.run_job(text),
    sync.schedule(),
    sync.due_jobs(timestamptz)
    to sync_dba;
-- The scheduled purge runs as its caller (a procedure that commits cannot be
-- SECURITY DEFINER): a sync_dba login's cron line calls it.
grant execute on procedure sync.purge_inbox(integer, text) to sync_dba;
grant execute on procedure sync.run_due_jobs() to sync_dba;
grant select on
    sync.quarantine,
    sync.unknown_field,
    sync.health,
    sync.drift,
    sync.drift_summary,
    sync.open_finding
    to sync_dba;

-- What each role may do, as \du+ shows it (the roles are the migrations'; their descriptions follow the code).
comment on role sync_hook is
    'Privileges of the sync service (the webhook receiver): store deliveries (sync.receive, sync.receive_many, sync.receive_spooled, sync.store_many, sync.store_spooled), apply them right after (sync.apply_received) and read the counts and page data of /metrics and /status (sync.metrics, sync.status_report). No table, no fragrance, nothing in sync_private.';
comment on role sync_dba is
    'Runs and inspects the sync from psql: reads every sync table and view, applies, retries, discards, reverts, repairs, purges, checks the catalog, runs jobs, tunes rules (severity, parameter) and schedules, edits settings and fragrances. Grant it to human DBAs.';
