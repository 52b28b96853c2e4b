-- Index what health counts at every scrape: open findings by rule, quarantined deliveries by time
-- depends: 0034-name-turns-never-the-table

-- sync.health_at (every /metrics scrape, every /status reload) counts the
-- open findings per rule and the fragrances breaking an error rule, at a
-- moment: open then, first seen by then. Written as one condition over
-- closed_at ("null or after the moment"), no index answered it and both
-- counts read the whole table, closed findings included, which only the
-- purge bounds: 2 x 26,355 pages (205 MB) per scrape at 257,382 open and
-- 500,000 closed findings (measured, 200,000 fragrances). The open ones are
-- now counted from this index alone (index-only, with fragrance_id to count
-- fragrances), and the few closed after the moment by finding_closed_at_idx.
--
-- Its predicate also says "severity is not null", always true (the column
-- is not null), so that only a query that says so, or names a severity,
-- may use it. The merge's lookups of a fragrance's open findings name
-- none: their plans, kept for the session and made on empty tables, took
-- this index for one by fragrance when its predicate was closed_at alone,
-- and read every open finding per lookup (260,260 rows for a batch of 5,
-- tests/test_one_merge.py).
create index finding_open_rule_idx on sync.finding (severity, rule, first_seen_at) include (fragrance_id)
    where closed_at is null and severity is not null;
comment on index sync.finding_open_rule_idx is
    'The open findings by severity, rule and moment first seen: sync.health_at counts them per rule, and the fragrances breaking an error rule, from the index alone.';

-- The quarantine (rejected deliveries) is never purged: a person retries or
-- discards them. sync.health_at counts those received by its moment, and
-- through inbox_rejected_idx (by id) it read every one of them from the
-- table at every scrape: 3,849 pages for 14,999 rejects (measured, a year
-- at a 0.5 % reject rate). Only rejected rows enter this index.
create index inbox_rejected_received_at_idx on sync.inbox (received_at) where status = 'rejected';
comment on index sync.inbox_rejected_received_at_idx is
    'Rejected deliveries by receipt time: sync.health_at counts the quarantine at a moment from the index alone.';
