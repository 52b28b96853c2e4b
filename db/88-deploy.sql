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

-- sync_private.hold_deploy_lock
-- Trigger: while yoyo's lock row is there, the session that wrote it holds an advisory lock that says so.
create function sync_private.hold_deploy_lock() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_key integer;
begin
    -- yoyo writes its lock row in a transaction of its own, runs each
    -- migration and rollback on a connection of its own, then deletes the
    -- row from the first. A deploy killed mid-way leaves the row behind,
    -- and it let every DELETE FROM sync.rule of any psql through (hostile
    -- review): the row is no evidence that a deploy runs now. This
    -- session-level advisory lock is: taken by the session that wrote the
    -- row, it goes when that session ends, whatever killed it
    -- (sync_private.deploy_running, ADR 0040). Taken once: a second lock
    -- would need a second unlock.
    --
    -- Any login may take any advisory lock: one of no standing that held
    -- (1179014211, 1) kept every deploy waiting here until yoyo gave up,
    -- saying "Database locked" with no row to break (hostile review). The
    -- row's primary key already keeps two deploys apart, so the lock is
    -- only evidence: the first key (1179014211, k) free is taken, never
    -- waited for, and only a holder who may deploy counts
    -- (sync_private.deploy_lock_held).
    if tg_op = 'INSERT' then
        if not sync_private.deploy_lock_held(pg_catalog.pg_backend_pid()) then
            v_key := 1;
            while not pg_catalog.pg_try_advisory_lock(1179014211, v_key) loop
                v_key := v_key + 1;
            end loop;
        end if;
    else
        for v_key in
            select l.objid::bigint::integer
            from pg_catalog.pg_locks as l
            where l.locktype = 'advisory' and l.granted and l.pid = pg_catalog.pg_backend_pid()
              and l.classid = 1179014211 and l.objsubid = 2
        loop
            perform pg_catalog.pg_advisory_unlock(1179014211, v_key);
        end loop;
    end if;
    return null;
end;
$$;
comment on function sync_private.hold_deploy_lock() is
    'Trigger function on yoyo''s public.yoyo_lock: when yoyo writes its lock row, its session takes the first free session-level advisory lock (1179014211, k), k from 1, that sync_private.deploy_running asks for (never waiting: another login may hold one); when it deletes the row, it lets it go. A killed deploy''s lock goes with its session; its row stays.';

create trigger _100_hold_deploy_lock after insert or delete on public.yoyo_lock
    for each statement execute function sync_private.hold_deploy_lock();
comment on trigger _100_hold_deploy_lock on public.yoyo_lock is
    'The session that writes yoyo''s lock row holds an advisory lock too, gone with the session: evidence that a deploy runs now, which a stale row is not (ADR 0040).';

-- sync_private.deploy_lock_held
-- Whether a session of this database holds the advisory lock of a deploy (sync_private.hold_deploy_lock); only backend p_pid's if given.
create function sync_private.deploy_lock_held(p_pid integer default null) returns boolean
    language sql
    stable
    set search_path = pg_catalog, pg_temp
as $$
    -- Two int4 keys show as classid and objid, with objsubid 2. Any login
    -- may take the lock: only a holder who may deploy (a member of the
    -- sync's owner, as every superuser is) counts, so a login of no
    -- standing holding it cannot make a killed deploy's row pass for a
    -- running deploy (hostile review).
    select exists (select from pg_catalog.pg_locks as l
                   join pg_catalog.pg_stat_activity as a on a.pid = l.pid
                   where l.locktype = 'advisory' and l.granted
                     and (p_pid is null or l.pid = p_pid)
                     and l.database = (select d.oid from pg_catalog.pg_database as d
                                       where d.datname = pg_catalog.current_database())
                     and l.classid = 1179014211 and l.objsubid = 2
                     and pg_catalog.pg_has_role(a.usesysid,
                                                (select n.nspowner from pg_catalog.pg_namespace as n
                                                 where n.nspname = 'sync'),
                                                'member'));
$$;
comment on function sync_private.deploy_lock_held(integer) is
    'Whether a session connected to this database (backend p_pid, if given) of a login that may deploy (a member of the sync''s owner) holds an advisory lock (1179014211, k) that yoyo''s lock row gives the session that wrote it (sync_private.hold_deploy_lock); another login''s does not count.';

-- sync_private.deploy_running
-- Whether a deploy runs now: yoyo's lock row is there and the session that wrote it is still connected.
create function sync_private.deploy_running() returns boolean
    language plpgsql
    stable
    set search_path = pg_catalog, pg_temp
as $$
begin
    -- Both: the row (a yoyo break-lock ends the deploy's standing) and the
    -- advisory lock its insert gave the session that wrote it: a stale row
    -- from a killed deploy has no session left holding it. It cannot be
    -- the asking session's own: yoyo runs each migration on a connection
    -- of its own, beside the one that holds the lock. A login can take any
    -- advisory lock by hand, and write the row: deliberate, not a mistake
    -- (ADR 0040).
    if to_regclass('public.yoyo_lock') is null or not sync_private.deploy_lock_held() then
        return false;
    end if;
    return exists (select from public.yoyo_lock);
end;
$$;
comment on function sync_private.deploy_running() is
    'Whether a deploy or a rollback runs now: yoyo''s lock row (public.yoyo_lock) is there and the session that wrote it is still connected, holding the advisory lock its insert took (sync_private.hold_deploy_lock). A row left by a killed deploy is not enough. The refusals of hand changes let a migration through by it (FS093, FS094).';
