-- Each login holds a privilege of its own in each database that uses it, so rolling back another database keeps it
-- depends: 0025-name-turns

revoke usage on schema sync from sync_hook_login;
revoke usage on schema public from smart_library_login;
