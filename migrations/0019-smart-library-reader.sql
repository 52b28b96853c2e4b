-- A read-only login for the smart library: it may select public.fragrances and nothing else
-- depends: 0018-receive-once

-- The smart library reads the catalog and never writes it; the stand-in
-- (smart_library/) connects as this login, so a bug in it cannot change a
-- row, and it sees nothing of the sync. Roles are cluster-wide and may
-- already exist (another database, an earlier run, compose's init script
-- that sets the password), so they are created only where missing. The
-- login has no password here: the operator sets one.
do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'smart_library_reader') then
        create role smart_library_reader nologin;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'smart_library_login') then
        create role smart_library_login login;
    end if;
end;
$$;
comment on role smart_library_reader is
    'Privileges of the smart library: may only select public.fragrances; nothing in schema sync.';
comment on role smart_library_login is
    'The login the smart library (or its stand-in) connects as; inherits smart_library_reader and nothing else.';

grant smart_library_reader to smart_library_login;
grant select on public.fragrances to smart_library_reader;
