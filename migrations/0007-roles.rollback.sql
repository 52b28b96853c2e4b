-- Remove our grants and, where no other database still uses them, our roles
revoke select, insert, update, delete on public.fragrances from sync_dba;
revoke all on all functions in schema sync from sync_dba, sync_hook;
revoke all on all tables in schema sync from sync_dba, sync_hook;
revoke all on schema sync from sync_dba, sync_hook;
grant execute on all functions in schema sync to public;

-- A role still granted something in another database of the cluster cannot
-- be dropped; it is then kept, and said so, instead of failing the rollback.
-- The login's membership in sync_hook is not revoked here: memberships are
-- cluster-wide, so revoking it broke the hook of every other database that
-- still syncs; dropping either role ends it where neither is kept.
do $$
declare
    v_role text;
begin
    foreach v_role in array array['sync_hook_login', 'sync_hook', 'sync_dba'] loop
        begin
            execute format('drop role if exists %I', v_role);
        exception when dependent_objects_still_exist then
            raise notice 'role % kept: another database still grants it privileges', v_role;
        end;
    end loop;
end;
$$;
