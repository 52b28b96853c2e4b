-- Each login holds a privilege of its own in each database that uses it, so rolling back another database keeps it
-- depends: 0025-name-turns

-- Roles are cluster-wide. The landed rollbacks of 0007 and 0019 drop a login
-- unless DROP ROLE fails because another database still grants it something
-- (dependent_objects_still_exist); but the logins held nothing directly, only
-- their membership in sync_hook and smart_library_reader, so rolling back one
-- database dropped them while another still ran the sync: that database's
-- hook could no longer log in and its pinned synchronous_commit was lost.
-- A harmless privilege of the login's own, recorded in pg_shdepend for this
-- database (and carried by CREATE DATABASE ... TEMPLATE clones), makes
-- DROP ROLE from any other database fail, so the landed loops keep the login;
-- this migration's rollback revokes it, so rolling back the last database
-- still drops it. Both logins already have these through their groups (or
-- PUBLIC): nothing they may do changes.
grant usage on schema sync to sync_hook_login;
grant usage on schema public to smart_library_login;
