-- The discard columns of sync.inbox described as before 0065
-- depends: 0064-what-the-code-load-made

comment on column sync.inbox.discarded_by is
    'Database user who discarded the delivery with sync.discard().';
comment on column sync.inbox.discard_reason is
    'Why the DBA discarded the delivery.';
comment on column sync.inbox.discarded_at is
    'When a DBA discarded the delivery with sync.discard() (for one discarded before migration 0037: when that migration ran); null unless discarded. The scheduled purge deletes it sync.settings.discarded_purge_after after this.';
