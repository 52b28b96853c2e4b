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
