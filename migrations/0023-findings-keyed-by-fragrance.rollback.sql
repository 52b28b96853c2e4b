-- Put back the keys of open findings as 0021 made them
drop index sync.finding_open_idx;
create unique index finding_open_idx on sync.finding (rule, fragrance_id) where closed_at is null;
create index finding_open_fragrance_idx on sync.finding (fragrance_id) where closed_at is null;
