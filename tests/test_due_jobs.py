"""The scheduled jobs where the server has no pg_cron: one cron line a minute follows sync.job.

``CALL sync.run_due_jobs()`` runs what ``sync.due_jobs()`` lists: the enabled
jobs pg_cron does not run whose schedule named a minute of the last hour
after their last run. docker-compose's database has no pg_cron, and three
cron lines that copied sync.job's schedules did not follow a DBA's change.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest
from helpers import DUE_HALF_AN_HOUR_AGO

#: (schedule, local minute, matches): cron's reading of each field.
CRON_CASES = [
    ("17 3 * * *", "2026-12-04 03:17", True),
    ("17 3 * * *", "2026-12-04 03:18", False),
    ("17 3 * * *", "2026-12-04 04:17", False),
    ("*/15 * * * *", "2026-12-04 00:45", True),
    ("*/15 * * * *", "2026-12-04 00:50", False),
    ("5,35 * * * *", "2026-12-04 10:35", True),
    ("5,35 * * * *", "2026-12-04 10:36", False),
    ("0 9-17/2 * * *", "2026-12-04 11:00", True),
    ("0 9-17/2 * * *", "2026-12-04 12:00", False),
    ("0 9-17/2 * * *", "2026-12-04 19:00", False),
    # A number with a step runs to the field's end.
    ("0 5/6 * * *", "2026-12-04 23:00", True),
    ("0 5/6 * * *", "2026-12-04 06:00", False),
    ("0 0 1-7 * *", "2026-12-05 00:00", True),
    ("0 0 1-7 * *", "2026-12-08 00:00", False),
    ("30 2 * 12 *", "2026-12-04 02:30", True),
    ("30 2 * 11 *", "2026-12-04 02:30", False),
    # 2026-12-06 is a Sunday: weekday 0 and 7 both name it.
    ("0 4 * * 0", "2026-12-06 04:00", True),
    ("0 4 * * 7", "2026-12-06 04:00", True),
    ("0 4 * * 5-7", "2026-12-06 04:00", True),
    ("0 4 * * 0", "2026-12-07 04:00", False),
    ("0 0 * * 1-5", "2026-12-04 00:00", True),
    ("0 0 * * 1-5", "2026-12-05 00:00", False),
    # Day of the month and weekday both restricted: either matches.
    ("0 0 1 * 1", "2026-12-01 00:00", True),
    ("0 0 1 * 1", "2026-12-07 00:00", True),
    ("0 0 1 * 1", "2026-12-08 00:00", False),
    # Only one restricted: both must match.
    ("0 0 1 * *", "2026-12-07 00:00", False),
    ("0 0 * * 1", "2026-12-01 00:00", False),
    # What cron would refuse names no minute.
    ("*/0 * * * *", "2026-12-04 00:00", False),
    ("a b c d e", "2026-12-04 00:00", False),
    ("0 0 * * * *", "2026-12-04 00:00", False),
]


@pytest.mark.parametrize(("schedule", "minute", "matches"), CRON_CASES)
def test_a_schedule_names_the_minutes_cron_would_run_it(
    tx: psycopg.Connection, schedule: str, minute: str, matches: bool
) -> None:
    found = tx.execute(
        "select sync_private.cron_matches(%s, %s::timestamp)", [schedule, minute]
    ).fetchone()
    assert found == (matches,)


def _only(db: psycopg.Connection, job: str, schedule: str, enabled_at: str) -> None:
    """Leave ``job`` the only enabled job, with this schedule, enabled at that moment."""
    db.execute("set time zone 'UTC'")
    db.execute("update sync.job set enabled = (name = %s)", [job])
    db.execute(
        "update sync.job set schedule = %s, enabled_at = %s where name = %s",
        [schedule, enabled_at, job],
    )


def _due(conn: psycopg.Connection, now: str) -> list[tuple[str, datetime]]:
    return conn.execute("select job, due_at from sync.due_jobs(%s)", [now]).fetchall()


def test_a_job_is_due_from_a_minute_its_schedule_named_in_the_last_hour(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    _only(db, "check_catalog", "17 3 * * *", "2026-12-01 00:00Z")
    dba.execute("set time zone 'UTC'")
    assert _due(dba, "2026-12-04 03:16Z") == []
    (due,) = _due(dba, "2026-12-04 03:17:30Z")
    assert due[0] == "check_catalog" and due[1].isoformat() == "2026-12-04T03:17:00+00:00"
    # A scheduler that was late, or busy with another job, still runs it.
    assert [job for job, _ in _due(dba, "2026-12-04 04:16Z")] == ["check_catalog"]
    # An hour late it is skipped, as cron would (health says so a day on).
    assert _due(dba, "2026-12-04 04:17Z") == []


def test_a_job_that_ran_after_its_minute_is_not_due_again(db: psycopg.Connection) -> None:
    _only(db, "check_catalog", "17 3 * * *", "2026-12-01 00:00Z")
    db.execute(
        "insert into sync.job_run (job, started_at, finished_at, status)"
        " values ('check_catalog', '2026-12-04 03:17:01Z', '2026-12-04 03:17:02Z', 'ok')"
    )
    assert _due(db, "2026-12-04 03:20Z") == []
    assert [job for job, _ in _due(db, "2026-12-05 03:17Z")] == ["check_catalog"]


def test_a_job_is_not_due_for_a_minute_before_it_was_enabled(db: psycopg.Connection) -> None:
    _only(db, "check_catalog", "17 3 * * *", "2026-12-04 03:30Z")
    assert _due(db, "2026-12-04 03:40Z") == []


def test_a_disabled_job_is_never_due(db: psycopg.Connection) -> None:
    _only(db, "check_catalog", "* * * * *", "2026-12-01 00:00Z")
    db.execute("update sync.job set enabled = false")
    assert _due(db, "2026-12-04 03:40Z") == []


def test_the_schedule_is_read_in_the_sessions_time_zone(db: psycopg.Connection) -> None:
    """sync.job says its schedule is in the server's time zone, which a session starts with."""
    _only(db, "check_drift", "27 4 * * *", "2026-12-01 00:00Z")
    db.execute("set time zone 'Europe/Paris'")
    assert [job for job, _ in _due(db, "2026-12-04 03:27Z")] == ["check_drift"]
    assert _due(db, "2026-12-04 04:27Z") == []


def _run_due_jobs(conn: psycopg.Connection) -> None:
    conn.execute("set statement_timeout = 0")
    conn.execute("call sync.run_due_jobs()")


def _runs(db: psycopg.Connection) -> list[tuple[str, str]]:
    return db.execute("select job, status from sync.job_run order by id").fetchall()


def test_a_dbas_cron_line_runs_each_due_job_once_and_records_it(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    db.execute(DUE_HALF_AN_HOUR_AGO)
    _run_due_jobs(dba)
    assert sorted(_runs(db)) == [
        ("check_catalog", "ok"),
        # No CMS snapshot loaded: recorded as failed, and the others still ran.
        ("check_drift", "failed"),
        ("purge_inbox", "ok"),
    ]
    _run_due_jobs(dba)
    assert len(_runs(db)) == 3


def test_the_due_jobs_run_once_when_two_schedulers_call_at_once(
    server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Two hosts' cron lines: the second finds the first at work and leaves the jobs to it."""
    db.execute(DUE_HALF_AN_HOUR_AGO)
    with psycopg.connect(server.url(dbname), autocommit=True) as first:
        first.execute("select pg_advisory_lock(hashtext('sync.run_due_jobs'))")
        notices: list[str] = []
        dba.add_notice_handler(lambda n: notices.append(n.message_primary or ""))
        _run_due_jobs(dba)
    assert _runs(db) == []
    assert notices == ["another session is running the due jobs; this one leaves them to it"]


def test_a_login_that_may_not_run_the_jobs_cannot_keep_them_from_running_by_their_lock(
    server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Any login may take any advisory lock: the smart library's read-only one took the schedulers'.

    Every cron line then left the jobs to it, for as long as its session
    lasted (hostile review). The jobs run, and a warning names the holder.
    """
    db.execute(DUE_HALF_AN_HOUR_AGO)
    library = server.url(dbname, user="smart_library_login")
    with psycopg.connect(library, autocommit=True) as squatter:
        squatter.execute("select pg_advisory_lock(hashtext('sync.run_due_jobs'))")
        notices: list[str] = []
        dba.add_notice_handler(lambda n: notices.append(n.message_primary or ""))
        _run_due_jobs(dba)
    assert sorted(job for job, _ in _runs(db)) == ["check_catalog", "check_drift", "purge_inbox"]
    assert [n for n in notices if "smart_library_login" in n] != []
