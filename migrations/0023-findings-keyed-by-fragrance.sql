-- Key the open findings by fragrance first, so a lookup by fragrance can only take that index
-- depends: 0021-rules-and-findings

-- The merge and the catalog check find a fragrance's open findings by its id
-- under plans kept for the session. With the key (rule, fragrance_id) beside a
-- second index on fragrance_id, a plan made while sync.finding was empty took
-- the key for such a lookup, with fragrance_id as a filter on its second
-- column: the whole index read per fragrance, 1.1 s for a catalog of 5,000
-- and quadratic beyond (measured). One key led by fragrance_id serves both
-- lookups (by fragrance, and by fragrance and rule) and the ON CONFLICT of a
-- new finding.
drop index sync.finding_open_idx;
create unique index finding_open_idx on sync.finding (fragrance_id, rule) where closed_at is null;
comment on index sync.finding_open_idx is
    'One open finding per fragrance and rule; the way to a fragrance''s open findings.';
drop index sync.finding_open_fragrance_idx;
