-- Remove drift detection and repair (deliveries the repair made stay in the inbox)
revoke all on sync.cms_snapshot, sync.drift, sync.drift_summary from sync_dba;
revoke all on schema sync_remote from sync_dba;
drop function sync.load_snapshot_from_server(text, integer, text, text, text, text, text);
drop function sync.load_snapshot(jsonb, text, timestamptz);
drop function sync._replace_snapshot();
drop function sync.repair(boolean);
drop function sync.plan_repair();
drop view sync.drift_summary;
drop view sync.drift;
drop table sync.cms_snapshot;
drop function sync.inbox_position(timestamptz);
drop server if exists sync_cms cascade;

-- The extension goes only if this migration created it (it lives in sync_remote).
do $$
begin
    if exists (select from pg_catalog.pg_extension
               where extname = 'postgres_fdw' and extnamespace = 'sync_remote'::regnamespace) then
        drop extension postgres_fdw;
    end if;
end;
$$;
drop schema sync_remote;
