-- What the last code load made in schemas sync and sync_private, so the deploy tells a site's own objects there from ours
-- depends: 0063-the-librarys-login-outlives-the-sync

drop table sync_private.code_object;
