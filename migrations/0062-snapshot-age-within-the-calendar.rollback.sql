-- The snapshot warning age reaches back within the calendar, in one direction: '10000 years' failed every health report
-- depends: 0061-snapshot-age-warning

-- The values the migration replaced stay replaced: they failed every health report.
alter table sync.settings drop constraint settings_snapshot_warn_within_calendar;
