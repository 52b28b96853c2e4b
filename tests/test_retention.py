"""Retention: purging old applied deliveries, and the indexes that keep a big inbox fast."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from conftest import Server, _clone
from helpers import (
    FREEZE_INBOX_DELETES,
    body,
    clocks_changed_within_the_last_day,
    raises_sqlstate,
    receive,
    wait_for_backend_gone,
    wait_for_lock_wait,
)

INBOX_ROWS = 200_000


def old_delivery(db: psycopg.Connection, status: str, age: str) -> int:
    """An inbox row received `age` ago with the given outcome (as the owner, bypassing the hook)."""
    row = db.execute(
        "insert into sync.inbox (received_at, body, status) values (now() - %s::interval, %s, %s)"
        " returning id",
        [age, body({"fragrance_id": 7}), status],
    ).fetchone()
    assert row is not None
    return row[0]


def remaining(db: psycopg.Connection) -> list[tuple[str, int]]:
    return db.execute("select status, count(*) from sync.inbox group by 1 order by 1").fetchall()


@pytest.fixture
def staged(db: psycopg.Connection) -> psycopg.Connection:
    """One old and one recent delivery of each status; deliveries are only stored, not processed."""
    db.execute("update sync.settings set apply_on_receipt = false")
    for status in ("pending", "applied", "ignored", "rejected", "discarded"):
        old_delivery(db, status, "40 days")
        old_delivery(db, status, "2 days")
    return db


def test_purge_deletes_only_applied_and_ignored_deliveries_older_than_the_age(
    staged: psycopg.Connection,
) -> None:
    assert staged.execute("select sync.purge_applied('30 days')").fetchone() == (2,)
    assert remaining(staged) == [
        ("applied", 1),
        ("discarded", 2),
        ("ignored", 1),
        ("pending", 2),
        ("rejected", 2),
    ]


@pytest.mark.parametrize("limit", [None, 10], ids=["all", "a batch"])
def test_a_spooled_delivery_applied_lately_is_kept_however_long_ago_it_was_received(
    db: psycopg.Connection, limit: int | None
) -> None:
    """Its key must outlive a replay of the drain, which would otherwise store it again."""
    key = "6f0e8a52-1c1d-4c47-9a34-6a1c1f3e2b10"
    spooled = db.execute(
        "select inbox_id, status from sync.receive_spooled(%s, now() - interval '40 days', %s)",
        [key, body({"fragrance_id": 7, "cost": 11})],
    ).fetchone()
    assert spooled is not None and spooled[1] == "applied"
    assert db.execute(
        "select sync.purge_applied('30 days', p_limit => %s)", [limit]
    ).fetchone() == (0,)
    replayed = db.execute(
        "select inbox_id from sync.receive_spooled(%s, now() - interval '40 days', %s)",
        [key, body({"fragrance_id": 7, "cost": 11})],
    ).fetchone()
    assert replayed == (spooled[0],)


def test_purge_with_a_limit_takes_the_oldest_first(staged: psycopg.Connection) -> None:
    oldest = old_delivery(staged, "applied", "50 days")
    assert staged.execute("select sync.purge_applied('30 days', p_limit => 1)").fetchone() == (1,)
    assert staged.execute("select count(*) from sync.inbox where id = %s", [oldest]).fetchone() == (
        0,
    )
    assert staged.execute("select sync.purge_applied('30 days', p_limit => 10)").fetchone() == (2,)


def test_purge_keeps_the_history_of_what_the_purged_deliveries_changed(
    db: psycopg.Connection,
) -> None:
    inbox_id = receive(db, {"fragrance_id": 7, "cost": 42})["inbox_id"]
    history = db.execute("select * from sync.fragrance_history order by id").fetchall()
    assert db.execute("select sync.purge_applied('0', p_force => true)").fetchone() == (1,)
    assert db.execute("select count(*) from sync.inbox where id = %s", [inbox_id]).fetchone() == (
        0,
    )
    assert db.execute("select * from sync.fragrance_history order by id").fetchall() == history


def _merged(
    db: psycopg.Connection, status: str, received: str, processed: str, **fields: Any
) -> int:
    """A delivery of fragrance 42 received and merged that long ago (as the owner)."""
    row = db.execute(
        "insert into sync.inbox (received_at, processed_at, body, fragrance_id, status,"
        " applied_fields, stale_fields) values (now() - %s::interval, now() - %s::interval,"
        " %s, 42, %s, %s, %s) returning id",
        [
            received,
            processed,
            body({"fragrance_id": 42, "name": "x"}),
            status,
            fields.get("applied", []),
            fields.get("stale", []),
        ],
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("limit", [None, 10], ids=["all", "a batch"])
def test_a_delivery_lost_as_stale_goes_at_the_purge_after_the_one_it_lost_to(
    db: psycopg.Connection, limit: int | None
) -> None:
    """The revert of the one it lost to reads it: the value before that change by receipt order.

    A change received after it was merged holds it back no longer, or a
    fragrance the CMS keeps editing would keep it for good.
    """
    lost = _merged(db, "ignored", "40 days", "35 days", stale=["name"])
    won = _merged(db, "applied", "39 days", "38 days", applied=["name"])
    recent = _merged(db, "applied", "2 days", "2 days", applied=["name"])
    purge = "select sync.purge_applied('30 days', p_limit => %s)"
    assert db.execute(purge, [limit]).fetchone() == (1,)
    kept = "select array_agg(id order by id) from sync.inbox"
    assert db.execute(kept).fetchone() == ([lost, recent],)
    assert db.execute(purge, [limit]).fetchone() == (1,)
    assert db.execute(kept).fetchone() == ([recent],)
    assert won not in (lost, recent)


@pytest.mark.parametrize(
    "call",
    [
        "select sync.purge_applied('23 hours')",
        "select sync.purge_applied('0')",
        "select sync.purge_applied(null)",
        "select sync.purge_applied('-1 day', p_force => true)",
        "select sync.purge_applied(null, p_force => true)",
        # Compared, a month is 30 days and a year 360: this is '5 days 12:00'.
        # Subtracted, it reaches back 12 hours, or 12 hours into the future.
        "select sync.purge_applied('-1 year 365 days 12 hours')",
        "select sync.purge_applied('1000000 years')",
    ],
)
def test_purge_refuses_a_risky_age_with_its_own_sqlstate(
    staged: psycopg.Connection, call: str
) -> None:
    before = remaining(staged)
    with raises_sqlstate("FS055"):
        staged.execute(call)
    assert remaining(staged) == before


@pytest.mark.parametrize(
    "age", ["12 hours", "-1 day", "-1 year 365 days 12 hours", "1 mon -29 days"]
)
def test_the_scheduled_purge_age_reaches_back_a_day_or_more_in_every_part(
    db: psycopg.Connection, age: str
) -> None:
    with raises_sqlstate("23514"):
        db.execute("update sync.settings set purge_after = %s::interval", [age])


@pytest.mark.parametrize("setting", ["purge_after", "discarded_purge_after"])
def test_a_purge_age_beyond_the_calendar_is_refused_not_left_to_fail_every_purge(
    db: psycopg.Connection, setting: str
) -> None:
    """'10000 years' (meant as "for good") made now() - age fail, so every purge failed.

    Nothing of any kind was purged after it, night after night; a thousand
    years keeps everything for good and purges.
    """
    with raises_sqlstate("23514"):
        db.execute(f"update sync.settings set {setting} = '10000 years'")
    db.execute(f"update sync.settings set {setting} = '1000 years'")
    assert db.execute("call sync.purge_inbox()").fetchone() == ("ok",)


def test_purge_under_24_hours_is_refused_on_a_day_the_clocks_changed(
    staged: psycopg.Connection,
) -> None:
    """'23 hours 30 minutes' reached back further than the 23-hour day, so it purged unforced."""
    clocks_changed_within_the_last_day(staged)
    old_delivery(staged, "applied", "23 hours 45 minutes")
    before = remaining(staged)
    with raises_sqlstate("FS055"):
        staged.execute("select sync.purge_applied('23 hours 30 minutes')")
    assert remaining(staged) == before


def test_a_day_of_age_is_24_hours_on_a_day_the_clocks_changed(
    staged: psycopg.Connection,
) -> None:
    """'1 day' reached back 23 hours there: a delivery 23 and a half hours old went."""
    clocks_changed_within_the_last_day(staged)
    kept = old_delivery(staged, "applied", "23 hours 30 minutes")
    staged.execute("select sync.purge_applied('1 day')")
    assert staged.execute("select id from sync.inbox where id = %s", [kept]).fetchone() == (kept,)


def a_day_back_of_the_purge_age(db: psycopg.Connection, kind: str) -> None:
    """A row of `kind` 30 minutes short of 30 days old, where the last day was 23 hours.

    Its age is counted in hours, which no time zone moves.
    """
    db.execute(
        "update sync.settings set purge_after = '30 days', discarded_purge_after = '30 days'"
    )
    clocks_changed_within_the_last_day(db)
    if kind == "closed finding":
        a_finding(db, 1, "719 hours 30 minutes")
    elif kind == "discarded delivery":
        inbox_id = old_delivery(db, "rejected", "40 days")
        db.execute("select sync.discard(%s, 'test payload')", [inbox_id])
        db.execute(
            "update sync.inbox set discarded_at = now() - interval '719 hours 30 minutes'"
            " where id = %s",
            [inbox_id],
        )
    else:
        db.execute(
            "insert into sync.job_run (job, started_at, finished_at, status)"
            " select 'check_catalog', now() - ago::interval, now() - ago::interval, 'ok'"
            " from (values (1, '719 hours 30 minutes'), (2, '1 hour')) as r (n, ago)"
            " order by n"
        )


@pytest.mark.parametrize("kind", ["closed finding", "discarded delivery", "job run"])
def test_every_purge_age_counts_a_day_as_24_hours_on_a_day_the_clocks_changed(
    db: psycopg.Connection, kind: str
) -> None:
    """30 days reached back 30 days less an hour there: a row 29 days 23.5 hours old went.

    sync.purge_applied already counted in UTC; the other kinds the scheduled
    purge deletes counted in the session's TimeZone.
    """
    a_day_back_of_the_purge_age(db, kind)
    run = db.execute("select detail from sync.run_job('purge_inbox')").fetchone()
    assert run is not None
    assert (
        run[0]["closed_findings_deleted"],
        run[0]["discarded_deleted"],
        run[0]["job_runs_deleted"],
    ) == (0, 0, 0)


def test_purge_refuses_a_limit_below_one(staged: psycopg.Connection) -> None:
    with raises_sqlstate("FS004"):
        staged.execute("select sync.purge_applied('30 days', p_limit => 0)")


def test_purge_under_a_day_is_allowed_when_forced(staged: psycopg.Connection) -> None:
    assert staged.execute("select sync.purge_applied('1 hour', p_force => true)").fetchone() == (4,)


def test_a_dba_purges_through_the_function_and_cannot_delete_directly(
    staged: psycopg.Connection, dba: psycopg.Connection
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dba.execute("delete from sync.inbox")
    assert dba.execute("select sync.purge_applied('30 days')").fetchone() == (2,)


def test_the_hook_cannot_purge(server: Server, dbname: str) -> None:
    with (
        psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as hook,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        hook.execute("select sync.purge_applied('30 days')")


# --- The index plan at size -------------------------------------------------------------

# A big inbox: 100 days of deliveries, one every 43 seconds; nearly all applied or
# ignored, a rejected one in 2,000, a discarded one in 20,000, the newest 50 pending.
BIG_INBOX = """
    insert into sync.inbox (received_at, body, fragrance_id, status, attempts)
    select now() - (%(n)s - i) * interval '43 seconds',
           convert_to('{"fragrance_id": ' || i %% 5000 || ', "forbidden": true}', 'UTF8'),
           i %% 5000,
           case when i > %(n)s - 50 then 'pending'
                when i %% 20000 = 0 then 'discarded'
                when i %% 2000 = 0 then 'rejected'
                when i %% 10 = 0 then 'ignored'
                else 'applied' end,
           1
    from generate_series(1, %(n)s) as i
"""

# The hot paths, as the sync functions and the DBA views run them.
HOT_PATHS: list[tuple[str, str, str]] = [
    (
        "pending queue",
        "select id from sync.inbox where status = 'pending' order by id limit 1000"
        " for update skip locked",
        "inbox_pending_idx",
    ),
    ("quarantine listing", "select * from sync.quarantine", "inbox_rejected_idx"),
    (
        "one fragrance's deliveries",
        "select * from sync.inbox where fragrance_id = 7 order by id desc limit 20",
        "inbox_fragrance_idx",
    ),
    (
        "purge by age",
        "delete from sync.inbox where received_at < now() - interval '97 days'"
        " and coalesce(processed_at, received_at) < now() - interval '97 days'"
        " and status in ('applied', 'ignored')",
        "inbox_received_at_idx",
    ),
    (
        "purge a batch of the oldest",
        "delete from sync.inbox where id = any (array(select id from sync.inbox"
        " where received_at < now() - interval '97 days'"
        " and coalesce(processed_at, received_at) < now() - interval '97 days'"
        " and status in ('applied', 'ignored') order by received_at limit 10000))",
        "inbox_received_at_idx",
    ),
    (
        "newest delivery, for health",
        "select max(received_at) from sync.inbox where origin = 'webhook'",
        "inbox_received_at_idx",
    ),
    (
        "inbox position at a time, for drift",
        "select id from sync.inbox where received_at <= now() - interval '3 days'"
        " order by received_at desc limit 1",
        "inbox_received_at_idx",
    ),
]


@pytest.fixture(scope="module")
def big_inbox(
    server: Server, adopted_template: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    for name in _clone(server, adopted_template, request):
        with psycopg.connect(server.url(name), autocommit=True) as conn:
            conn.execute(BIG_INBOX, {"n": INBOX_ROWS})
            conn.execute("analyze sync.inbox")
        yield name


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.mark.parametrize(
    ("query", "index"), [pytest.param(q, i, id=name) for name, q, i in HOT_PATHS]
)
def test_a_hot_path_uses_its_index_not_a_scan_of_the_inbox(
    server: Server, big_inbox: str, query: str, index: str
) -> None:
    with psycopg.connect(server.url(big_inbox)) as conn:
        row = conn.execute(f"explain (format json) {query}").fetchone()
        conn.rollback()
    assert row is not None
    nodes = list(plan_nodes(row[0][0]["Plan"]))
    scans = {(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes}
    assert not [s for s in scans if s[0] == "Seq Scan" and s[1] == "inbox"], scans
    assert index in {n.get("Index Name") for n in nodes}, scans


def a_finding(db: psycopg.Connection, fragrance_id: int, closed_ago: str | None) -> None:
    """A finding of the catalog, closed `closed_ago` (null: open), as the owner writes it."""
    db.execute(
        "insert into sync.finding (rule, fragrance_id, field, value, message, severity,"
        " rules_version, first_seen_at, closed_at, closed_by)"
        " select 'cost.fractional', %(id)s, 'cost', '1.5', 'cost 1.5 has a fractional part',"
        " 'warning', max(version), now() - interval '200 days',"
        " now() - %(ago)s::interval, case when %(ago)s is not null then 'test' end"
        " from sync.rule_version",
        {"id": fragrance_id, "ago": closed_ago},
    )


def test_the_scheduled_purge_deletes_findings_closed_before_the_purge_age(
    db: psycopg.Connection,
) -> None:
    a_finding(db, 1, "100 days")
    a_finding(db, 2, "10 days")
    a_finding(db, 3, None)
    run = db.execute("select status, detail from sync.run_job('purge_inbox')").fetchone()
    assert run is not None and run[0] == "ok" and run[1]["closed_findings_deleted"] == 1
    left = db.execute(
        "select fragrance_id from sync.finding where rule = 'cost.fractional' order by 1"
    ).fetchall()
    assert left == [(2,), (3,)]


# --- What the scheduled purge keeps, and for how long -------------------------------------


def test_the_scheduled_purge_deletes_deliveries_discarded_longer_ago_than_a_year(
    db: psycopg.Connection,
) -> None:
    """Counted from the discard: the evidence of a decision lives as long as the decision."""
    written_off_long_ago = old_delivery(db, "rejected", "800 days")
    written_off_today = old_delivery(db, "rejected", "800 days")
    still_quarantined = old_delivery(db, "rejected", "800 days")
    db.execute("select sync.discard(%s, 'test payload')", [written_off_long_ago])
    db.execute("select sync.discard(%s, 'test payload')", [written_off_today])
    db.execute(
        "update sync.inbox set discarded_at = now() - interval '400 days' where id = %s",
        [written_off_long_ago],
    )
    assert db.execute("call sync.purge_inbox()").fetchone() == ("ok",)
    left = db.execute(
        "select id from sync.inbox where id = any (%s) order by id",
        [[written_off_long_ago, written_off_today, still_quarantined]],
    ).fetchall()
    assert left == [(written_off_today,), (still_quarantined,)]


def test_a_discard_records_when(db: psycopg.Connection) -> None:
    inbox_id = old_delivery(db, "rejected", "3 days")
    with db.transaction():
        db.execute("select sync.discard(%s, 'test payload')", [inbox_id])
        assert db.execute(
            "select discarded_at = now() from sync.inbox where id = %s", [inbox_id]
        ).fetchone() == (True,)


def test_the_scheduled_purge_deletes_old_job_runs_but_the_last_of_each_job(
    db: psycopg.Connection,
) -> None:
    """The scheduler's log is kept purge_after; sync.schedule() still shows each job's last run."""
    runs = db.execute(
        "insert into sync.job_run (job, started_at, finished_at, status)"
        " select job, now() - ago::interval, now() - ago::interval, 'ok'"
        " from (values (1, 'check_catalog', '200 days'), (2, 'check_catalog', '100 days'),"
        "              (3, 'check_catalog', '1 day'), (4, 'check_drift', '300 days'),"
        "              (5, 'check_drift', '200 days')) as r (n, job, ago)"
        " order by n returning id"
    ).fetchall()
    db.execute("call sync.purge_inbox()")
    left = db.execute(
        "select id from sync.job_run where id = any (%s) order by id", [[r[0] for r in runs]]
    ).fetchall()
    assert left == [runs[2], runs[4]]
    assert db.execute(
        "select last_status from sync.schedule() where job = 'check_drift'"
    ).fetchone() == ("ok",)


def test_the_scheduled_purge_keeps_the_last_successful_run_of_a_job_that_fails_since(
    db: psycopg.Connection,
) -> None:
    """The status page tells since when the catalog was checked, not "never"."""
    runs = db.execute(
        "insert into sync.job_run (job, started_at, finished_at, status)"
        " select 'check_catalog', now() - ago::interval, now() - ago::interval, status"
        " from (values (1, '200 days', 'ok'), (2, '150 days', 'failed'), (3, '1 day', 'failed'))"
        " as r (n, ago, status) order by n returning id"
    ).fetchall()
    db.execute("call sync.purge_inbox()")
    left = db.execute(
        "select id from sync.job_run where id = any (%s) order by id", [[r[0] for r in runs]]
    ).fetchall()
    assert left == [runs[0], runs[2]]
    report = db.execute("select sync.status_report()").fetchone()
    assert report is not None and report[0]["catalog_checked_ago"].startswith("200 d")


def test_a_failed_scheduled_purge_is_recorded_not_raised(db: psycopg.Connection) -> None:
    db.execute(FREEZE_INBOX_DELETES)
    assert db.execute("call sync.purge_inbox()").fetchone() == ("failed",)
    run = db.execute(
        "select status, detail ->> 'error' from sync.job_run where job = 'purge_inbox'"
    ).fetchall()
    assert run == [("failed", "deletes are frozen today")]


def test_the_scheduled_purge_cannot_run_inside_a_transaction_block(
    server: Server, dbname: str
) -> None:
    """It commits between chunks; in a caller's transaction it refuses rather than purge in one."""
    with psycopg.connect(server.url(dbname)) as conn, raises_sqlstate("2D000"):
        conn.execute("call sync.purge_inbox()")


def test_a_step_of_the_scheduled_purge_needs_a_running_purge(db: psycopg.Connection) -> None:
    run = db.execute("select id from sync.run_job('purge_inbox')").fetchone()
    assert run is not None
    with raises_sqlstate("FS081"):
        db.execute("select sync.purge_inbox_step(%s, 1000)", [run[0]])


def test_a_step_of_the_scheduled_purge_belongs_to_the_session_that_started_it(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Another session's step purged beside it and ended the run ok with chunks still to go.

    The procedure's own next step then found its run no longer running and failed (FS081).
    """
    run = dba.execute("select id from sync.purge_inbox_step(null, 1000)").fetchone()
    assert run is not None
    with raises_sqlstate("FS081"):
        db.execute("select sync.purge_inbox_step(%s, 1000)", [run[0]])
    assert dba.execute("select status from sync.job_run where id = %s", run).fetchone() == (
        "running",
    )
    assert dba.execute("select status from sync.purge_inbox_step(%s, 1000)", run).fetchone() == (
        "ok",
    )


# --- A purge that does not reach its end --------------------------------------------------


def a_purge_waiting(
    db: psycopg.Connection, purger: psycopg.Connection
) -> tuple[threading.Thread, list[BaseException]]:
    """CALL sync.purge_inbox(10) on `purger` in a thread, once it waits for a lock.

    Returns the thread and the list that holds what the CALL raised once it ends.
    """
    errors: list[BaseException] = []

    def purge() -> None:
        try:
            purger.execute("call sync.purge_inbox(10)")
        except psycopg.Error as error:
            errors.append(error)

    thread = threading.Thread(target=purge)
    thread.start()
    wait_for_lock_wait(db, purger.info.backend_pid)
    return thread, errors


@contextmanager
def a_purge_stuck_in_its_second_chunk(
    server: Server, dbname: str, db: psycopg.Connection, statement_timeout: str = "0"
) -> Iterator[tuple[psycopg.Connection, threading.Thread, list[BaseException]]]:
    """CALL sync.purge_inbox(10) as a DBA, its first chunk committed, its second waiting for a row.

    Yields the DBA's connection (its backend waits in the second chunk), the
    thread that runs the CALL, and what the CALL raised once it ends; the row
    is released on leaving.
    """
    db.execute("update sync.settings set apply_on_receipt = false")
    ids = [old_delivery(db, "applied", "400 days") for _ in range(25)]
    with (
        psycopg.connect(server.url(dbname)) as holder,
        psycopg.connect(server.url(dbname, user="alice"), autocommit=True) as purger,
    ):
        holder.execute("select from sync.inbox where id = %s for update", [ids[14]])
        purger.execute("select set_config('statement_timeout', %s, false)", [statement_timeout])
        thread, errors = a_purge_waiting(db, purger)
        try:
            yield purger, thread, errors
        finally:
            holder.rollback()
            thread.join()


def purge_runs(db: psycopg.Connection) -> list[tuple[str, Any]]:
    return db.execute(
        "select status, detail ->> 'deleted' from sync.job_run"
        " where job = 'purge_inbox' order by id"
    ).fetchall()


@pytest.mark.parametrize("cancel", ["pg_cancel_backend", "statement_timeout"])
def test_a_cancelled_purge_ends_its_run_as_interrupted_with_its_committed_chunks_counted(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection, cancel: str
) -> None:
    """Cancelled, its run read `running` for good, and the CALL's session stays open."""
    timeout = "3s" if cancel == "statement_timeout" else "0"
    with a_purge_stuck_in_its_second_chunk(server, dbname, db, timeout) as (purger, thread, errors):
        if cancel == "pg_cancel_backend":
            db.execute("select pg_cancel_backend(%s)", [purger.info.backend_pid])
        thread.join()
        assert [type(e) for e in errors] == [psycopg.errors.QueryCanceled]
        assert purge_runs(db) == [("interrupted", "10")]
        assert dba.execute(
            "select last_status from sync.schedule() where job = 'purge_inbox'"
        ).fetchone() == ("interrupted",)


def test_a_purge_whose_session_ended_no_longer_reads_as_running(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Its backend killed (a crash, pg_terminate_backend), nothing could record the end."""
    with a_purge_stuck_in_its_second_chunk(server, dbname, db) as (purger, thread, _):
        db.execute("select pg_terminate_backend(%s, 10000)", [purger.info.backend_pid])
        thread.join()
        assert dba.execute(
            "select last_status from sync.schedule() where job = 'purge_inbox'"
        ).fetchone() == ("interrupted",)
        health = dba.execute("select reason from sync.health").fetchone()
        assert health is not None and "the scheduled job purge_inbox was interrupted" in health[0]

    assert db.execute("call sync.purge_inbox()").fetchone() == ("ok",)
    assert purge_runs(db) == [("interrupted", "10"), ("ok", "15")]


def test_a_purge_stuck_in_a_chunk_reads_running(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Waiting in a chunk, it still runs: it holds its lock and a transaction."""
    with a_purge_stuck_in_its_second_chunk(server, dbname, db):
        assert dba.execute(
            "select last_status from sync.schedule() where job = 'purge_inbox'"
        ).fetchone() == ("running",)
    assert purge_runs(db) == [("ok", "25")]


@contextmanager
def _a_purge_cancelled_between_two_steps(
    server: Server, dbname: str, db: psycopg.Connection
) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """A purge of 25 deliveries whose CALL was cancelled after its first step; its session stays.

    Yields the holder of the lock its second step's COMMIT waited for (still
    held) and the purger's open, idle session.
    """
    db.execute("update sync.settings set apply_on_receipt = false")
    for _ in range(25):
        old_delivery(db, "applied", "400 days")
    # The second step's COMMIT waits for a lock the test holds: the cancel
    # lands there, between two steps, in no chunk.
    db.execute("""
        create function public.wait_at_commit() returns trigger language plpgsql as $$
        begin perform pg_advisory_xact_lock(4242); return null; end $$;
        create constraint trigger _010_wait_at_commit after update on sync.job_run
            deferrable initially deferred for each row execute function public.wait_at_commit();
    """)
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as holder,
        psycopg.connect(server.url(dbname, user="alice"), autocommit=True) as purger,
    ):
        holder.execute("select pg_advisory_lock(4242)")
        thread, errors = a_purge_waiting(db, purger)
        db.execute("select pg_cancel_backend(%s)", [purger.info.backend_pid])
        thread.join()
        assert [type(e) for e in errors] == [psycopg.errors.QueryCanceled]
        yield holder, purger


def test_a_purge_cancelled_between_two_steps_reads_interrupted_while_its_session_stays(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """A cancel in a COMMIT of the procedure ends the CALL, and nothing records it.

    The session stays (a psql prompt left open) with the run's lock: the run
    read `running`, in sync.schedule() and to health, until it closed.
    """
    with _a_purge_cancelled_between_two_steps(server, dbname, db) as (holder, purger):
        # Only its first step committed; its session is open and idle.
        assert purge_runs(db) == [("running", "0")]
        assert dba.execute(
            "select last_status from sync.schedule() where job = 'purge_inbox'"
        ).fetchone() == ("interrupted",)
        health = dba.execute("select reason from sync.health").fetchone()
        assert health is not None and "the scheduled job purge_inbox was interrupted" in health[0]
        holder.execute("select pg_advisory_unlock(4242)")
        purger_pid = purger.info.backend_pid
    db.execute("drop trigger _010_wait_at_commit on sync.job_run")
    # Its session gone, the next run records it and purges what is left.
    wait_for_backend_gone(db, purger_pid)
    assert db.execute("call sync.purge_inbox()").fetchone() == ("ok",)
    assert purge_runs(db) == [("interrupted", "0"), ("ok", "25")]


def test_a_purge_behind_one_cancelled_between_steps_says_whose_session_holds_it(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Refused as `already running` (FS084), with a hint to let that run end.

    That run had ended: its CALL was cancelled, its psql left open. Every
    purge, the nightly one too, was refused while the DBA waited for it.
    """
    with _a_purge_cancelled_between_two_steps(server, dbname, db) as (holder, purger):
        holder.execute("select pg_advisory_unlock(4242)")
        db.execute("drop trigger _010_wait_at_commit on sync.job_run")
        second_errors = _call_purge(server.url(dbname, user="alice"))
        assert [getattr(e, "sqlstate", None) for e in second_errors] == ["FS086"]
        diag = second_errors[0].diag  # type: ignore[attr-defined]
        assert "was interrupted" in (diag.message_primary or "")
        pid = purger.info.backend_pid
        assert f"pg_terminate_backend({pid})" in (diag.message_hint or "")
        assert purge_runs(db) == [("running", "0")]
    wait_for_backend_gone(db, pid)
    assert db.execute("call sync.purge_inbox()").fetchone() == ("ok",)


def test_a_second_purge_while_one_runs_refuses_and_leaves_no_record_of_a_purge(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Two CALLs at once: the second once recorded `ok` with nothing deleted.

    It waited on the first's rows, found them gone, and ended while the first
    still had chunks to go.

    Now it refuses at once, says which run is going and what to do, and the
    only record is the first run's, which purges everything.
    """
    with a_purge_stuck_in_its_second_chunk(server, dbname, db) as (_, _thread, first_errors):
        second_errors: list[BaseException] = []
        second = threading.Thread(
            target=lambda: second_errors.extend(_call_purge(server.url(dbname, user="alice")))
        )
        second.start()
        # Either it ends (refused) or it waits behind the first's rows.
        while second.is_alive() and not _any_other_backend_waits(db, dba):
            second.join(0.01)
        refused_at_once = not second.is_alive()
    second.join()
    assert refused_at_once, "the second CALL waited behind the first"
    assert [getattr(e, "sqlstate", None) for e in second_errors] == ["FS084"]
    diag = second_errors[0].diag  # type: ignore[attr-defined]
    assert "already running" in (diag.message_primary or "")
    assert "sync.schedule()" in (diag.message_hint or "")
    assert first_errors == []
    assert purge_runs(db) == [("ok", "25")]


def _call_purge(url: str) -> list[BaseException]:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("call sync.purge_inbox(10)")
    except psycopg.Error as error:
        return [error]
    return []


def _any_other_backend_waits(db: psycopg.Connection, dba: psycopg.Connection) -> bool:
    """Whether a second backend of alice (besides the stuck purger and `dba`) waits for a lock."""
    row = db.execute(
        "select count(*) from pg_stat_activity where usename = 'alice'"
        " and wait_event_type = 'Lock' and pid <> %s",
        [dba.info.backend_pid],
    ).fetchone()
    return row is not None and row[0] >= 2
