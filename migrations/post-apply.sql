-- Re-assert after every apply: no function in schema sync is executable by PUBLIC
-- 0007's per-schema "alter default privileges ... revoke execute ... from public"
-- does nothing (per-schema defaults can only add to the global ones), so every
-- new function starts executable by everyone. yoyo runs this file after each
-- apply, so a migration that forgets its revoke cannot leak a function; the
-- roles' own grants are explicit in each migration.
do $$
begin
    if to_regnamespace('sync') is not null then
        revoke execute on all functions in schema sync from public;
        revoke execute on all procedures in schema sync from public;
    end if;
end;
$$;
