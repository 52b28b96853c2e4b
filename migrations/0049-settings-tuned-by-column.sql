-- DBAs tune sync.settings column by column, so they cannot lock the table the hook reads
-- depends: 0048-unassigned-characters

-- A table-wide UPDATE lets its holder LOCK TABLE in any mode (PostgreSQL).
-- A sync_dba login that ran "begin; lock table sync.settings in access
-- exclusive mode;" and left its transaction open stopped every store of the
-- hook, which reads apply_on_receipt on each delivery: sync.receive waited
-- until its statement_timeout (hostile review). An UPDATE granted on columns
-- gives no LOCK TABLE beyond ACCESS SHARE, as sync.rule and sync.job already
-- have it (0021): the DBA still tunes every setting with one UPDATE.
revoke update on sync.settings from sync_dba;
grant update (apply_on_receipt, expected_interval, silence_warn_after, silence_critical_after,
              pending_warn_after, reject_share_warn, purge_after, discarded_purge_after)
    on sync.settings to sync_dba;
