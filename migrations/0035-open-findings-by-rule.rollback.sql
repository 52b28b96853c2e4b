-- Index the open findings by severity, rule and moment, so health counts them without the closed ones
-- depends: 0033-findings-go-with-their-rule

drop index sync.finding_open_rule_idx;
