-- The history keeps the receipt position a hand change took
-- depends: 0056-old-code-revokes-from-public

alter table sync.fragrance_history drop column inbox_position;
