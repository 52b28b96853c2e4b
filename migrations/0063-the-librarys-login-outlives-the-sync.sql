-- The smart library's login holds its own select on public.fragrances, so rolling the sync back never takes the catalog from it
-- depends: 0062-snapshot-age-within-the-calendar

-- The landed rollback of 0019 revokes smart_library_reader's select and drops
-- both roles when no other database of the cluster uses them, even where they
-- were there before the sync (compose's init script makes them, with the
-- login's password, so the smart library starts on its own database), and
-- even where the real smart library was moved onto the login after the deploy
-- (docs/smart-library.md): after `yoyo rollback --all` the platform's core
-- service could no longer log in, or read its catalog (hostile review, ADR
-- 0038). A grant of the login's own is revoked by no landed rollback, and
-- makes 0019's DROP ROLE of the login fail and be kept, with a notice: the
-- login, its password and its read outlive the sync. It reads nothing it
-- could not read through the reader: public.fragrances, nothing of ours.
grant select on public.fragrances to smart_library_login;
