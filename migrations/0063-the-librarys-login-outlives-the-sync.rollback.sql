-- Keeps the smart library's login and its select on public.fragrances: the library read its catalog before the sync and reads it after
-- depends: 0062-snapshot-age-within-the-calendar

-- Deliberately nothing (ADR 0038): revoking the login's own grant here would
-- let the rollback of 0019 drop the login the smart library logs in with.
-- A site that wants the login gone drops it by hand:
--     revoke select on public.fragrances from smart_library_login;
--     drop role smart_library_login;
