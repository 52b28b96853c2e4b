-- The discard columns of sync.inbox say they outlive a retry of a discarded delivery (ADR 0039)
-- depends: 0064-what-the-code-load-made

-- sync.retry takes a discarded delivery back (db/50-dba.sql): who wrote it
-- off, why and when stay on the row, whatever its status is now. Comments
-- only: no lock a reader's open transaction would hold this behind for long.
comment on column sync.inbox.discarded_by is
    'Database user who discarded the delivery with sync.discard(); kept when a retry took it back since (status is what it is now).';
comment on column sync.inbox.discard_reason is
    'Why the DBA discarded the delivery; kept when a retry took it back since.';
comment on column sync.inbox.discarded_at is
    'When a DBA discarded the delivery with sync.discard() (for one discarded before migration 0037: when that migration ran); null unless it was discarded, and kept when sync.retry took it back since. The scheduled purge deletes a delivery still discarded sync.settings.discarded_purge_after after this.';
