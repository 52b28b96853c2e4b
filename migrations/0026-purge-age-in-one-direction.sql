-- A purge age counts back in every part: '-1 mon 31 days' passed the check and purged today's deliveries
-- depends: 0021-rules-and-findings

-- Intervals compare with 30-day months, but now() - purge_after counts
-- calendar months: '-1 mon 31 days' is '1 day' to the check and now() to the
-- purge, which then took deliveries applied a second ago (hostile review).
-- Each part (months, days, time) must be zero or more.
alter table sync.settings drop constraint settings_purge_after_check;
alter table sync.settings add constraint settings_purge_after_check check (
    purge_after >= interval '1 day'
    and date_trunc('month', purge_after) >= interval '0'
    and date_trunc('day', purge_after) - date_trunc('month', purge_after) >= interval '0'
    and purge_after - date_trunc('day', purge_after) >= interval '0'
);
