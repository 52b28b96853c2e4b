-- sync.settings.apply_on_receipt and sync.job say what is true since ADR 0022 and the cron lines moved
-- depends: 0043-mixed-scripts-and-leading-marks

-- The comments a DBA reads with \d+ sync.settings and \d+ sync.job said what
-- was true before ADR 0022 and before the cron lines moved to docs/operations.md.
comment on column sync.settings.apply_on_receipt is
    'When true, deliveries are merged on receipt: the hook''s by its merger (sync.apply_received) right after they are stored, those of sync.receive and sync.receive_many in the transaction that stores them; when false they stay pending until sync.apply_pending() runs.';
comment on table sync.job is
    'Jobs that run on a schedule (cron syntax, server time zone): with pg_cron where the server has it, else from a cron line of the host (docs/operations.md, "Run without a person"). Change one with UPDATE sync.job SET schedule = ''0 4 * * *'' WHERE name = ...; see SELECT * FROM sync.schedule();';
