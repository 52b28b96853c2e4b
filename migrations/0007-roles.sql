-- Roles: a hook login that can only store deliveries, and a DBA role that runs and inspects the sync
-- depends: 0006-dba-views

-- Roles are cluster-wide and may already exist (another database, an earlier
-- run), so they are created only where missing. The hook login has no
-- password here: the operator sets one (see README, "Roles").
do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'sync_hook') then
        create role sync_hook nologin;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'sync_hook_login') then
        create role sync_hook_login login;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'sync_dba') then
        create role sync_dba nologin;
    end if;
end;
$$;
comment on role sync_hook is
    'Privileges of the webhook receiver: may only call sync.receive() to store a delivery.';
comment on role sync_hook_login is
    'The login the hook connects as; inherits sync_hook and nothing else.';
comment on role sync_dba is
    'Runs and inspects the sync: reads every sync table and view, applies, retries and discards deliveries, edits settings and fragrances. Grant it to human DBAs.';

grant sync_hook to sync_hook_login;

-- Functions are executable by PUBLIC unless told otherwise: ours are not
-- (post-apply.sql re-asserts this for functions later migrations add).
revoke all on schema sync from public;
revoke execute on all functions in schema sync from public;

grant usage on schema sync to sync_hook;
grant execute on function sync.receive(bytea, text, inet, text) to sync_hook;

grant usage on schema sync to sync_dba;
grant select on all tables in schema sync to sync_dba;
grant update on sync.settings to sync_dba;
grant execute on function
    sync.apply_pending(integer),
    sync.retry(bigint),
    sync.retry_all(text, integer),
    sync.discard(bigint, text),
    sync.parse_body(bytea),
    sync.check_delta(jsonb),
    sync.prepare(bytea),
    sync.has_error(jsonb),
    sync.reason(text, text, text, text)
    to sync_dba;
grant select, insert, update, delete on public.fragrances to sync_dba;
