-- Index what health counts at every scrape: open findings by rule, quarantined deliveries by time
-- depends: 0034-name-turns-never-the-table

drop index sync.finding_open_rule_idx;
drop index sync.inbox_rejected_received_at_idx;
