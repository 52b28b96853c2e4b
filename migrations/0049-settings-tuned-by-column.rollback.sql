-- DBAs tune sync.settings column by column, so they cannot lock the table the hook reads
-- depends: 0048-unassigned-characters

-- Back to the table-wide UPDATE of 0007.
revoke update (apply_on_receipt, expected_interval, silence_warn_after, silence_critical_after,
               pending_warn_after, reject_share_warn, purge_after, discarded_purge_after)
    on sync.settings from sync_dba;
grant update on sync.settings to sync_dba;
