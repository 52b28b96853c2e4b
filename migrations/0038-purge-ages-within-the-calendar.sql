-- A purge age reaches back no further than the calendar: '10000 years' failed every scheduled purge
-- depends: 0037-discards-kept-for-a-time

-- The settings' checks bounded purge_after and discarded_purge_after below
-- (a day, in every part) but not above. A DBA who meant "keep them for good"
-- and wrote '10000 years' was accepted, and every scheduled purge failed
-- after it: now() - '10000 years' is before the first day PostgreSQL can
-- write (4714 BC), so the purge raised FS055 (purge_after) or "timestamp out
-- of range" with no setting named (discarded_purge_after), and deleted none
-- of the other kinds either: no closed finding, no discarded delivery, no
-- old job run, every night (hostile review). A thousand years keeps
-- everything for good and is within the calendar for millennia.
alter table sync.settings
    add constraint settings_purge_after_within_calendar check (purge_after <= interval '1000 years'),
    add constraint settings_discarded_purge_after_within_calendar
        check (discarded_purge_after <= interval '1000 years');
comment on constraint settings_purge_after_within_calendar on sync.settings is
    'purge_after is at most 1000 years (keep for good): further back than the calendar, now() - purge_after fails every scheduled purge.';
comment on constraint settings_discarded_purge_after_within_calendar on sync.settings is
    'discarded_purge_after is at most 1000 years (keep for good): further back than the calendar, now() - discarded_purge_after fails every scheduled purge.';
