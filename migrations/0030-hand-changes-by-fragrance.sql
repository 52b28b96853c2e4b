-- Index the hand changes of the history by fragrance and moment, for the drift report
-- depends: 0028-number-out-of-range

-- sync.drift (db/70-drift.sql) asks, for each fragrance that differs from the
-- CMS snapshot or is missing, whether a hand change (a history row without an
-- inbox id) was made after the snapshot was taken. The history keeps every
-- delivery's row for good, so by fragrance alone that reads all of them; hand
-- changes are few, and the merge's rows (which carry an inbox id) never enter
-- this index, so a delivery pays nothing for it.
create index fragrance_history_hand_idx on sync.fragrance_history (fragrance_id, changed_at)
    where inbox_id is null;
comment on index sync.fragrance_history_hand_idx is
    'The history rows of hand changes (no inbox id), by fragrance and moment: whether a fragrance was changed by hand after a CMS snapshot (sync.drift).';
