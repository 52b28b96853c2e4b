-- Remove the smart library's read-only roles, keeping them while another database still uses them
revoke select on public.fragrances from smart_library_reader;

-- Roles are cluster-wide. The reader cannot be dropped while another database
-- still grants it something: then both roles are kept, and said so, since that
-- database's smart library still logs in through them. Only once the reader is
-- gone is its login dropped (dropping a role ends its memberships).
do $$
begin
    begin
        drop role if exists smart_library_reader;
    exception when dependent_objects_still_exist then
        raise notice 'roles smart_library_reader and smart_library_login kept: another database still grants smart_library_reader privileges';
        return;
    end;
    begin
        drop role if exists smart_library_login;
    exception when dependent_objects_still_exist then
        raise notice 'role smart_library_login kept: another database still grants it privileges';
    end;
end;
$$;
