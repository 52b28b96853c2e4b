"""The merge: partial deltas, creation, re-delivery, per-field receipt order, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from conftest import Server
from helpers import body, fragrance, inbox_row, receive, set_apply_on_receipt


def test_only_the_fields_in_the_delta_change(db: psycopg.Connection) -> None:
    before = fragrance(db, 7)
    receive(db, {"fragrance_id": 7, "cost": 42})
    after = fragrance(db, 7)
    assert after == {**before, "cost": 42}


def test_the_change_is_visible_when_receive_returns(db: psycopg.Connection) -> None:
    receipt = receive(db, {"fragrance_id": 7, "name": "Visible", "forbidden": True})
    assert receipt["status"] == "applied"
    row = fragrance(db, 7)
    assert (row["name"], row["forbidden"]) == ("Visible", True)
    assert inbox_row(db, receipt["inbox_id"])["applied_fields"] == ["name", "forbidden"]


@pytest.mark.parametrize("spelled", ["123456", "123456.0", "1.23456e5", "123456.000e0"])
def test_an_unknown_id_with_all_four_fields_creates_the_fragrance(
    db: psycopg.Connection, spelled: str
) -> None:
    """However the id is spelled, as a number the rules take (7.0 counts as 7)."""
    raw = (
        b'{"fragrance_id": '
        + spelled.encode()
        + (b', "name": "New", "description": "Fresh  ", "cost": 9, "forbidden": false}')
    )
    assert receive(db, raw)["status"] == "applied"
    assert fragrance(db, 123456) == {
        "fragrance_id": 123456,
        "name": "New",
        "description": "Fresh  ",
        "cost": 9,
        "forbidden": False,
    }


LIBRARY_COLUMN = "alter table public.fragrances add column rating integer not null default 3"


def test_a_column_the_library_adds_is_left_alone_by_updates(db: psycopg.Connection) -> None:
    db.execute(LIBRARY_COLUMN)
    db.execute("update public.fragrances set rating = 5 where fragrance_id = 7")
    receipt = receive(db, {"fragrance_id": 7, "cost": 12, "rating": 1})
    assert receipt["status"] == "applied"
    assert [r["code"] for r in receipt["reasons"]] == ["field.unknown"]
    assert (fragrance(db, 7)["cost"], fragrance(db, 7)["rating"]) == (12, 5)  # type: ignore[index]


def test_a_fragrance_created_after_the_library_added_a_column_gets_its_default(
    db: psycopg.Connection,
) -> None:
    db.execute(LIBRARY_COLUMN)
    created = {"fragrance_id": 9000, "name": "N", "description": "D", "cost": 1, "forbidden": False}
    assert receive(db, created)["status"] == "applied"
    assert fragrance(db, 9000)["rating"] == 3  # type: ignore[index]


def test_an_unknown_id_with_some_fields_is_rejected_and_creates_nothing(
    db: psycopg.Connection,
) -> None:
    receipt = receive(db, {"fragrance_id": 123456, "name": "New", "cost": 9})
    assert receipt["status"] == "rejected"
    assert "missing: description, forbidden" in receipt["reasons"][0]["message"]
    assert fragrance(db, 123456) is None


def test_redelivering_the_same_payload_is_harmless(db: psycopg.Connection) -> None:
    delta = {"fragrance_id": 7, "name": "Twice", "cost": 50}
    receive(db, delta)
    after_first = fragrance(db, 7)
    history = db.execute("select count(*) from sync.fragrance_history").fetchone()
    second = receive(db, delta)
    assert second["status"] == "applied"
    assert fragrance(db, 7) == after_first
    assert db.execute("select count(*) from sync.fragrance_history").fetchone() == history


def test_a_later_delivery_wins_each_field_it_carries(db: psycopg.Connection) -> None:
    receive(db, {"fragrance_id": 7, "name": "First", "cost": 1})
    receive(db, {"fragrance_id": 7, "cost": 2})
    row = fragrance(db, 7)
    assert (row["name"], row["cost"]) == ("First", 2)


def test_an_older_change_applied_late_only_fills_fields_nobody_set_since(
    db: psycopg.Connection,
) -> None:
    set_apply_on_receipt(db, False)
    older = receive(
        db, {"fragrance_id": 7, "name": "Old name", "description": "Old desc", "cost": 10}
    )
    newer = receive(db, {"fragrance_id": 7, "name": "New name"})
    # Apply the newer one first, as a transaction that commits first would.
    db.execute("select sync_private.process_claimed(array[%s::bigint])", [newer["inbox_id"]])
    db.execute("select sync_private.process_claimed(array[%s::bigint])", [older["inbox_id"]])
    row = fragrance(db, 7)
    assert (row["name"], row["description"], row["cost"]) == ("New name", "Old desc", 10)
    kept = inbox_row(db, older["inbox_id"])
    assert (kept["status"], kept["stale_fields"]) == ("applied", ["name"])


def test_a_week_old_quarantined_change_retried_updates_only_untouched_fields(
    db: psycopg.Connection,
) -> None:
    # Last week the rules allowed names of at most 100 characters.
    db.execute("update sync.rule set parameter = 100 where code = 'name.too_long'")
    old = receive(db, {"fragrance_id": 7, "name": "n" * 120, "description": "from last week"})
    assert old["status"] == "rejected"
    receive(db, {"fragrance_id": 7, "name": "Renamed in the CMS since"})
    # The rule fix: a new version of the rules that tolerates long names.
    db.execute("update sync.rule set parameter = 150 where code = 'name.too_long'")
    retried = db.execute("select status from sync.retry(%s)", [old["inbox_id"]]).fetchone()
    assert retried == ("applied",)
    row = fragrance(db, 7)
    assert (row["name"], row["description"]) == ("Renamed in the CMS since", "from last week")
    assert inbox_row(db, old["inbox_id"])["stale_fields"] == ["name"]


def test_an_empty_database_accepts_creation_then_updates(empty_dbname: str, server: Server) -> None:
    with psycopg.connect(server.url(empty_dbname), autocommit=True) as conn:
        receive(
            conn, {"fragrance_id": 1, "name": "A", "description": "", "cost": 0, "forbidden": False}
        )
        receive(conn, {"fragrance_id": 1, "cost": 5})
        assert fragrance(conn, 1)["cost"] == 5


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def _last_received_values(conn: psycopg.Connection, ids: list[int]) -> dict[int, tuple]:
    """What each fragrance must hold: per field, the value of the highest inbox id."""
    expected = {}
    for fid in ids:
        values = []
        for field in ("name", "cost"):
            row = conn.execute(
                f"select payload->>'{field}' from sync.inbox"
                " where fragrance_id = %s and payload ? %s and status <> 'rejected'"
                " order by id desc limit 1",
                [fid, field],
            ).fetchone()
            values.append(row[0] if row else None)
        expected[fid] = tuple(values)
    return expected


def _actual_values(conn: psycopg.Connection, ids: list[int]) -> dict[int, tuple]:
    rows = conn.execute(
        "select fragrance_id, name, cost::text from public.fragrances where fragrance_id = any(%s)",
        [ids],
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_concurrent_deliveries_end_at_the_last_received_value(server: Server, dbname: str) -> None:
    ids = [1, 2, 3]
    url = server.url(dbname)

    def deliver(worker: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for n in range(60):
                fid = ids[(worker + n) % len(ids)]
                delta = {"fragrance_id": fid, "cost": worker * 1000 + n}
                if n % 2:
                    delta["name"] = f"w{worker}n{n}"
                assert receive(conn, body(delta))["status"] in {"applied", "ignored"}

    _in_threads(8, deliver)
    with psycopg.connect(url) as conn:
        assert _actual_values(conn, ids) == _last_received_values(conn, ids)


def test_concurrent_appliers_apply_each_change_once_in_order(server: Server, dbname: str) -> None:
    ids = [1, 2, 3, 4, 5]
    url = server.url(dbname)
    with psycopg.connect(url, autocommit=True) as conn:
        set_apply_on_receipt(conn, False)
        for n in range(1500):
            fid = ids[n % len(ids)] if n % 7 else ids[(n * 3) % len(ids)]
            delta = {"fragrance_id": fid, "cost": n}
            if n % 3 == 0:
                delta["name"] = f"n{n}"
            if n % 50 == 0:
                delta["cost"] = -1  # some invalid ones, quarantined
            receive(conn, delta)

    results: list[tuple] = []

    def apply(_: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                result = conn.execute("select * from sync.apply_pending(37)").fetchone()
                results.append(result)
                if result[0] == 0:
                    return

    _in_threads(4, apply)
    with psycopg.connect(url) as conn:
        # Batches run side by side, so an older change may find its fields
        # already set by a newer one (then it is ignored as stale): both count.
        outcomes = conn.execute(
            "select status = 'rejected', min(attempts), max(attempts), count(*) from sync.inbox"
            " group by 1 order by 1"
        ).fetchall()
        assert outcomes == [(False, 1, 1, 1470), (True, 1, 1, 30)]
        assert conn.execute(
            "select count(*) from sync.inbox where status not in ('applied', 'ignored', 'rejected')"
        ).fetchone() == (0,)
        assert sum(r[0] for r in results) == 1500
        assert _actual_values(conn, ids) == _last_received_values(conn, ids)


def test_commit_order_does_not_decide_receipt_order(server: Server, dbname: str) -> None:
    """The later delivery commits first; the earlier one must not overwrite it."""
    url = server.url(dbname)
    with psycopg.connect(url, autocommit=True) as setup:
        set_apply_on_receipt(setup, False)
        earlier = receive(setup, {"fragrance_id": 7, "name": "earlier"})["inbox_id"]
        later = receive(setup, {"fragrance_id": 7, "name": "later"})["inbox_id"]

    with psycopg.connect(url) as holder:
        holder.execute("select 1 from public.fragrances where fragrance_id = 7 for update")

        def apply_one(inbox_id: int) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("select sync_private.process_claimed(array[%s::bigint])", [inbox_id])

        later_thread = threading.Thread(target=apply_one, args=(later,))
        later_thread.start()
        _wait_for_lock_waiters(url, 1)
        earlier_thread = threading.Thread(target=apply_one, args=(earlier,))
        earlier_thread.start()
        _wait_for_lock_waiters(url, 2)
        holder.rollback()  # releases the lock: the later delivery is first in the queue
        later_thread.join(30)
        earlier_thread.join(30)

    with psycopg.connect(url) as conn:
        assert fragrance(conn, 7)["name"] == "later"
        assert inbox_row(conn, earlier)["stale_fields"] == ["name"]
        assert inbox_row(conn, earlier)["status"] == "ignored"


def _wait_for_lock_waiters(url: str, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(500):
            waiting = conn.execute(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                " and datname = current_database()"
            ).fetchone()[0]
            if waiting >= count:
                return
            time.sleep(0.01)
    pytest.fail(f"expected {count} sessions waiting for the fragrance lock")
