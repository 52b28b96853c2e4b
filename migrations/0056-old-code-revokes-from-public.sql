-- The code 0022 keeps for its rollback ends by revoking EXECUTE from PUBLIC, as post-apply.sql did at 0018
-- depends: 0055-placeholder-texts

-- 0022 recorded the 0018 code as it found it, grants included, and its
-- rollback replays the record. A database installed in one run (0001 to
-- 0022 and on) reached 0022 before post-apply.sql revoked what PostgreSQL
-- grants PUBLIC on every new function: the record granted EXECUTE to PUBLIC
-- on sync.receive_many and sync.receive_spooled (security definer) and
-- left the internals 0018 made at that default. Rolled back before 0022,
-- every login with usage on schema sync could call them (hostile review).
-- One statement more at the end of the record does what post-apply.sql did
-- after 0018; where it had already run, it changes nothing.
insert into sync_private.code_0018 (position, statement)
select max(c.position) + 1, 'revoke execute on all functions in schema sync from public'
from sync_private.code_0018 as c
having not exists (select from sync_private.code_0018 as d
                   where d.statement = 'revoke execute on all functions in schema sync from public');
