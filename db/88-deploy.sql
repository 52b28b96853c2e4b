-- Deploy: what the deploy itself keeps in the database.
--
-- yoyo runs a migration once: it records it in its table _yoyo_migration
-- (in schema public, where the deploy makes yoyo's tables) after it
-- committed, in a transaction of its own. migrations/9999-database-code.py
-- must run on every apply, so it is never recorded: post-apply used to
-- delete its record after each apply, in yet another transaction, and a
-- deploy killed between the two left it recorded, so every later apply
-- skipped the code load and said nothing (hostile review). This trigger
-- keeps the record from being written at all (ADR 0015, second addendum).

-- sync_private.forget_code_load
-- Keeps yoyo from recording the code load as applied: the row is not written.
create function sync_private.forget_code_load() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
begin
    return null;
end;
$$;
comment on function sync_private.forget_code_load() is
    'Trigger function on yoyo''s public._yoyo_migration: writes no record of migrations/9999-database-code.py, which loads db/*.sql and must run on every yoyo apply (yoyo list shows it pending).';

create trigger _100_forget_code_load before insert on public._yoyo_migration
    for each row when (new.migration_id = '9999-database-code')
    execute function sync_private.forget_code_load();
comment on trigger _100_forget_code_load on public._yoyo_migration is
    'yoyo never records the code load applied, so every yoyo apply loads db/*.sql, even after a deploy killed between its commit and yoyo''s record of it.';

-- sync_private.rights_beyond_roles
-- What our five roles hold beyond what the sync gives them, with the statement that takes it back.
create function sync_private.rights_beyond_roles() returns setof text
    language plpgsql
    stable
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_role record;
    v_beyond text[];
    v_table_rights text[];
    v_fix text[];
begin
    -- The migrations make each role only where it is missing (roles are
    -- cluster-wide: another database, an earlier run, compose's init
    -- scripts, a site's own smart library login). One that was there kept
    -- whatever it had, and the deploy said nothing (hostile review): a smart
    -- library's login that could write the catalog, a hook's login made
    -- NOINHERIT, which gets nothing of sync_hook (every call of the hook
    -- fails with permission denied). The deploy names each such right; it
    -- takes none back, since a site may mean it.
    for v_role in
        select r.*, x.expected, x.login_of
        from (values ('sync_hook', '{}'::text[], null::text),
                     ('sync_hook_login', '{}'::text[], 'sync_hook'),
                     ('sync_dba', '{delete,insert,select,update}'::text[], null),
                     ('smart_library_reader', '{select}'::text[], null),
                     ('smart_library_login', '{select}'::text[], 'smart_library_reader'))
             as x (name, expected, login_of)
        join pg_catalog.pg_roles as r on r.rolname = x.name
        order by r.rolname
    loop
        -- Each attribute the role holds beyond its part, and the word that takes it back.
        select coalesce(array_agg(a.said order by a.n), '{}'), coalesce(array_agg(a.fix order by a.n), '{}')
        into v_beyond, v_fix
        from (values (1, v_role.login_of is not null and not v_role.rolinherit,
                      format('does not inherit %s''s rights, so it can call nothing of the sync', v_role.login_of),
                      'inherit'),
                     (2, v_role.login_of is null and v_role.rolcanlogin, 'can log in', 'nologin'),
                     (3, v_role.rolsuper, 'is a superuser', 'nosuperuser'),
                     (4, v_role.rolbypassrls, 'bypasses row level security', 'nobypassrls'),
                     (5, v_role.rolcreaterole, 'can create roles', 'nocreaterole'),
                     (6, v_role.rolcreatedb, 'can create databases', 'nocreatedb'),
                     (7, v_role.rolreplication, 'can replicate', 'noreplication'))
             as a (n, holds, said, fix)
        where a.holds;
        if v_fix <> '{}' then
            return next format('%s %s, beyond its role: alter role %s %s;', v_role.rolname,
                               array_to_string(v_beyond, ', and '), v_role.rolname,
                               array_to_string(v_fix, ' '));
        end if;
        -- Its rights on the smart library's table beyond what a migration
        -- granted it (a superuser's are said above).
        if not v_role.rolsuper and to_regclass('public.fragrances') is not null then
            select array_agg(p order by p) into v_table_rights
            from unnest('{delete,insert,select,truncate,update}'::text[]) as p
            where pg_catalog.has_table_privilege(v_role.oid, 'public.fragrances'::regclass, p)
              and p <> all (v_role.expected);
            if v_table_rights is not null then
                return next format('%s may %s public.fragrances, beyond its role: revoke %s on public.fragrances from %s;',
                                   v_role.rolname, array_to_string(v_table_rights, ', '),
                                   array_to_string(v_table_rights, ', '), v_role.rolname);
            end if;
        end if;
    end loop;
end;
$$;
comment on function sync_private.rights_beyond_roles() is
    'One line for each of sync_hook, sync_hook_login, sync_dba, smart_library_reader and smart_library_login that holds more than the sync gives it (role attributes, a login that does not inherit its group, rights on public.fragrances), with the statement that takes it back: a role that existed before the migrations kept what it had. The deploy prints them (migrations/9999-database-code.py).';
