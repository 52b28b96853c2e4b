-- The rules name.html, description.html ("Rose &amp; Oud", "<p>Petals</p>") and cost.implausible (above 1,000)
-- depends: 0059-pg-cron-jobids

-- Their findings go with them (0033). The release rolled back to has no rule
-- for such texts or costs: they pass again.
delete from sync.rule where code in ('name.html', 'description.html', 'cost.implausible');
comment on column sync.rule.parameter is
    'The rule''s number where it has one: a length limit, the largest cost, the most decimal places, the most combining marks in a row (<field>.stacked_marks); null for a rule without one.';
