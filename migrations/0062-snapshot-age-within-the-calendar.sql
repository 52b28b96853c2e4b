-- The snapshot warning age reaches back within the calendar, in one direction: '10000 years' failed every health report
-- depends: 0061-snapshot-age-warning

-- snapshot_warn_after was only checked to be more than zero. A DBA who meant
-- "never warn" and wrote '10000 years' was accepted, and sync.health,
-- sync.health_at, sync.metrics() and the status page all raised "timestamp
-- out of range" after it: p_now - '10000 years' is before the first day
-- PostgreSQL can write. An age with a part back and a part forward ('10000
-- years -3590000 days') passed as more than zero and failed the same way,
-- and '1 mon -29 days' reached after now in February, so every snapshot
-- warned (hostile review). As purge_after (0026, 0038): every part zero or
-- more, and at most 1000 years. A value already set that breaks it (every
-- health report failed with it, or read nonsense) becomes the default.
update sync.settings
set snapshot_warn_after = interval '30 days'
where not (snapshot_warn_after <= interval '1000 years'
           and date_trunc('month', snapshot_warn_after) >= interval '0'
           and date_trunc('day', snapshot_warn_after) - date_trunc('month', snapshot_warn_after) >= interval '0'
           and snapshot_warn_after - date_trunc('day', snapshot_warn_after) >= interval '0');
alter table sync.settings
    add constraint settings_snapshot_warn_within_calendar check (
        snapshot_warn_after <= interval '1000 years'
        and date_trunc('month', snapshot_warn_after) >= interval '0'
        and date_trunc('day', snapshot_warn_after) - date_trunc('month', snapshot_warn_after) >= interval '0'
        and snapshot_warn_after - date_trunc('day', snapshot_warn_after) >= interval '0'
    );
comment on constraint settings_snapshot_warn_within_calendar on sync.settings is
    'snapshot_warn_after is at most 1000 years (never warn, in effect) and zero or more in every part (months, days, time): further back than the calendar, every health report failed; a part forward could reach after now.';
