"""sync.receive_spooled: a drained delivery is stored once, with its original receipt time."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest
from conftest import Server
from helpers import body, fragrance, inbox_row

RECEIVED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _drain(conn: psycopg.Connection, key: uuid.UUID, data: bytes) -> tuple:
    return conn.execute(
        "select inbox_id, status from sync.receive_spooled(%s, %s, %s, 'application/json')",
        [key, RECEIVED, data],
    ).fetchone()


def test_a_spooled_delivery_keeps_its_receipt_time_and_is_applied(db: psycopg.Connection) -> None:
    inbox_id, status = _drain(db, uuid.uuid4(), body({"fragrance_id": 7, "cost": 61}))
    assert status == "applied"
    assert inbox_row(db, inbox_id)["received_at"] == RECEIVED
    assert fragrance(db, 7)["cost"] == 61


def test_draining_the_same_key_twice_stores_and_applies_it_once(db: psycopg.Connection) -> None:
    key = uuid.uuid4()
    first = _drain(db, key, body({"fragrance_id": 7, "cost": 61}))
    db.execute("select sync.receive(%s)", [body({"fragrance_id": 7, "cost": 62})])
    again = _drain(db, key, body({"fragrance_id": 7, "cost": 61}))
    assert again == first
    assert db.execute("select count(*) from sync.inbox").fetchone() == (2,)
    assert fragrance(db, 7)["cost"] == 62  # the replay did not bring the old value back


def test_a_spooled_delivery_without_its_key_is_refused(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as caught:
        _drain(db, None, b"{}")
    assert caught.value.sqlstate == "FS020"


def test_a_delivery_stored_whose_reply_was_lost_and_then_spooled_is_stored_once(
    db: psycopg.Connection,
) -> None:
    key = uuid.uuid4()
    data = body({"fragrance_id": 7, "cost": 70})
    # The hook's batch committed, but the reply never came back: it spools the same delivery.
    db.execute(
        "select * from sync.receive_many(%s::bytea[], %s::text[], %s::text[], %s::text[],"
        " %s::uuid[])",
        [[data], ["application/json"], [None], [None], [key]],
    )
    db.execute("select sync.receive(%s)", [body({"fragrance_id": 7, "cost": 71})])
    _drain(db, key, data)
    assert db.execute("select count(*) from sync.inbox").fetchone() == (2,)
    assert fragrance(db, 7)["cost"] == 71


STORE_SPOOLED = (
    "select inbox_id, status from sync.store_spooled("
    "%s::bytea[], %s::text[], %s::text[], %s::text[], %s::uuid[], %s::timestamptz[])"
)


def test_a_drain_racing_the_uncommitted_store_of_its_key_returns_that_store(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The hook gave up on a store that then commits while the drain stores its copy.

    The drain's insert waits on the unique key for the hook's transaction;
    once that commits, the key is stored: the drain gets its receipt, not a
    unique violation that sets a stored delivery aside as refused.
    """
    key = uuid.uuid4()
    data = body({"fragrance_id": 7, "cost": 61})
    with psycopg.connect(server.url(dbname)) as hook_store:
        (stored,) = hook_store.execute(
            "select inbox_id from sync.store_many(%s, %s, %s, %s, %s)",
            [[data], ["application/json"], [None], [None], [key]],
        ).fetchone()  # type: ignore[misc]
        with ThreadPoolExecutor(1) as pool:
            drained = pool.submit(
                lambda: db.execute(
                    STORE_SPOOLED, [[data], ["application/json"], [None], [None], [key], [RECEIVED]]
                ).fetchall()
            )
            while not db_waits_on_a_lock(server, dbname):
                assert not drained.done(), drained.result()
                time.sleep(0.01)
            hook_store.commit()
            assert drained.result(timeout=60) == [(stored, "pending")]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (1,)


def db_waits_on_a_lock(server: Server, dbname: str) -> bool:
    """Whether a session of the test's database waits on a lock."""
    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        return conn.execute(
            "select exists (select from pg_stat_activity"
            " where datname = %s and wait_event_type = 'Lock')",
            [dbname],
        ).fetchone() == (True,)
