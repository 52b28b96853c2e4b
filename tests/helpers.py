"""Small helpers the tests share: deliver a body, read a fragrance, read codes."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row


def body(payload: Any) -> bytes:
    """A JSON body as the CMS would send it."""
    return json.dumps(payload).encode()


def receive(conn: psycopg.Connection, raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """Store one delivery through sync.receive, as the hook does; return its receipt."""
    data = body(raw) if isinstance(raw, dict) else raw
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from sync.receive(%s)", [data]).fetchone()
    assert row is not None
    return row


def store(conn: psycopg.Connection, raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """Store one delivery through sync.store_many (the hook's call): pending until merged."""
    data = body(raw) if isinstance(raw, dict) else raw
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select * from sync.store_many(%s, %s, %s, %s, %s)",
            [[data], ["application/json"], [None], [None], [uuid.uuid4()]],
        ).fetchone()
    assert row is not None and row["status"] == "pending"
    return row


RECEIVE_MANY = (
    "select * from sync.receive_many(%s::bytea[], %s::text[], %s::text[], %s::text[], %s::uuid[])"
)


def receive_many(conn: psycopg.Connection, bodies: list[bytes]) -> list[tuple[Any, ...]]:
    """Store bodies in one call, as the hook does, with fixed metadata and fresh keys."""
    n = len(bodies)
    keys = [uuid.uuid4() for _ in range(n)]
    return conn.execute(
        RECEIVE_MANY, [bodies, ["application/json"] * n, ["10.0.0.1"] * n, ["cms/1"] * n, keys]
    ).fetchall()


def receipt_codes(conn: psycopg.Connection, deltas: list[dict[str, Any]]) -> list[list[str]]:
    """Each delta's reasons, delivered in one batch, as "code:severity"."""
    rows = receive_many(conn, [body(d) for d in deltas])
    return [[f"{r['code']}:{r['severity']}" for r in reasons] for _, _, reasons in rows]


def codes(reasons: list[dict[str, Any]], severity: str | None = None) -> list[str]:
    """The reason codes of a receipt, optionally only those of one severity."""
    return [r["code"] for r in reasons if severity is None or r["severity"] == severity]


def fragrance(conn: psycopg.Connection, fragrance_id: int) -> dict[str, Any] | None:
    """One row of public.fragrances as a dict, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select * from public.fragrances where fragrance_id = %s", [fragrance_id]
        ).fetchone()


def inbox_row(conn: psycopg.Connection, inbox_id: int) -> dict[str, Any]:
    """One row of sync.inbox as a dict."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from sync.inbox where id = %s", [inbox_id]).fetchone()
    assert row is not None
    return row


def settled(conn: psycopg.Connection, inbox_id: int, within: float = 20.0) -> dict[str, Any]:
    """The inbox row of a delivery the hook answered, once its merger has applied it.

    The hook answers when the body is committed and applies it right after
    (ADR 0022); this waits for that, and fails if it never happens.
    """
    deadline = time.monotonic() + within
    while (row := inbox_row(conn, inbox_id))["status"] == "pending":
        assert time.monotonic() < deadline, f"inbox row {inbox_id} still pending after {within} s"
        time.sleep(0.01)
    return row


def set_apply_on_receipt(conn: psycopg.Connection, value: bool) -> None:
    """Switch processing on receipt on or off (off leaves deliveries pending)."""
    conn.execute("update sync.settings set apply_on_receipt = %s", [value])


@contextmanager
def raises_sqlstate(sqlstate: str, says: str = "") -> Iterator[None]:
    """Expect a database error with exactly this SQLSTATE (ours are FS...), saying `says`."""
    with pytest.raises(psycopg.Error) as caught:
        yield
    assert caught.value.sqlstate == sqlstate, caught.value
    assert says in str(caught.value)


def deliver_at(
    conn: psycopg.Connection,
    received_at: Any,
    raw: bytes | dict[str, Any],
    origin: str = "webhook",
) -> int:
    """Store one delivery as if received at a chosen moment (the clock is in the data); its id.

    Processed as on receipt (when sync.settings.apply_on_receipt) by the path
    apply_pending runs, since a row inserted directly waits as pending.
    ``origin``: who made it (webhook, or a DBA's repair or revert).
    """
    data = body(raw) if isinstance(raw, dict) else raw
    row = conn.execute(
        "insert into sync.inbox (received_at, body, content_type, origin)"
        " values (%s, %s, 'application/json', %s) returning id",
        [received_at, data, origin],
    ).fetchone()
    assert row is not None
    conn.execute(
        "select sync_private.process_claimed(array[%s::bigint])"
        " where (select apply_on_receipt from sync.settings)",
        [row[0]],
    )
    return row[0]


def fuzz_settings(max_examples: int) -> Any:
    """Hypothesis settings for our fuzz tests: repeatable, no example database, no deadline."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


def most_rows_discarded(plans: list[str]) -> int:
    """The most rows one plan node discarded by a filter, over all its loops (auto_explain text).

    A node that compares each row of one set with every row of another
    discards about the product of their sizes; one that hashes, about none.
    """
    most = 0
    loops = 1
    for line in "\n".join(plans).splitlines():
        node = re.search(r"\(actual rows=\d+ loops=(\d+)\)", line)
        if node:
            loops = int(node.group(1))
        removed = re.search(r"Rows Removed by (?:Join )?Filter: (\d+)", line)
        if removed:
            most = max(most, int(removed.group(1)) * loops)
    return most


def lossy_rechecks_by_array(plans: list[str]) -> list[str]:
    """The bitmap scans that kept whole pages and recheck their rows against an array of keys.

    Past work_mem a bitmap keeps pages instead of rows, and each row of such
    a page is compared with every element of the array (auto_explain text
    with ``analyze``): quadratic in the array.
    """
    found = []
    recheck = ""
    for line in "\n".join(plans).splitlines():
        if "Recheck Cond:" in line:
            recheck = line.strip()
        elif "Heap Blocks:" in line and "lossy=" in line and "ANY" in recheck:
            found.append(f"{recheck} ({line.strip()})")
    return found


def table_activity(conn: psycopg.Connection, action: Callable[[], object]) -> dict[str, Any]:
    """What ``action`` did to each table of sync and public, run in one transaction.

    Per table: rows read (by sequential scans and index fetches), rows
    updated, and of those updated in place (HOT). The counts of earlier
    transactions are flushed first, so that only this one's are left.
    """
    conn.execute("select pg_stat_force_next_flush()")
    with conn.transaction():
        action()
        rows = conn.execute(
            "select relname, seq_tup_read + coalesce(idx_tup_fetch, 0), n_tup_upd, n_tup_hot_upd"
            " from pg_stat_xact_user_tables where schemaname in ('sync', 'public')"
        ).fetchall()
    return {name: {"read": read, "updated": upd, "hot": hot} for name, read, upd, hot in rows}


def explained_plans(conn: psycopg.Connection, *, analyze: bool = False) -> list[str]:
    """Have auto_explain report every statement's plan; returns the list it fills.

    Nested statements included (the functions' own). With ``analyze``, each
    node's row counts too, without timing: what a plan did, not how long it
    took.
    """
    conn.execute("load 'auto_explain'")
    settings = {
        "log_min_duration": "0",
        "log_nested_statements": "on",
        "log_level": "notice",
    }
    if analyze:
        settings |= {"log_analyze": "on", "log_timing": "off"}
    for setting, value in settings.items():
        conn.execute(f"set auto_explain.{setting} = {value}")
    plans: list[str] = []
    conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    return plans


def calls_started_after(
    conn: psycopg.Connection,
    since: datetime,
    called: str,
    count: int,
    application: str = "fragrance-sync-%",
) -> None:
    """Return once the hook's sessions have started ``count`` statements naming ``called``.

    Only statements started after ``since`` count, and it returns once the
    sessions running them are idle: what those calls did is committed (or
    refused) by then. Read from pg_stat_activity, whose query_start tells one
    call from the next, polled far more often than the hook's retries (a second
    apart at the least), so what a merge did (or did not do) is settled, not
    slept on. pg_stat_activity shows a session's last statement only: a call
    inside a transaction is soon hidden by its COMMIT or ROLLBACK (the spool's
    drain), so this is for autocommit calls such as the merger's.
    ``application``: the hook's sessions by default, or one pool's
    (fragrance-sync-merger for the merger).
    """
    started: set[tuple[int, datetime]] = set()
    deadline = time.monotonic() + 60
    while True:
        rows = conn.execute(
            "select pid, query_start, state from pg_stat_activity"
            " where application_name like %s and query like %s and query_start > %s",
            [application, f"%{called}%", since],
        ).fetchall()
        started.update((pid, query_start) for pid, query_start, _ in rows)
        if len(started) >= count and all(state == "idle" for _, _, state in rows):
            return
        assert time.monotonic() < deadline, f"{len(started)} of {count} calls of {called} began"
        time.sleep(0.01)


def wait_for_lock_wait(conn: psycopg.Connection, pid: int) -> None:
    """Return once the backend ``pid`` waits for a lock (so the interleaving is forced)."""
    for _ in range(1000):
        waiting = conn.execute(
            "select wait_event_type = 'Lock' from pg_stat_activity where pid = %s", [pid]
        ).fetchone()
        if waiting == (True,):
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


def wait_for_backend_gone(conn: psycopg.Connection, pid: int) -> None:
    """Return once the backend ``pid`` has exited: a client's close ends it only some time after.

    Until then it still holds its session's locks (a purge run's among them).
    """
    for _ in range(1000):
        if conn.execute("select from pg_stat_activity where pid = %s", [pid]).fetchone() is None:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never exited")


def prepared_messages(conn: psycopg.Connection, delta: dict[str, Any]) -> list[str]:
    """The sentences of the reasons ``sync.prepare`` gives a delta, in order (a DBA's dry run)."""
    [(reasons,)] = conn.execute(
        "select reasons from sync.prepare(%s)", [json.dumps(delta).encode()]
    ).fetchall()
    return [r["message"] for r in reasons]


def name_sharing_a_turn_with(db: psycopg.Connection, name: str) -> str:
    """A new name that takes the same name turn as `name` (sync_private.name_turn)."""
    row = db.execute(
        "select n from generate_series(1, 100000) as i, format('Sharing a turn %%s', i) as n"
        " where sync_private.name_turn_of(n) = sync_private.name_turn_of(%s) limit 1",
        [name],
    ).fetchone()
    assert row is not None
    return row[0]


def check_catalog(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Run sync.check_catalog(): its report, one row per rule, by rule."""
    with conn.cursor(row_factory=dict_row) as cur:
        return {r["rule"]: r for r in cur.execute("select * from sync.check_catalog()").fetchall()}


def lookalikes_of_1_and_2(conn: psycopg.Connection) -> dict[int, list[int]]:
    """Fragrances 1 and 2's open name.lookalike findings: each with the others it names."""
    rows = conn.execute(
        "select fragrance_id, shared_with from sync.open_finding"
        " where rule = 'name.lookalike' and fragrance_id in (1, 2)"
    ).fetchall()
    return dict(rows)


def lookalike_pair(lookalike: bool) -> dict[int, list[int]]:
    """What ``lookalikes_of_1_and_2`` reads when their names look alike, or when they do not."""
    return {1: [2], 2: [1]} if lookalike else {}


def rename_1_and_2(conn: psycopg.Connection, names: tuple[str, str]) -> None:
    """Name fragrances 1 and 2, one UPDATE each: a DBA's rename (a bulk load inside as_replica)."""
    for fragrance_id, name in enumerate(names, 1):
        conn.execute(
            "update public.fragrances set name = %s where fragrance_id = %s", [name, fragrance_id]
        )


def check_changes_no_lookalike(conn: psycopg.Connection) -> None:
    """Run the catalog check and assert it opened and closed no name.lookalike finding."""
    report = check_catalog(conn)
    assert "name.lookalike" not in report or (
        report["name.lookalike"]["opened"],
        report["name.lookalike"]["closed"],
    ) == (0, 0)


@contextmanager
def as_replica(conn: psycopg.Connection) -> Iterator[None]:
    """Plant rows as a replica's apply or a bulk load writes them: no trigger of ours fires.

    Neither the write triggers that judge a row and open findings, nor the
    refusals of a hand change (FS094). The block is one transaction (a
    savepoint inside one already open); the role before it is back after it,
    also when the block ran inside a transaction that goes on.
    """
    before = conn.execute("select current_setting('session_replication_role')").fetchone()
    assert before is not None
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        yield
        conn.execute("select set_config('session_replication_role', %s, true)", [before[0]])


def findings_at_rest(db: psycopg.Connection, name: str, description: str) -> list[tuple[str, str]]:
    """The findings sync.check_catalog opens for a row written without the write triggers."""
    # As an adopted catalog arrives: no write trigger judges the row.
    with as_replica(db):
        db.execute(
            "insert into public.fragrances values (900001, %s, %s, 1, false)", [name, description]
        )
    db.execute("select * from sync.check_catalog()")
    return db.execute(
        "select rule, severity from sync.open_finding where fragrance_id = 900001 order by rule"
    ).fetchall()


#: A site's trigger that makes every DELETE of sync.inbox fail: the purges fail, saying so.
FREEZE_INBOX_DELETES = """
    create function public.refuse_delete() returns trigger language plpgsql as $$
    begin raise exception 'deletes are frozen today'; end $$;
    create trigger _010_frozen before delete on sync.inbox
        for each statement execute function public.refuse_delete();
"""

#: Every job of sync.job scheduled daily at the minute half an hour ago, enabled a day ago:
#: due now for sync.run_due_jobs, and for no other minute of the hour, so a test that
#: straddles a minute's end sees each job run once ("* * * * *" ran them again).
DUE_HALF_AN_HOUR_AGO = """
    update sync.job
    set enabled_at = now() - interval '1 day',
        schedule = format('%s %s * * *',
                          extract(minute from t)::integer, extract(hour from t)::integer)
    from (select now() - interval '30 minutes' as t) as x
"""


def clocks_changed_within_the_last_day(db: psycopg.Connection) -> str:
    """A TimeZone whose clocks went forward an hour 12 hours ago: its last day was 23 hours.

    now() cannot be fixed, so the zone is made around it (POSIX rules, UTC
    then UTC+1 from a day of the year and an hour): what Europe/Paris does
    on 2027-03-28, whatever the day the test runs.
    """
    row = db.execute(
        "select extract(doy from t)::int - 1, to_char(t, 'HH24:MI:SS'),"
        " mod(extract(doy from t)::int + 179, 365)"
        " from (select (now() - interval '12 hours') at time zone 'UTC') as m (t)"
    ).fetchone()
    assert row is not None
    day, moment, back = row
    zone = f"FST0FDT-1,{day}/{moment},{back}/00:00:00"
    db.execute("select set_config('TimeZone', %s, false)", [zone])
    assert db.execute("select now() - (now() - interval '1 day')").fetchone() == (
        timedelta(hours=23),
    )
    return zone
