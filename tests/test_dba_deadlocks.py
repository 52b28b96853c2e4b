"""A DBA's statement never fails with a deadlock because of the merge.

PostgreSQL breaks a cycle of lock waits by cancelling the transaction whose
deadlock check runs first: the one that has waited `deadlock_timeout` first,
in production the one that began waiting first. A DBA's UPDATE of two rows
that holds fragrance 2 and waits for fragrance 1, which a merge holds while it
waits for 2, was cancelled (40P01) whenever the DBA's wait began first (4 times
in a stress pass, once against a repair). These tests make the DBA's check run
first for certain, by giving its session a `deadlock_timeout` of 10 ms and the
merge's one of a minute, and force the interleaving by waiting until the merge
waits for a lock: whatever the timing, the DBA's statement must not be a
deadlock victim, and the merge must finish the deliveries once the DBA is done.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from conftest import Server
from helpers import (
    fragrance,
    inbox_row,
    name_sharing_a_turn_with,
    receive_many,
    store,
    wait_for_lock_wait,
)

#: How long a thread may take; it can only run out when the behaviour is wrong.
PATIENCE = 90.0


class Merge:
    """A merge (or repair) running in its own session, on a thread, with its outcome."""

    def __init__(self, server: Server, dbname: str, call: Callable[[psycopg.Connection], object]):
        self.conn = psycopg.connect(server.url(dbname), autocommit=True)
        # Its deadlock check runs long after the DBA's, so the DBA's runs first.
        self.conn.execute("set deadlock_timeout = '1min'")
        self.pid = self.conn.info.backend_pid
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._run, args=(call,))

    def _run(self, call: Callable[[psycopg.Connection], object]) -> None:
        try:
            self.outcome.append(call(self.conn))
        except psycopg.Error as exc:
            self.outcome.append(exc)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> object:
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), "the merge never finished"
        self.conn.close()
        [outcome] = self.outcome
        return outcome


@pytest.fixture
def dba_tx(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    """A DBA's psql session in a transaction, whose deadlock check runs after 10 ms."""
    with psycopg.connect(server.url(dbname)) as conn:
        conn.execute("set deadlock_timeout = '10ms'")
        conn.commit()
        yield conn
        conn.rollback()


def _dba_updates_two_rows_around(
    db: psycopg.Connection, dba_tx: psycopg.Connection, merge: Merge
) -> Exception | None:
    """The DBA holds fragrance 2, the merge starts; the DBA's UPDATE of 1 and 2 waits for 1.

    Returns what the DBA's two-row UPDATE raised (None when it succeeded);
    the DBA commits when it succeeded.
    """
    dba_tx.execute("update public.fragrances set cost = 500 where fragrance_id = 2")
    merge.start()
    wait_for_lock_wait(db, merge.pid)  # the merge waits for fragrance 2
    try:
        dba_tx.execute("update public.fragrances set cost = cost + 1 where fragrance_id in (1, 2)")
    except psycopg.Error as exc:
        dba_tx.rollback()
        return exc
    dba_tx.commit()
    return None


def _apply_pending(conn: psycopg.Connection) -> object:
    return conn.execute("select processed from sync.apply_pending(10)").fetchone()


def _apply_received(conn: psycopg.Connection) -> object:
    return conn.execute("select count(*) from sync.apply_received(10)").fetchone()


@pytest.mark.parametrize("call", [_apply_pending, _apply_received], ids=["apply_pending", "merger"])
def test_a_dbas_two_row_update_is_never_the_deadlock_victim_of_a_merge(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    dba_tx: psycopg.Connection,
    call: Callable[[psycopg.Connection], object],
) -> None:
    """The merge of fragrances 1 and 2 never holds 1 while it waits for 2."""
    stored = [store(db, {"fragrance_id": n, "cost": 10 + n}) for n in (1, 2)]
    cost_1 = fragrance(db, 1)["cost"]  # type: ignore[index]
    merge = Merge(server, dbname, call)

    assert _dba_updates_two_rows_around(db, dba_tx, merge) is None
    assert not isinstance(merge.join(), psycopg.Error)
    db.execute("select sync.apply_pending(10)")  # what it left, if it gave up waiting

    # Received before the DBA's edits, the deliveries leave them as they are.
    assert [inbox_row(db, s["inbox_id"])["status"] for s in stored] == ["ignored"] * 2
    assert [fragrance(db, n)["cost"] for n in (1, 2)] == [cost_1 + 1, 501]  # type: ignore[index]


def test_a_dbas_two_row_update_is_never_the_deadlock_victim_of_a_merge_on_receipt(
    server: Server, dbname: str, db: psycopg.Connection, dba_tx: psycopg.Connection
) -> None:
    """sync.receive_many, which merges as it stores, waits with nothing in hand too."""
    db.execute("update sync.settings set apply_on_receipt = true")
    bodies = [json.dumps({"fragrance_id": n, "cost": 20 + n}).encode() for n in (1, 2)]
    merge = Merge(server, dbname, lambda conn: receive_many(conn, bodies))

    assert _dba_updates_two_rows_around(db, dba_tx, merge) is None
    receipts = merge.join()
    assert not isinstance(receipts, psycopg.Error), receipts
    # It waited for the DBA, so it was received after the DBA's edits: it wins.
    assert [status for _, status, _ in receipts] == ["applied"] * 2  # type: ignore[union-attr]
    assert [fragrance(db, n)["cost"] for n in (1, 2)] == [21, 22]  # type: ignore[index]


def test_a_dbas_two_row_update_is_never_the_deadlock_victim_of_a_retry(
    server: Server, dbname: str, db: psycopg.Connection, dba_tx: psycopg.Connection
) -> None:
    """sync.retry_all, which waits for held fragrances without a bound, waits with none in hand."""
    db.execute("update sync.rule set severity = 'error' where code = 'field.unknown'")
    stored = [store(db, {"fragrance_id": n, "cost": 30 + n, "scent": "new"}) for n in (1, 2)]
    db.execute("select sync.apply_pending(10)")
    assert [inbox_row(db, s["inbox_id"])["status"] for s in stored] == ["rejected"] * 2
    db.execute("update sync.rule set severity = 'warning' where code = 'field.unknown'")
    merge = Merge(
        server,
        dbname,
        lambda conn: conn.execute(
            "select processed from sync.retry_all('field.unknown')"
        ).fetchone(),
    )

    assert _dba_updates_two_rows_around(db, dba_tx, merge) is None
    assert merge.join() == (2,)
    # Received before the DBA's edits, the retried deliveries leave them as they are.
    assert [inbox_row(db, s["inbox_id"])["status"] for s in stored] == ["ignored"] * 2


def test_a_dbas_two_row_update_is_never_the_deadlock_victim_of_a_repair(
    server: Server, dbname: str, db: psycopg.Connection, dba_tx: psycopg.Connection
) -> None:
    """sync.repair locks every fragrance of the snapshot, never one while waiting for another."""
    rows = db.execute(
        "select coalesce(json_agg(f order by f.fragrance_id), '[]') from public.fragrances as f"
        " where f.fragrance_id in (1, 2, 3)"
    ).fetchone()[0]  # type: ignore[index]
    for row in rows:
        row["description"] = f"repaired {row['fragrance_id']}"
    db.execute(
        "select sync.load_snapshot(%s::jsonb, 'cms.json', now() - interval '1 minute')",
        [json.dumps(rows)],
    )
    merge = Merge(
        server, dbname, lambda conn: conn.execute("select * from sync.repair()").fetchall()
    )

    assert _dba_updates_two_rows_around(db, dba_tx, merge) is None
    receipts = merge.join()
    assert not isinstance(receipts, psycopg.Error), receipts
    assert [fragrance(db, n)["description"] for n in (1, 2, 3)] == [  # type: ignore[index]
        "repaired 1",
        "repaired 2",
        "repaired 3",
    ]


def test_a_dbas_update_is_never_the_deadlock_victim_of_a_merge_waiting_for_a_name_turn(
    server: Server, dbname: str, db: psycopg.Connection, dba_tx: psycopg.Connection
) -> None:
    """The DBA renamed fragrance 5 (its turn is held) and then edits fragrance 1.

    The merge of a new name for fragrance 1 in the same turn held fragrance 1
    while it waited for the turn; the DBA's edit of 1 closed the circle.
    """
    stored = store(db, {"fragrance_id": 1, "name": name_sharing_a_turn_with(db, "Renamed by hand")})
    dba_tx.execute("update public.fragrances set name = 'Renamed by hand' where fragrance_id = 5")
    merge = Merge(server, dbname, _apply_received)
    merge.start()
    wait_for_lock_wait(db, merge.pid)  # the merge waits for the turn
    dba_tx.execute("update public.fragrances set cost = cost + 1 where fragrance_id = 1")
    dba_tx.commit()
    assert not isinstance(merge.join(), psycopg.Error)
    db.execute("select sync.apply_pending(10)")  # what it left, if it gave up waiting
    assert inbox_row(db, stored["inbox_id"])["status"] == "applied"


def test_a_dbas_update_left_open_holds_back_only_its_fragrance(
    db: psycopg.Connection, dba_tx: psycopg.Connection
) -> None:
    """A DBA's UPDATE of fragrance 7, uncommitted: fragrance 8's changes are merged meanwhile."""
    dba_tx.execute("update public.fragrances set cost = 700 where fragrance_id = 7")
    held = store(db, {"fragrance_id": 7, "cost": 71})
    other = store(db, {"fragrance_id": 8, "cost": 81})
    db.execute("set lock_timeout = '10s'")  # were the merge to wait for 7 past its 2 s, it fails
    receipts = db.execute("select inbox_id, status from sync.apply_received(10)").fetchall()
    assert receipts == [(other["inbox_id"], "applied")]
    assert inbox_row(db, held["inbox_id"])["status"] == "pending"
    dba_tx.commit()
    receipts = db.execute("select inbox_id, status from sync.apply_received(10)").fetchall()
    assert receipts == [(held["inbox_id"], "applied")]
    assert fragrance(db, 7)["cost"] == 71  # type: ignore[index]


def test_a_dbas_update_is_never_the_deadlock_victim_of_a_revert_waiting_for_a_name_turn(
    server: Server, dbname: str, db: psycopg.Connection, dba_tx: psycopg.Connection
) -> None:
    """A revert of a rename waits for the restored name's turn holding nothing.

    It locked its fragrance first, then waited for the turn of the name it
    restores, which a DBA's rename of another fragrance held; the DBA's next
    edit of the reverted fragrance closed the circle.
    """
    first_name = fragrance(db, 1)["name"]  # type: ignore[index]
    renamed = store(db, {"fragrance_id": 1, "name": "Renamed for a while"})
    db.execute("select sync.apply_pending(10)")
    dba_tx.execute(
        "update public.fragrances set name = %s where fragrance_id = 5",
        [name_sharing_a_turn_with(db, first_name)],
    )
    merge = Merge(
        server,
        dbname,
        lambda conn: conn.execute(
            "select * from sync.revert(%s)", [renamed["inbox_id"]]
        ).fetchall(),
    )
    merge.start()
    wait_for_lock_wait(db, merge.pid)  # the revert waits for the turn
    dba_tx.execute("update public.fragrances set cost = cost + 1 where fragrance_id = 1")
    dba_tx.commit()
    outcome = merge.join()
    assert not isinstance(outcome, psycopg.Error), outcome
    assert fragrance(db, 1)["name"] == first_name  # type: ignore[index]


def test_a_repair_waiting_for_a_name_turn_says_so(
    server: Server, dbname: str, db: psycopg.Connection, dba_tx: psycopg.Connection
) -> None:
    """A turn held past 2 s is named in a NOTICE, as held rows are (not as 0 fragrances)."""
    rows = db.execute(
        "select json_agg(f) from public.fragrances as f where f.fragrance_id = 3"
    ).fetchone()[0]  # type: ignore[index]
    rows[0]["name"] = "Repaired name"
    db.execute(
        "select sync.load_snapshot(%s::jsonb, 'cms.json', now() - interval '1 minute')",
        [json.dumps(rows)],
    )
    dba_tx.execute(
        "update public.fragrances set name = %s where fragrance_id = 5",
        [name_sharing_a_turn_with(db, "Repaired name")],
    )
    said = threading.Event()
    notices: list[str] = []

    def heard(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")
        said.set()

    merge = Merge(
        server, dbname, lambda conn: conn.execute("select * from sync.repair()").fetchall()
    )
    merge.conn.add_notice_handler(heard)
    merge.start()
    said.wait(PATIENCE)
    dba_tx.commit()
    assert not isinstance(merge.join(), psycopg.Error)
    assert notices == [
        "sync.repair waits for the turn of a name it writes or replaces,"
        " which another transaction holds"
    ]
    assert fragrance(db, 3)["name"] == "Repaired name"  # type: ignore[index]
