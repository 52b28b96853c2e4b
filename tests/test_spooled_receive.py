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


#: Receipt times no hook's clock gives (it writes Unix time), and how the hook's
#: login passes one through each entry point that takes a receipt time.
BEFORE_THE_HOOKS_CLOCK = ["-infinity", "4713-01-01 00:00:00+00 BC", "1969-12-31 23:59:59+00"]
WITH_A_RECEIPT_TIME = {
    "receive_spooled": "select * from sync.receive_spooled(%(key)s, %(at)s, %(body)s)",
    "store_spooled": (
        "select * from sync.store_spooled(array[%(body)s]::bytea[], '{null}', '{null}', '{null}',"
        " array[%(key)s]::uuid[], array[%(at)s]::timestamptz[])"
    ),
    "receive_many": (
        "select * from sync.receive_many(array[%(body)s]::bytea[], '{null}', '{null}', '{null}',"
        " array[%(key)s]::uuid[], array[%(at)s]::timestamptz[])"
    ),
}


@pytest.mark.parametrize("at", BEFORE_THE_HOOKS_CLOCK)
@pytest.mark.parametrize("entry", WITH_A_RECEIPT_TIME)
def test_a_receipt_time_before_the_hooks_clock_is_refused_and_health_still_reads(
    server: Server, dbname: str, db: psycopg.Connection, entry: str, at: str
) -> None:
    """The hook writes its host's Unix time; a login that passes -infinity is refused.

    One row received at -infinity made sync.health, sync.metrics() and the
    status page fail for good ("cannot subtract infinite timestamps"), and
    received_at never changes (FS010).
    """
    delivery = {"key": uuid.uuid4(), "at": at, "body": body({"fragrance_id": 7, "cost": -3})}
    with psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as hook:
        with pytest.raises(psycopg.Error) as caught:
            hook.execute(WITH_A_RECEIPT_TIME[entry], delivery)
        hook.execute("select * from sync.metrics()")
        hook.execute("select * from sync.status_report(24, 20)")
    assert caught.value.sqlstate == "FS020"
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)
    assert db.execute("select verdict from sync.health").fetchone() is not None


def test_a_receipt_time_of_1970_is_a_hook_clock_that_was_never_set(db: psycopg.Connection) -> None:
    """A host without a clock battery starts at 1970: its deliveries are stored and judged."""
    inbox_id, status = db.execute(
        "select inbox_id, status from sync.receive_spooled(%s, '1970-01-01 00:00:00+00', %s)",
        [uuid.uuid4(), body({"fragrance_id": 7, "cost": 61})],
    ).fetchone()
    assert status == "applied"
    assert db.execute("select verdict from sync.health").fetchone() == ("critical",)


@pytest.mark.parametrize(
    ("moment", "dated"),
    [("1969-12-31 23:59:59.999999+00", False), ("1970-01-01 00:00:00+00", True)],
)
def test_health_at_judges_exactly_the_moments_a_delivery_can_be_dated(
    db: psycopg.Connection, dba: psycopg.Connection, moment: str, dated: bool
) -> None:
    """One floor (sync_private.first_receipt_time) for FS020 and FS005, told in UTC.

    The session's time zone is not UTC, so a message that printed the timestamp
    as the session writes it would say 1970-01-01 01:00:00+01.
    """
    outcomes = []
    for conn, statement, args in (
        (db, "select * from sync.receive_spooled(%s, %s, %s)", [uuid.uuid4(), moment, b"{}"]),
        (dba, "select verdict from sync.health_at(%s)", [moment]),
    ):
        conn.execute("set timezone = 'Europe/Paris'")
        try:
            conn.execute(statement, args)
            outcomes.append("judged")
        except psycopg.Error as caught:
            assert caught.sqlstate in ("FS020", "FS005"), caught
            assert "1970-01-01 UTC" in (caught.diag.message_primary or ""), caught
            outcomes.append("refused")
    assert outcomes == (["judged", "judged"] if dated else ["refused", "refused"])


#: docs/operations.md ("The spool"): the hand edits a delivery received before them overwrote.
OVERWRITTEN_HAND_EDITS = """
select h.fragrance_id, h.changed_at as edited_at, i.id as inbox_id, i.received_at,
       i.applied_fields
from sync.fragrance_history as h
join sync.inbox as i
  on i.fragrance_id = h.fragrance_id and i.id > h.inbox_position
 and i.received_at < h.changed_at
 and i.applied_fields && array(select jsonb_object_keys(h.new_values))
where h.inbox_id is null and h.operation = 'update'
order by h.changed_at, i.id
"""


def test_a_delivery_spooled_before_a_hand_edit_and_drained_after_it_overwrites_it(
    db: psycopg.Connection,
) -> None:
    """A known limit (docs/operations.md, ADR 0014), found by the query the docs give.

    The field clock is the inbox id, drawn when the drain stores the
    delivery, not when the hook received it.
    """
    (received,) = db.execute("select clock_timestamp()").fetchone()
    db.execute("update public.fragrances set cost = 99 where fragrance_id = 7")  # by hand
    key = uuid.uuid4()
    db.execute(
        "select * from sync.store_spooled(%s::bytea[], %s::text[], %s::text[], %s::text[],"
        " %s::uuid[], %s::timestamptz[])",
        [
            [body({"fragrance_id": 7, "cost": 12})],
            ["application/json"],
            [None],
            [None],
            [key],
            [received],
        ],
    )
    db.execute("select * from sync.apply_received()")
    assert fragrance(db, 7)["cost"] == 12  # the older value won
    found = db.execute(OVERWRITTEN_HAND_EDITS).fetchall()
    assert [(f, fields) for f, _, _, _, fields in found] == [(7, ["cost"])]
    db.execute("select * from sync.revert(%s)", [found[0][2]])
    assert fragrance(db, 7)["cost"] == 99  # the edit's value, as the docs say
