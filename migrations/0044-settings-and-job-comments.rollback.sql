-- sync.settings.apply_on_receipt and sync.job say what is true since ADR 0022 and the cron lines moved
-- depends: 0043-mixed-scripts-and-leading-marks

-- The comments as 0002 and 0021 wrote them.
comment on column sync.settings.apply_on_receipt is
    'When true, a delivery is validated and merged in the transaction that stores it; when false it stays pending until sync.apply_pending() runs.';
comment on table sync.job is
    'Jobs that run on a schedule (cron syntax, server time zone): with pg_cron where the server has it, else from the cron line in the README. Change one with UPDATE sync.job SET schedule = ''0 4 * * *'' WHERE name = ...; see SELECT * FROM sync.schedule();';
