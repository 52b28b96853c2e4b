"""Health: one row that says whether the sync works, judging silence against the CMS's cadence.

The clock is driven through the data: deliveries are stored with chosen
``received_at`` values and health is asked at chosen moments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from helpers import (
    FREEZE_INBOX_DELETES,
    as_replica,
    deliver_at,
    set_apply_on_receipt,
    table_activity,
)
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CADENCE = timedelta(seconds=25)


def _stream(conn: psycopg.Connection, count: int = 10, start: datetime = T0) -> datetime:
    """A healthy CMS: one valid change every 25 s; returns when the last one arrived."""
    at = start
    for n in range(count):
        at = start + n * CADENCE
        deliver_at(
            conn, at, {"fragrance_id": n, "description": f"tick {n}", "forbidden": n % 2 == 0}
        )
    return at


def _health(conn: psycopg.Connection, at: datetime) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from sync.health_at(%s)", [at]).fetchone()
    assert row is not None
    return row


def test_a_stream_that_stops_turns_warn_then_critical(tx: psycopg.Connection) -> None:
    last = _stream(tx)
    verdicts = [
        _health(tx, last + after)["verdict"]
        for after in (timedelta(seconds=20), timedelta(minutes=3), timedelta(minutes=11))
    ]
    assert verdicts == ["ok", "warn", "critical"]


@pytest.mark.parametrize(
    ("silence", "verdict"),
    [
        (timedelta(seconds=25), "ok"),
        (timedelta(seconds=119), "ok"),
        (timedelta(minutes=2), "warn"),
        (timedelta(seconds=599), "warn"),
        (timedelta(minutes=10), "critical"),
        (timedelta(days=2), "critical"),
    ],
)
def test_silence_is_judged_against_the_default_thresholds(
    tx: psycopg.Connection, silence: timedelta, verdict: str
) -> None:
    last = _stream(tx, count=3)
    assert _health(tx, last + silence)["verdict"] == verdict


def test_a_few_lost_deliveries_in_a_healthy_stream_stay_ok(tx: psycopg.Connection) -> None:
    last = _stream(tx, count=5)
    after_a_gap = last + 4 * CADENCE  # three ticks lost on the way, then the CMS goes on
    deliver_at(tx, after_a_gap, {"fragrance_id": 9, "forbidden": True})
    assert _health(tx, after_a_gap + timedelta(seconds=10))["verdict"] == "ok"


@pytest.mark.parametrize("origin", ["repair", "revert"])
def test_a_dbas_repair_or_revert_does_not_count_as_the_cms_speaking(
    tx: psycopg.Connection, origin: str
) -> None:
    last = _stream(tx, count=3)
    dba_at = last + timedelta(minutes=11)  # the CMS has gone quiet: critical
    deliver_at(tx, dba_at, {"fragrance_id": 1, "cost": 12}, origin=origin)
    health = _health(tx, dba_at + timedelta(seconds=5))
    assert (health["verdict"], health["last_received_at"], health["deliveries_last_hour"]) == (
        "critical",
        last,
        3,
    )


def test_a_cms_gone_quiet_after_the_clock_stepped_back_is_not_hidden_by_ticks_dated_ahead(
    tx: psycopg.Connection,
) -> None:
    """Silence is measured from the delivery stored last, not from one dated later.

    The database host's clock ran 25 minutes ahead, then stepped back (NTP):
    the ticks stored before the step are dated up to 25 minutes after the
    ones stored since. The CMS stops 30 s after the step. A quarter of an
    hour on, the ticks dated ahead stood in for deliveries and health said
    ok, "the last one 5 s ago", while the CMS had been silent for 15 minutes.
    """
    _stream(tx, count=60)  # dated T0 to T0 + 24 min 35 s by a clock running ahead
    last = _stream(tx, count=2, start=T0 + timedelta(seconds=5))  # stored after the step back
    health = _health(tx, last + timedelta(minutes=15))
    assert (health["verdict"], health["last_received_at"]) == ("critical", last)
    assert health["reason"].startswith("no delivery for 15 min,")


def test_what_waits_now_is_counted_now_however_far_ahead_the_clock_dated_it(
    tx: psycopg.Connection,
) -> None:
    """The quarantine and the open findings are states, not windows of time.

    Stored while the database host's clock ran an hour ahead (stepped back
    since), a rejected delivery and a finding of an error rule were dated an
    hour from now: the scrape counted neither, and health said ok, while
    sync.quarantine and sync.open_finding showed both.
    """
    ahead = tx.execute("select now() + interval '1 hour'").fetchone()[0]
    deliver_at(tx, ahead, {"fragrance_id": 1, "cost": -1})
    tx.execute("update public.fragrances set cost = -1 where fragrance_id = 7")
    # Dated by hand as the clock did: only a replica's apply writes a finding by hand (FS094).
    with as_replica(tx):
        tx.execute("update sync.finding set first_seen_at = %s where fragrance_id = 7", [ahead])
    assert tx.execute("select count(*) from sync.quarantine").fetchone() == (1,)
    with tx.cursor(row_factory=dict_row) as cur:
        metrics = cur.execute("select * from sync.metrics()").fetchone()
        health = cur.execute("select * from sync.health").fetchone()
    assert metrics is not None and health is not None
    assert metrics["quarantined"] == 1
    assert metrics["open_findings"]["cost.negative"] == 1
    assert "1 fragrances break an error rule (cost.negative)" in health["reason"]


@pytest.mark.parametrize(
    ("judged_at", "age", "counted"),
    [
        # Berlin moves its clocks forward on 2026-03-29: that calendar day has 23 hours.
        (datetime(2026, 3, 29, 10, 0, tzinfo=UTC), timedelta(hours=23, minutes=30), True),
        # ... and back on 2026-10-25: that day has 25 hours.
        (datetime(2026, 10, 25, 10, 0, tzinfo=UTC), timedelta(hours=24, minutes=30), False),
    ],
)
def test_the_last_day_is_24_hours_on_the_days_the_clocks_change(
    tx: psycopg.Connection, judged_at: datetime, age: timedelta, counted: bool
) -> None:
    """The last day is the last 24 hours, whatever the time zone of the session that asks.

    Counted as a calendar day in a zone with summer time, it was 23 hours on
    the day the clocks go forward and 25 on the day they go back: a
    delivery 23 h 30 old fell out of deliveries_last_day, one 24 h 30 old stayed.
    """
    tx.execute("set local timezone = 'Europe/Berlin'")
    deliver_at(tx, judged_at - age, {"fragrance_id": 1, "cost": -1})
    health = _health(tx, judged_at)
    expected = 1 if counted else 0
    assert (health["deliveries_last_day"], health["rejected_last_day"]) == (expected, expected)
    assert health["rejects_by_code_last_day"] == ({"cost.negative": 1} if counted else {})


def test_a_reason_of_several_warnings_reads_as_sentences(tx: psycopg.Connection) -> None:
    """Warnings that end in a command's ";" were joined with "; " all the same: ";;"."""
    deliver_at(tx, tx.execute("select now()").fetchone()[0], {"fragrance_id": 1, "cost": -1})
    tx.execute("update public.fragrances set cost = -1 where fragrance_id = 7")
    reason = tx.execute("select reason from sync.health").fetchone()[0]
    assert "see SELECT * FROM sync.quarantine; 1 fragrances break an error rule" in reason
    assert ";;" not in reason


def test_health_at_no_moment_is_refused(tx: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as raised:
        _health(tx, None)
    assert raised.value.sqlstate == "FS005"


def test_the_critical_reason_says_how_long_and_what_to_suspect(tx: psycopg.Connection) -> None:
    last = _stream(tx, count=3)
    reason = _health(tx, last + timedelta(minutes=12, seconds=30))["reason"]
    assert reason.startswith("no delivery for 12 min 30 s, about 30 changes missed")
    assert "listener" in reason


def test_the_thresholds_are_one_update_away(tx: psycopg.Connection) -> None:
    last = _stream(tx, count=3)
    tx.execute(
        "update sync.settings set silence_warn_after = '30 minutes',"
        " silence_critical_after = '1 hour'"
    )
    assert _health(tx, last + timedelta(minutes=11))["verdict"] == "ok"
    assert _health(tx, last + timedelta(minutes=31))["verdict"] == "warn"


def test_a_critical_threshold_below_the_warning_one_is_refused(tx: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        tx.execute("update sync.settings set silence_critical_after = '1 minute'")


def test_a_sync_that_never_received_anything_warns_to_register_the_listener(
    tx: psycopg.Connection,
) -> None:
    health = _health(tx, T0)
    assert (health["verdict"], health["last_received_at"]) == ("warn", None)
    assert "register the listener" in health["reason"]


def test_a_delivery_pending_too_long_warns(tx: psycopg.Connection) -> None:
    last = _stream(tx, count=3)
    set_apply_on_receipt(tx, False)
    deliver_at(tx, last + CADENCE, {"fragrance_id": 1, "cost": 3})
    tx.execute("update sync.settings set pending_warn_after = '20 seconds'")
    health = _health(tx, last + 2 * CADENCE)
    assert (health["verdict"], health["pending"]) == ("warn", 1)
    assert health["oldest_pending_age"] == CADENCE
    assert "sync.apply_pending" in health["reason"]


def test_a_high_share_of_rejects_warns(tx: psycopg.Connection) -> None:
    last = _stream(tx, count=8)
    for n in (1, 2):
        deliver_at(tx, last + n * CADENCE, {"fragrance_id": 1, "cost": -1})
    health = _health(tx, last + 2 * CADENCE + timedelta(seconds=5))
    assert health["verdict"] == "warn"
    assert health["reason"].startswith("2 of the last hour's 10 deliveries are rejected")


def test_rejects_are_counted_by_code_over_the_last_day(tx: psycopg.Connection) -> None:
    deliver_at(tx, T0 - timedelta(days=2), {"fragrance_id": 1, "cost": -1})
    deliver_at(tx, T0, {"fragrance_id": 1, "cost": -1})
    deliver_at(tx, T0, {"fragrance_id": 1, "cost": -2, "name": " "})
    deliver_at(tx, T0, {"fragrance_id": 1, "cost": 2})
    health = _health(tx, T0 + timedelta(seconds=1))
    assert health["rejects_by_code_last_day"] == {"cost.negative": 2, "name.blank": 1}
    assert (health["rejected_last_day"], health["applied_last_day"]) == (2, 1)
    assert health["quarantined"] == 3


def test_a_delivery_refused_twice_for_one_code_counts_once_under_it(
    tx: psycopg.Connection,
) -> None:
    """The counts are deliveries per code: its reasons are not each a delivery."""
    tx.execute(
        "insert into sync.inbox (received_at, body, content_type, status, reasons, processed_at)"
        " values (%s, '{}', 'application/json', 'rejected', %s, %s)",
        [
            T0,
            Jsonb(
                [{"code": c, "severity": "error"} for c in ("cost.negative",) * 2 + ("name.blank",)]
            ),
            T0,
        ],
    )
    health = _health(tx, T0 + timedelta(seconds=1))
    assert health["rejects_by_code_last_day"] == {"cost.negative": 1, "name.blank": 1}


def test_traffic_is_counted_over_the_last_hour_and_day(tx: psycopg.Connection) -> None:
    _stream(tx, count=4, start=T0 - timedelta(hours=5))
    last = _stream(tx, count=6)
    health = _health(tx, last)
    assert (health["deliveries_last_hour"], health["deliveries_last_day"]) == (6, 10)
    assert health["typical_interval"] == CADENCE
    assert health["last_received_age"] == timedelta(0)


def test_unknown_cms_fields_are_listed_with_how_often_they_came(tx: psycopg.Connection) -> None:
    deliver_at(tx, T0, {"fragrance_id": 1, "cost": 2, "colour": "red"})
    deliver_at(tx, T0, {"fragrance_id": 2, "colour": "blue", "smell": "good"})
    assert _health(tx, T0)["unknown_fields"] == {"colour": 2, "smell": 1}


def test_the_view_answers_one_row_for_now(tx: psycopg.Connection) -> None:
    deliver_at(tx, datetime.now(UTC) - timedelta(hours=1), {"fragrance_id": 1, "cost": 2})
    rows = tx.execute("select verdict, deliveries_last_day from sync.health").fetchall()
    assert rows == [("critical", 1)]


@pytest.mark.parametrize(
    ("interval", "words"),
    [
        ("0", "0 s"),
        ("18.7 seconds", "18 s"),
        ("185 seconds", "3 min 5 s"),
        ("2 hours 10 minutes 3 seconds", "2 h 10 min"),
        ("3 days 4 hours", "3 d 4 h"),
        ("2 minutes", "2 min"),
        ("1 hour 30 seconds", "1 h"),
        ("2 days", "2 d"),
    ],
)
def test_intervals_are_said_in_words(tx: psycopg.Connection, interval: str, words: str) -> None:
    assert tx.execute("select sync_private.say_interval(%s::interval)", [interval]).fetchone() == (
        words,
    )


def test_the_metrics_snapshot_holds_counts_only(tx: psycopg.Connection) -> None:
    now = tx.execute("select now()").fetchone()[0]
    deliver_at(tx, now - timedelta(seconds=30), {"fragrance_id": 1, "cost": -1})
    snapshot = tx.execute(
        "select verdict, seconds_since_last_delivery, pending, quarantined from sync.metrics()"
    ).fetchone()
    assert snapshot == ("warn", 30.0, 0, 1)


def test_the_metrics_snapshot_says_how_long_the_oldest_delivery_the_merger_owes_has_waited(
    tx: psycopg.Connection,
) -> None:
    """A merger that died or fails every call: few pending, ever older; the age pages.

    Only what the merger (sync.apply_received) would apply counts: webhooks,
    while apply_on_receipt is on. A repair a DBA staged, and every delivery
    held back with apply_on_receipt off, wait by choice: sync.health warns
    about them, nobody is paged.
    """
    now = tx.execute("select now()").fetchone()[0]  # type: ignore[index]
    age = "select oldest_pending_age_seconds from sync.metrics()"
    assert tx.execute(age).fetchone() == (0.0,)
    set_apply_on_receipt(tx, False)  # stored and left pending, as with no merger running
    deliver_at(tx, now - timedelta(hours=1), {"fragrance_id": 1, "cost": 12}, origin="repair")
    deliver_at(tx, now - timedelta(minutes=3), {"fragrance_id": 2, "cost": 13})
    # Spooled during an outage: stored after the one above, received before it.
    deliver_at(tx, now - timedelta(minutes=10), {"fragrance_id": 3, "cost": 14})
    assert tx.execute(age).fetchone() == (0.0,)  # held back on purpose
    set_apply_on_receipt(tx, True)
    assert tx.execute(age).fetchone() == (600.0,)
    assert tx.execute("select pending from sync.metrics()").fetchone() == (3,)


def test_the_status_report_counts_deliveries_per_minute_with_empty_minutes(
    tx: psycopg.Connection,
) -> None:
    # now() is the transaction's start: the report's moment, whatever the clock says.
    minute = tx.execute("select date_trunc('minute', now()) - interval '2 minutes'").fetchone()[0]
    deliver_at(tx, minute + timedelta(seconds=5), {"fragrance_id": 1, "cost": 2})
    deliver_at(tx, minute + timedelta(seconds=40), {"fragrance_id": 1, "cost": -2})
    deliver_at(tx, minute + timedelta(minutes=2), {"fragrance_id": 1, "cost": 3})
    report = tx.execute("select sync.status_report(1, 5)").fetchone()[0]
    minutes = report["per_minute"]
    assert len(minutes) == 60
    assert [(m["deliveries"], m["rejected"]) for m in minutes[-3:]] == [(2, 1), (0, 0), (1, 0)]
    assert [d["status"] for d in report["latest"]] == ["applied", "rejected", "applied"]
    [reject] = report["rejects"]
    assert (reject["code"], reject["deliveries"]) == ("cost.negative", 1)
    assert reject["example_body"] == '{"fragrance_id": 1, "cost": -2}'


def test_the_status_report_lists_the_unknown_fields_seen_last_and_counts_them_all(
    tx: psycopg.Connection,
) -> None:
    """Unknown fields cannot make the status page as big as they like: it shows the 20 seen last.

    One delivery of 60,000 unknown keys made a 10 MB report, rendered by the
    hook at every reload of the page.
    """
    hour = tx.execute("select now() - interval '1 hour'").fetchone()[0]
    for minute in range(3):  # three deliveries of the same 5,000 unknown keys
        keys = {f"key{n:04d}": n for n in range(5000)}
        deliver_at(tx, hour + timedelta(minutes=minute), {"fragrance_id": 1, **keys})
    for n in range(30):
        deliver_at(tx, hour + timedelta(minutes=10 + n), {"fragrance_id": 1, f"new{n:02d}": 1})
    deliver_at(tx, hour + timedelta(minutes=50), {"fragrance_id": 1, "colour": "amber"})
    report = tx.execute("select sync.status_report(1, 5)").fetchone()[0]
    assert report["unknown_fields_total"] == 20 + 30 + 1
    assert [u["field"] for u in report["unknown_fields"]] == ["colour"] + [
        f"new{n:02d}" for n in range(29, 10, -1)
    ]
    assert sorted(report["health"]["unknown_fields"]) == sorted(
        u["field"] for u in report["unknown_fields"]
    )
    assert len(str(report)) < 20_000


def test_unknown_fields_older_than_a_day_leave_the_summaries_not_the_view(
    tx: psycopg.Connection,
) -> None:
    """Once the CMS adds a field every delivery carries it: the summaries must not grow with it."""
    now = tx.execute("select now()").fetchone()[0]
    deliver_at(tx, now - timedelta(days=2), {"fragrance_id": 1, "colour": "amber"})
    deliver_at(tx, now - timedelta(hours=2), {"fragrance_id": 1, "smell": "musk"})
    report = tx.execute("select sync.status_report(3, 5)").fetchone()[0]
    assert report["health"]["unknown_fields"] == {"smell": 1}
    assert ([u["field"] for u in report["unknown_fields"]], report["unknown_fields_total"]) == (
        ["smell"],
        1,
    )
    assert tx.execute("select field from sync.unknown_field order by field").fetchall() == [
        ("colour",),
        ("smell",),
    ]


def test_the_status_report_refuses_an_unbounded_window(tx: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as refused:
        tx.execute("select sync.status_report(10000, 5)")
    assert refused.value.sqlstate == "FS004"


@pytest.mark.parametrize(
    "call",
    ["select sync.status_report()", "select * from sync.metrics()"],
    ids=["status", "metrics"],
)
def test_the_hooks_reports_read_the_inbox_by_index_after_it_grew(
    db: psycopg.Connection, call: str
) -> None:
    """The hook's sessions keep their plans: made on a new install, they must not scan later.

    The hook's pooled connections call ``sync.status_report()`` (the status
    page) and ``sync.metrics()`` (each scrape) for as long as they live; plans
    kept from calls on an empty inbox read every row of it at each call once
    deliveries arrived (220,000 rows for 20,000 stored, measured), until
    autovacuum analyzed the table.
    """
    db.execute("delete from sync.inbox")
    db.execute("analyze sync.inbox")
    for _ in range(7):  # past the five custom plans PostgreSQL makes before a generic one
        db.execute(call)
    # Days old, so the page's window of three hours holds none of them.
    db.execute(
        "insert into sync.inbox (body, status, processed_at, received_at)"
        " select '\\x7b7d', 'applied', now(), now() - interval '2 days'"
        " from generate_series(1, 20000)"
    )
    read = table_activity(db, lambda: db.execute(call))["inbox"]["read"]
    assert read < 1000, f"{read} inbox rows read for one call"


@pytest.mark.parametrize(
    "call",
    ["select sync.status_report()", "select * from sync.metrics()"],
    ids=["status", "metrics"],
)
def test_the_hooks_reports_count_open_findings_without_reading_the_closed_ones(
    db: psycopg.Connection, call: str
) -> None:
    """Closed findings pile up until the purge: a scrape must not read them.

    ``sync.health_at`` counts the findings open at its moment, per rule and
    for the error rules. As one condition on ``closed_at`` ("null or after
    the moment") no index answered it, and each scrape read the whole table
    twice: 2 x 26,355 pages at 257,382 open and 500,000 closed findings
    (200,000 fragrances; 58,100 buffers and 214 ms per scrape, measured).
    """
    db.execute("select sync.check_catalog()")
    open_findings = db.execute(
        "select count(*) from sync.finding where closed_at is null"
    ).fetchone()
    assert open_findings is not None
    # A quarter of a year of fixes: closed, and older than any moment asked about.
    db.execute(
        "insert into sync.finding (rule, fragrance_id, field, value, message, severity,"
        " rules_version, first_seen_at, closed_at, closed_by)"
        " select 'description.untrimmed', g % 5000, 'description', '\"x \"', 'padded',"
        " 'warning', (select max(version) from sync.rule_version),"
        " now() - interval '60 days', now() - interval '30 days', 'a delivery by test'"
        " from generate_series(1, 40000) as g"
    )
    db.execute("vacuum analyze sync.finding")
    read = table_activity(db, lambda: db.execute(call))["finding"]["read"]
    # Each open finding at most once (none, where the index alone answers);
    # the closed ones never. Before: 19,178 rows read here.
    assert read <= open_findings[0], (
        f"{read} finding rows read for one call, {open_findings[0]} open"
    )


def _finding_entries_read(conn: psycopg.Connection, action: Callable[[], object]) -> int:
    """Entries of sync.finding's indexes, and rows of its scans, that ``action`` read.

    Index-only scans fetch no row, so the index statistics tell: there are
    no per-transaction ones for indexes, so the totals before and after
    (each flushed), on a database nobody else uses.
    """

    def total() -> int:
        conn.execute("select pg_stat_force_next_flush()")  # flushed once this one ends
        conn.execute("select pg_stat_clear_snapshot()")
        row = conn.execute(
            "select (select coalesce(sum(idx_tup_read), 0) from pg_stat_user_indexes"
            "        where relid = 'sync.finding'::regclass)"
            "     + (select seq_tup_read from pg_stat_user_tables"
            "        where relid = 'sync.finding'::regclass)"
        ).fetchone()
        assert row is not None
        return int(row[0])

    before = total()
    action()
    return total() - before


def test_the_status_report_counts_the_open_findings_once(db: psycopg.Connection) -> None:
    """Open findings grow with the catalog: the page counts them by rule once, not twice.

    The health row (``open_findings``) and the page's table of findings by
    rule counted the same open findings each, from the same index.
    """
    db.execute("select sync.check_catalog()")
    open_findings = db.execute(
        "select count(*) from sync.finding where closed_at is null"
    ).fetchone()
    assert open_findings is not None
    db.execute("vacuum analyze sync.finding")
    read = _finding_entries_read(db, lambda: db.execute("select sync.status_report()"))
    assert read < open_findings[0] + 100, f"{read} read for {open_findings[0]} open findings"
    report = db.execute("select sync.status_report()").fetchone()
    assert report is not None
    by_rule = {f["rule"]: f["fragrances"] for f in report[0]["findings"]}
    assert report[0]["health"]["open_findings"] == by_rule


def test_a_scrape_counts_the_quarantine_without_reading_it(db: psycopg.Connection) -> None:
    """Rejected deliveries stay until a person acts: counting them must not read them.

    ``sync.health_at`` counted the quarantine through the rows, every one
    ever kept at every scrape (3,849 pages for 14,999 rejects, measured).
    """
    db.execute(
        "insert into sync.inbox (body, status, processed_at, received_at)"
        " select '\\x7b7d', 'rejected', now(), now() - interval '2 days'"
        " from generate_series(1, 20000)"
    )
    db.execute("vacuum analyze sync.inbox")
    read = table_activity(db, lambda: db.execute("select * from sync.metrics()"))["inbox"]["read"]
    assert read < 1000, f"{read} inbox rows read for one scrape"
    quarantined = db.execute("select quarantined from sync.metrics()").fetchone()
    assert quarantined == (20000,)


def test_a_scrape_reads_the_backlog_once_and_nothing_older(db: psycopg.Connection) -> None:
    """A backlog is what a scrape must count without reading it over and over.

    ``sync.metrics`` read the pending rows a second time for the age of the
    oldest one the merger owes, apart from the pending count in
    ``sync.health_at``; planned as the oldest by receipt time, that second
    read could walk the kept inbox, applied deliveries and all, up to the
    first pending one. Both come from one read of the pending rows now.
    """
    backlog = 5000
    # Days of applied deliveries kept until the purge, older than the
    # backlog and than any window of the last hour or day.
    db.execute(
        "insert into sync.inbox (body, status, processed_at, received_at)"
        " select '\\x7b7d', 'applied', now(), now() - interval '3 days' - g * interval '10 seconds'"
        " from generate_series(1, 20000) as g"
    )
    set_apply_on_receipt(db, False)  # a merger that stopped: the backlog stays
    db.execute(
        "insert into sync.inbox (body, received_at)"
        " select '\\x7b7d', now() - interval '2 days' - g * interval '1 second'"
        " from generate_series(1, %s) as g",
        [backlog],
    )
    set_apply_on_receipt(db, True)
    db.execute("vacuum analyze sync.inbox")
    read = table_activity(db, lambda: db.execute("select * from sync.metrics()"))["inbox"]["read"]
    assert read < backlog + 100, f"{read} inbox rows read for {backlog} pending"
    scraped = db.execute(
        "select pending, oldest_pending_age_seconds from sync.metrics()"
    ).fetchone()
    assert scraped is not None and scraped[0] == backlog and scraped[1] > 2 * 86400 + backlog - 1


def _healthy_until_now(conn: psycopg.Connection) -> datetime:
    """A stream that ends a moment ago, so health is ok but for what a test adds."""
    last = _stream(conn, start=datetime.now(UTC) - 10 * CADENCE)
    assert _health(conn, last + timedelta(seconds=1))["verdict"] == "ok"
    return last


def test_a_scheduled_job_whose_last_run_failed_warns_saying_which_why_and_what_to_run(
    tx: psycopg.Connection,
) -> None:
    """Nothing else tells anyone: pg_cron and the cron lines only keep the run."""
    _healthy_until_now(tx)
    (status,) = tx.execute("select status from sync.run_job('check_drift')").fetchone()  # type: ignore[misc]
    assert status == "failed"  # no CMS snapshot is loaded
    health = _health(tx, datetime.now(UTC))
    assert health["verdict"] == "warn"
    assert health["reason"].startswith("the scheduled job check_drift failed ")
    assert health["reason"].endswith(
        " ago (no CMS snapshot is loaded, so drift cannot be checked): fix the cause,"
        " then SELECT * FROM sync.run_job('check_drift');"
    )


def test_a_failed_purge_warns_with_the_call_that_purges_in_steps(tx: psycopg.Connection) -> None:
    """After a purge failed for weeks, run_job would delete the backlog in one transaction."""
    _healthy_until_now(tx)
    tx.execute(FREEZE_INBOX_DELETES)
    tx.execute("select sync.run_job('purge_inbox')")
    health = _health(tx, datetime.now(UTC))
    assert health["reason"].endswith(
        " ago (deletes are frozen today): fix the cause, then CALL sync.purge_inbox();"
    )


def test_a_scheduled_job_that_stopped_running_warns_once_its_schedule_is_overdue_a_day(
    tx: psycopg.Connection,
) -> None:
    """pg_cron or the cron line gone quiet leaves no failed run: the last run's age tells."""
    now = _healthy_until_now(tx) + timedelta(seconds=1)
    tx.execute("update sync.job set schedule = '5 1 * * 0' where name = 'check_drift'")  # weekly
    tx.execute(
        "insert into sync.job_run (job, started_at, finished_at, status)"
        " select job, %(now)s - ago::interval, %(now)s - ago::interval, 'ok'"
        " from (values ('check_catalog', '50 hours'), ('check_drift', '6 days')) as r (job, ago)",
        {"now": now},
    )
    health = _health(tx, now)
    assert health["verdict"] == "warn"
    assert health["reason"] == (
        "the scheduled job check_catalog last ran 2 d 2 h ago, and its schedule (17 3 * * *)"
        " runs it at least every 1 d: is pg_cron, or the cron line of docs/operations.md,"
        " still running it? SELECT * FROM sync.schedule();"
    )


@pytest.mark.parametrize(
    "then",
    [
        'select sync.load_snapshot(\'[{"fragrance_id": 1, "name": "N", "description": "D",'
        ' "cost": 1, "forbidden": false}]\'); select sync.run_job(\'check_drift\')',
        "update sync.job set enabled = false where name = 'check_drift'",
    ],
    ids=["a later run succeeds", "the job is disabled"],
)
def test_a_failed_job_stops_warning_once_it_runs_again_or_is_disabled(
    tx: psycopg.Connection, then: str
) -> None:
    _healthy_until_now(tx)
    tx.execute("select sync.run_job('check_drift')")
    tx.execute(then)
    assert _health(tx, datetime.now(UTC))["verdict"] == "ok"


def test_an_enabled_job_that_never_ran_warns_once_its_schedule_is_overdue_a_day(
    tx: psycopg.Connection,
) -> None:
    """No pg_cron and no cron line: nothing ever runs, so no run fails or grows late."""
    _healthy_until_now(tx)
    assert tx.execute("select count(*) from sync.job_run").fetchone() == (0,)
    enabled_at = datetime.now(UTC)  # the jobs were enabled when the database was made
    before = _health(tx, enabled_at + timedelta(hours=47))["reason"]
    after = _health(tx, enabled_at + timedelta(hours=50))["reason"]
    assert "has never run" not in before
    assert (
        "the scheduled job check_drift has never run, and it was enabled 2 d 2 h ago with a"
        " schedule (27 4 * * *) that runs it at least every 1 d: is pg_cron, or the cron line"
        " of docs/operations.md, running it? SELECT * FROM sync.schedule();"
    ) in after
    assert "the scheduled job purge_inbox has never run" in after
    assert "the scheduled job check_catalog has never run" in after


def test_a_job_enabled_again_is_judged_from_then_until_it_runs(tx: psycopg.Connection) -> None:
    """One enabled long after the install is not late before its schedule could run it."""
    tx.execute("update sync.job set enabled = false where name = 'check_drift'")
    tx.execute("update sync.job set enabled = true where name = 'check_drift'")
    dated = tx.execute("select name, enabled_at = now() from sync.job order by name").fetchall()
    assert dated == [("check_catalog", False), ("check_drift", True), ("purge_inbox", False)]


def test_a_silence_stays_critical_once_the_purge_has_deleted_the_last_delivery(
    tx: psycopg.Connection,
) -> None:
    """purge_after may be a day: a CMS silent over a weekend outlives its last delivery.

    It was judged "no delivery has ever been received": the page resolved into a
    ticket telling to register the listener, and the last delivery's age left /metrics.
    """
    now = datetime.now(UTC)
    last = _stream(tx, count=3, start=now - timedelta(days=2))
    tx.execute("update sync.inbox set processed_at = received_at")  # applied as received
    tx.execute("update sync.settings set purge_after = '1 day'")
    before = _health(tx, now)
    assert before["verdict"] == "critical"
    run = tx.execute("select status, detail ->> 'deleted' from sync.run_job('purge_inbox')")
    assert run.fetchone() == ("ok", "3")
    after = _health(tx, now)
    assert (after["verdict"], after["last_received_at"]) == ("critical", last)
    assert after["reason"] == before["reason"]


def test_the_status_reports_chart_draws_the_cms_deliveries_not_a_dbas_repair_or_revert(
    tx: psycopg.Connection,
) -> None:
    """The chart is the CMS's pace beside the verdict on its silence.

    A repair, which the silence's page asks for, drew thousands of deliveries
    into the stretch that showed the CMS silent, while "Last hour" beside it
    counted webhooks only.
    """
    minute = tx.execute("select date_trunc('minute', now()) - interval '2 minutes'").fetchone()[0]
    deliver_at(tx, minute + timedelta(seconds=5), {"fragrance_id": 1, "cost": 2})
    deliver_at(tx, minute + timedelta(minutes=1), {"fragrance_id": 2, "cost": 3}, origin="repair")
    deliver_at(tx, minute + timedelta(minutes=2), {"fragrance_id": 1, "cost": -1}, origin="revert")
    report = tx.execute("select sync.status_report(1, 5)").fetchone()[0]
    drawn = [(m["deliveries"], m["rejected"]) for m in report["per_minute"][-3:]]
    assert drawn == [(1, 0), (0, 0), (0, 0)]
    assert report["health"]["deliveries_last_hour"] == 1
    assert [d["origin"] for d in report["latest"]] == ["revert", "repair", "webhook"]
