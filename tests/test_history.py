"""History: every change to public.fragrances is recorded, by deliveries and by hand."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from conftest import Server
from helpers import as_replica, body, fragrance, inbox_row, receive, set_apply_on_receipt
from psycopg.rows import dict_row


def _history(conn: psycopg.Connection, fragrance_id: int) -> list[tuple]:
    return conn.execute(
        "select operation, old_values, new_values, inbox_id, db_user"
        " from sync.fragrance_history where fragrance_id = %s order by id",
        [fragrance_id],
    ).fetchall()


def test_a_delivery_records_old_and_new_values_and_its_inbox_row(db: psycopg.Connection) -> None:
    old = fragrance(db, 7)
    receipt = receive(db, {"fragrance_id": 7, "cost": 99, "forbidden": True})
    assert _history(db, 7) == [
        (
            "update",
            {"cost": old["cost"], "forbidden": False},
            {"cost": 99, "forbidden": True},
            receipt["inbox_id"],
            "postgres",
        )
    ]


def test_a_hand_edit_is_recorded_with_the_database_user(db: psycopg.Connection) -> None:
    db.execute("update public.fragrances set name = 'By hand' where fragrance_id = 7")
    [(operation, old, new, inbox_id, user)] = _history(db, 7)
    assert (operation, new, inbox_id, user) == ("update", {"name": "By hand"}, None, "postgres")


def test_creation_and_deletion_are_recorded_whole(db: psycopg.Connection) -> None:
    receive(
        db, {"fragrance_id": 8000, "name": "N", "description": "D", "cost": 1, "forbidden": False}
    )
    db.execute("delete from public.fragrances where fragrance_id = 8000")
    whole = {"fragrance_id": 8000, "name": "N", "description": "D", "cost": 1, "forbidden": False}
    assert [(h[0], h[1], h[2]) for h in _history(db, 8000)] == [
        ("insert", None, whole),
        ("delete", whole, None),
    ]


def test_an_update_that_changes_nothing_records_nothing(db: psycopg.Connection) -> None:
    db.execute("update public.fragrances set cost = cost where fragrance_id = 7")
    assert _history(db, 7) == []


def test_a_hand_edit_outranks_deliveries_received_before_it(db: psycopg.Connection) -> None:
    set_apply_on_receipt(db, False)
    before_edit = receive(db, {"fragrance_id": 7, "name": "Queued before the edit"})
    db.execute("update public.fragrances set name = 'DBA fix' where fragrance_id = 7")
    after_edit = receive(db, {"fragrance_id": 7, "cost": 3})
    db.execute("select sync.apply_pending()")
    assert fragrance(db, 7)["name"] == "DBA fix"
    assert fragrance(db, 7)["cost"] == 3
    assert before_edit["inbox_id"] < after_edit["inbox_id"]


def test_a_delivery_after_a_hand_edit_overrides_it(db: psycopg.Connection) -> None:
    receive(db, {"fragrance_id": 7, "cost": 1})
    db.execute("update public.fragrances set name = 'DBA fix' where fragrance_id = 7")
    receive(db, {"fragrance_id": 7, "name": "From the CMS"})
    assert fragrance(db, 7)["name"] == "From the CMS"


COMPLETE_30 = {
    "fragrance_id": 30,
    "name": "Queued",
    "description": "d",
    "cost": 1,
    "forbidden": False,
}


def test_a_hand_delete_outranks_a_creation_received_before_it(db: psycopg.Connection) -> None:
    set_apply_on_receipt(db, False)
    before_delete = receive(db, COMPLETE_30)
    db.execute("delete from public.fragrances where fragrance_id = 30")
    db.execute("select sync.apply_pending()")
    assert fragrance(db, 30) is None
    stored = inbox_row(db, before_delete["inbox_id"])
    assert (stored["status"], [r["code"] for r in stored["reasons"]]) == (
        "ignored",
        ["delta.stale"],
    )


def test_a_creation_received_after_a_hand_delete_brings_the_fragrance_back(
    db: psycopg.Connection,
) -> None:
    db.execute("delete from public.fragrances where fragrance_id = 30")
    assert receive(db, COMPLETE_30)["status"] == "applied"
    assert fragrance(db, 30)["name"] == "Queued"  # type: ignore[index]


def test_a_fragrance_inserted_by_hand_after_a_delete_takes_an_older_change_on_retry(
    db: psycopg.Connection,
) -> None:
    set_apply_on_receipt(db, False)
    older = receive(db, {"fragrance_id": 30, "cost": 5})
    row = fragrance(db, 30)
    db.execute("delete from public.fragrances where fragrance_id = 30")
    db.execute(
        "insert into public.fragrances values (%(fragrance_id)s, %(name)s, %(description)s,"
        " %(cost)s, %(forbidden)s)",
        row,
    )
    db.execute("select sync.apply_pending()")
    assert inbox_row(db, older["inbox_id"])["status"] == "applied"
    assert fragrance(db, 30)["cost"] == 5  # type: ignore[index]


def test_a_hand_edit_of_many_rows_records_each_changed_row(db: psycopg.Connection) -> None:
    db.execute("update public.fragrances set cost = cost + 1 where fragrance_id between 10 and 14")
    rows = db.execute(
        "select fragrance_id from sync.fragrance_history where operation = 'update' order by id"
    ).fetchall()
    assert rows == [(10,), (11,), (12,), (13,), (14,)]


def test_changing_a_fragrance_id_by_hand_records_the_old_row_going_and_the_new_coming(
    db: psycopg.Connection,
) -> None:
    old = fragrance(db, 7)
    db.execute("update public.fragrances set fragrance_id = 70000 where fragrance_id = 7")
    assert [(h[0], h[1], h[2]) for h in _history(db, 7) + _history(db, 70000)] == [
        ("delete", old, None),
        ("insert", None, {**old, "fragrance_id": 70000}),
    ]


# --- Nobody can switch the audit off (review finding 5) -------------------------------------


def test_the_hooks_login_cannot_switch_off_the_history_of_its_deliveries(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    with psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as hook:
        hook.execute("set sync.history_written = 'on'")
        hook.execute("set sync.inbox_id = '1'")
        receipt = hook.execute(
            "select inbox_id, status from sync.receive(%s)",
            [body({"fragrance_id": 7, "cost": 99999})],
        ).fetchone()
    assert receipt is not None and receipt[1] == "applied"
    assert _history(db, 7) == [
        ("update", {"cost": 36}, {"cost": 99999}, receipt[0], "sync_hook_login")
    ]
    assert (
        db.execute("select * from sync.fragrance_at(7, now() - interval '1 hour')").fetchone()[3]
        == 36
    )  # type: ignore[index]


def test_a_dba_cannot_switch_off_the_history_of_a_hand_edit(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    dba.execute("set sync.history_written = 'on'")
    dba.execute("update public.fragrances set cost = 99999 where fragrance_id = 7")
    assert _history(db, 7) == [("update", {"cost": 36}, {"cost": 99999}, None, "alice")]
    clock = db.execute("select versions ? 'cost' from sync.field_version where fragrance_id = 7")
    assert clock.fetchone() == (True,)


def test_nobody_but_the_owner_can_mark_a_transaction_as_the_merge(
    server: Server, dbname: str, dba: psycopg.Connection
) -> None:
    with psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as hook:
        for conn in (hook, dba):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("insert into sync_private.merging values (pg_current_xact_id())")


def test_fragrance_at_infinity_is_the_fragrance_now_and_minus_infinity_its_earliest_state(
    db: psycopg.Connection,
) -> None:
    """An infinite moment is a bound, not an error: no change is after 'infinity'."""
    earliest = fragrance(db, 7)
    receive(db, {"fragrance_id": 7, "cost": 12})
    receive(db, {"fragrance_id": 7, "name": "Later"})
    now = fragrance(db, 7)

    def at(moment: str) -> dict[str, Any] | None:
        with db.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(
                "select * from sync.fragrance_at(7, %s::timestamptz)", [moment]
            ).fetchone()

    assert at("infinity") == now
    assert at("-infinity") == earliest


def test_fragrance_at_after_the_clock_stepped_back_shows_a_state_that_existed(
    db: psycopg.Connection,
) -> None:
    """The history is cut by its order (id), not by a clock that can step back.

    A change recorded while the database host's clock ran an hour ahead
    (corrected since by a step back) is dated in the future: undoing every
    change dated after the moment left fragrance_at(7, now()) without it,
    and mixed later changes with earlier ones into a row that never was.
    """
    first = receive(db, {"fragrance_id": 7, "cost": 12})
    # Recorded while the clock ran an hour ahead; the step back comes after it.
    # Only a replica's apply rewrites the history by hand (FS094).
    with as_replica(db):
        db.execute(
            "update sync.fragrance_history set changed_at = changed_at + interval '1 hour'"
            " where inbox_id = %s",
            [first["inbox_id"]],
        )
    receive(db, {"fragrance_id": 7, "name": "After the step"})
    now = fragrance(db, 7)

    def at(moment: str) -> dict[str, Any] | None:
        with db.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(f"select * from sync.fragrance_at(7, {moment})").fetchone()

    assert at("now()") == now
    # Half an hour on, the later change is in and so is the one before it:
    # never the name after the step with the cost before it.
    assert at("now() + interval '30 minutes'") == now


def test_a_truncate_records_every_row_it_removes_as_deleted(db: psycopg.Connection) -> None:
    """The owner's TRUNCATE left no history: fragrance_at and the audit lost the catalog."""
    row = fragrance(db, 30)
    db.execute("truncate public.fragrances")
    assert db.execute(
        "select count(*) from sync.fragrance_history where operation = 'delete'"
    ).fetchone() == (5000,)
    assert _history(db, 30) == [("delete", row, None, None, "postgres")]


def test_a_truncate_outranks_a_creation_received_before_it(db: psycopg.Connection) -> None:
    """As a hand delete does: a complete delta received before it must not bring a row back."""
    set_apply_on_receipt(db, False)
    before_truncate = receive(db, COMPLETE_30)
    db.execute("truncate public.fragrances")
    db.execute("select sync.apply_pending()")
    assert fragrance(db, 30) is None
    assert inbox_row(db, before_truncate["inbox_id"])["status"] == "ignored"


def test_a_truncate_closes_the_findings_of_the_rows_it_removes(db: psycopg.Connection) -> None:
    db.execute("update public.fragrances set cost = -1 where fragrance_id = 30")
    assert ("cost.negative",) in db.execute(
        "select rule from sync.open_finding where fragrance_id = 30"
    ).fetchall()
    db.execute("truncate public.fragrances")
    assert db.execute("select count(*) from sync.open_finding").fetchone() == (0,)


def test_a_truncate_that_cascades_to_a_table_of_the_library_still_runs(
    db: psycopg.Connection,
) -> None:
    """The library's own table that references the catalog is truncated with it, as asked."""
    db.execute(
        "create table public.favourite ("
        " fragrance_id integer not null references public.fragrances (fragrance_id))"
    )
    db.execute("insert into public.favourite values (30)")
    db.execute("truncate public.fragrances cascade")
    assert db.execute("select count(*) from public.favourite").fetchone() == (0,)
    assert _history(db, 30)[-1][0] == "delete"
