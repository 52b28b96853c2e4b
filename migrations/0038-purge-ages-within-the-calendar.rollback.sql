-- A purge age reaches back no further than the calendar: '10000 years' failed every scheduled purge
-- depends: 0037-discards-kept-for-a-time

alter table sync.settings
    drop constraint settings_purge_after_within_calendar,
    drop constraint settings_discarded_purge_after_within_calendar;
