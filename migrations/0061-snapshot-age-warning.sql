-- Health warns about a CMS snapshot too old to check drift against
-- depends: 0060-html-texts-and-implausible-costs

-- The drift check compares the library with the CMS snapshot loaded last
-- (sync.cms_snapshot), and nothing said when that was months ago: the
-- check ran nightly, read ok, and every change lost since the snapshot was
-- taken stayed unfound, while what deliveries set since counted as newer in
-- the library and was never verified. sync.health warns once the snapshot
-- loaded was taken longer ago than this.
alter table sync.settings
    add column snapshot_warn_after interval not null default '30 days',
    add constraint settings_snapshot_warn_positive check (snapshot_warn_after > interval '0');
comment on column sync.settings.snapshot_warn_after is
    'A CMS snapshot (sync.cms_snapshot) taken longer ago than this turns sync.health to warn: the drift check compares with it, and changes lost since it was taken stay unfound. Default 30 days.';

-- DBAs tune it like the other thresholds: UPDATE is granted by column (0049).
grant update (snapshot_warn_after) on sync.settings to sync_dba;
