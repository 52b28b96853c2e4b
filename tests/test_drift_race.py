"""A repair against the CMS's deliveries received after its snapshot was taken.

Per field the newer of the snapshot (at its inbox position) and a delivery
(at its receipt, its inbox id) must win, whenever the delivery is stored
and merged: before the repair, while its transaction is open, or after it.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from conftest import Server
from helpers import fragrance, inbox_row, store, wait_for_lock_wait


def load_library_changed(db: psycopg.Connection, **fields: Any) -> None:
    """Load the library's own catalog as the snapshot, with fragrance 7's fields changed."""
    row = db.execute(
        "select json_agg(f order by fragrance_id) from public.fragrances as f"
    ).fetchone()
    assert row is not None
    rows = row[0]
    rows[7].update(fields)
    db.execute("select sync.load_snapshot(%s::jsonb)", [psycopg.types.json.Jsonb(rows)])


def cost_of_7(db: psycopg.Connection) -> Any:
    row = fragrance(db, 7)
    assert row is not None
    return row["cost"]


def test_a_delivery_stored_and_merged_while_a_repair_is_open_keeps_its_value(
    server: Server, dbname: str
) -> None:
    with (
        psycopg.connect(server.url(dbname)) as dba,
        psycopg.connect(server.url(dbname), autocommit=True) as hook,
    ):
        load_library_changed(dba, cost=50)
        dba.commit()
        dba.execute("select sync.repair()")  # its transaction, and fragrance 7, held
        later = store(hook, {"fragrance_id": 7, "cost": 55})
        merged: list[Any] = []
        merger = threading.Thread(
            target=lambda: merged.extend(hook.execute("select * from sync.apply_received()"))
        )
        merger.start()
        with psycopg.connect(server.url(dbname), autocommit=True) as watcher:
            wait_for_lock_wait(watcher, hook.info.backend_pid)
        dba.commit()
        merger.join()
        assert cost_of_7(hook) == 55
        assert inbox_row(hook, later["inbox_id"])["status"] == "applied"


def test_a_delivery_received_after_a_staged_repair_wins_over_it(
    db: psycopg.Connection,
) -> None:
    load_library_changed(db, cost=50)
    db.execute("select sync.repair(p_apply => false)")
    store(db, {"fragrance_id": 7, "cost": 55})
    db.execute("select sync.apply_received()")
    db.execute("select sync.apply_pending()")
    assert cost_of_7(db) == 55


def test_a_delivery_stored_before_a_repair_but_committed_after_it_keeps_its_value(
    server: Server, dbname: str
) -> None:
    # The hook's store has drawn its inbox id (after the snapshot's position)
    # and not committed yet when the repair plans: the plan cannot see it, and
    # the repair's rows take later ids.
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as hook,
    ):
        load_library_changed(dba, cost=50)
        later = store(hook, {"fragrance_id": 7, "cost": 55})
        dba.execute("select sync.repair()")
        hook.commit()
        hook.execute("select sync.apply_received()")
        hook.commit()
        assert cost_of_7(dba) == 55, inbox_row(dba, later["inbox_id"])


def test_a_delivery_stored_before_a_staged_repair_but_committed_after_it_keeps_its_value(
    server: Server, dbname: str
) -> None:
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as hook,
    ):
        load_library_changed(dba, cost=50)
        store(hook, {"fragrance_id": 7, "cost": 55})
        dba.execute("select sync.repair(p_apply => false)")
        hook.commit()
        hook.execute("select sync.apply_received()")
        hook.commit()
        assert cost_of_7(dba) == 55
        dba.execute("select sync.apply_pending()")
        assert cost_of_7(dba) == 55


def test_a_hand_change_right_after_a_repair_stays_newer_than_a_delivery_received_before_it(
    server: Server, dbname: str
) -> None:
    # The hand change takes the position reached when it is made: the
    # repair's own id. It counts there, not at the repair's snapshot.
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as hook,
    ):
        load_library_changed(dba, name="Snapshot name")
        store(hook, {"fragrance_id": 7, "cost": 55})
        dba.execute("select sync.repair()")
        dba.execute("update public.fragrances set cost = 70 where fragrance_id = 7")
        hook.commit()
        hook.execute("select sync.apply_received()")
        hook.commit()
        assert cost_of_7(dba) == 70


def test_a_staged_repair_merged_in_one_batch_with_a_newer_delivery_stored_before_it_loses(
    server: Server, dbname: str
) -> None:
    # One call merges both, the delivery's id below the repair's: the batch
    # orders them by the position each counts at, the repair's first.
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as hook,
    ):
        load_library_changed(dba, cost=50)
        later = store(hook, {"fragrance_id": 7, "cost": 55})
        [(staged, _)] = dba.execute("select inbox_id, status from sync.repair(p_apply => false)")
        hook.commit()
        dba.execute("select sync.apply_pending()")
        assert cost_of_7(dba) == 55
        assert inbox_row(dba, later["inbox_id"])["status"] == "applied"
        # As one by one at their positions: the repair's, then the delivery's.
        assert inbox_row(dba, staged)["status"] == "applied"
        history = dba.execute(
            "select inbox_id from sync.fragrance_history where fragrance_id = 7 order by id"
        ).fetchall()
        assert history[-2:] == [(staged,), (later["inbox_id"],)]


def test_a_delivery_received_before_a_newer_one_merged_with_a_staged_repair_still_loses_to_it(
    server: Server, dbname: str
) -> None:
    # The CMS sends 53, then 55; both are stored after the snapshot's position.
    # The 55 and the staged repair merge in one batch (the repair first, by
    # position); the 53, committed later, merges after them. The field's last
    # writer is then the 55's, not the repair's, whose id is the batch's
    # highest: the 53 is older than the 55 and is left as stale.
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as first,
        psycopg.connect(server.url(dbname)) as second,
    ):
        load_library_changed(dba, cost=50)
        earlier = store(first, {"fragrance_id": 7, "cost": 53})
        later = store(second, {"fragrance_id": 7, "cost": 55})
        [(staged, _)] = dba.execute("select inbox_id, status from sync.repair(p_apply => false)")
        assert earlier["inbox_id"] < later["inbox_id"] < staged
        second.commit()
        dba.execute("select sync.apply_pending()")
        assert cost_of_7(dba) == 55
        first.commit()
        dba.execute("select sync.apply_pending()")
        assert cost_of_7(dba) == 55
        assert inbox_row(dba, earlier["inbox_id"])["status"] == "ignored"


def test_a_delivery_received_after_the_snapshot_keeps_its_value_after_the_purge_took_the_repair(
    server: Server, dbname: str
) -> None:
    # The delivery is stored beside the repair (its id below the repair's),
    # and merged only after the retention purge took the repair's inbox row:
    # the clock still knows the repair counted at the snapshot's position.
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as hook,
    ):
        load_library_changed(dba, cost=50)
        later = store(hook, {"fragrance_id": 7, "cost": 55})
        [(repair_id,)] = dba.execute("select inbox_id from sync.repair()")
        hook.commit()
        assert cost_of_7(dba) == 50
        dba.execute("select sync.purge_applied('0', p_force => true)")
        purged = dba.execute("select count(*) from sync.inbox where id = %s", [repair_id])
        assert purged.fetchone() == (0,)
        hook.execute("select sync.apply_received()")
        hook.commit()
        assert cost_of_7(dba) == 55, inbox_row(dba, later["inbox_id"])


def test_the_position_a_delivery_counts_at_cannot_be_rewritten(db: psycopg.Connection) -> None:
    # It orders the delivery among the others as its id does (FS010): moved
    # by hand, a repair would count at its id, a webhook before the snapshot.
    load_library_changed(db, cost=50)
    [(repair_id,)] = db.execute("select inbox_id from sync.repair()")
    webhook = store(db, {"fragrance_id": 8, "cost": 1})
    rewrites = (("counts_at = null", repair_id), ("counts_at = 0", webhook["inbox_id"]))
    for assignment, inbox_id in rewrites:
        with pytest.raises(psycopg.Error) as caught:
            db.execute(f"update sync.inbox set {assignment} where id = %s", [inbox_id])
        assert caught.value.sqlstate == "FS010"
