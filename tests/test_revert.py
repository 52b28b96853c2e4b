"""Undo: a revert restores what one delivery changed, through the inbox; history shows the past."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from conftest import Server
from helpers import fragrance, inbox_row, raises_sqlstate, receive, set_apply_on_receipt, store
from psycopg.rows import dict_row


def _revert(conn: psycopg.Connection, inbox_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from sync.revert(%s)", [inbox_id]).fetchone()
    assert row is not None
    return row


def _at(conn: psycopg.Connection, fragrance_id: int, moment: Any) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select * from sync.fragrance_at(%s, %s)", [fragrance_id, moment]
        ).fetchone()


def _now(conn: psycopg.Connection) -> Any:
    return conn.execute("select clock_timestamp()").fetchone()[0]


def test_a_revert_restores_every_field_the_change_set(db: psycopg.Connection) -> None:
    before = fragrance(db, 7)
    change = receive(db, {"fragrance_id": 7, "name": "Oops", "cost": 99, "forbidden": True})
    result = _revert(db, change["inbox_id"])
    assert fragrance(db, 7) == before
    assert result["status"] == "applied"
    assert result["restored"] == {
        "name": before["name"],
        "cost": before["cost"],
        "forbidden": before["forbidden"],
    }
    assert result["left_alone"] == {}


def test_a_revert_goes_through_the_inbox_as_an_ordinary_delivery(db: psycopg.Connection) -> None:
    change = receive(db, {"fragrance_id": 7, "cost": 99})
    result = _revert(db, change["inbox_id"])
    row = inbox_row(db, result["inbox_id"])
    assert row["id"] > change["inbox_id"]
    assert (row["origin"], row["content_type"], row["status"], row["applied_fields"]) == (
        "revert",
        "application/x-sync-revert",
        "applied",
        ["cost"],
    )
    assert row["user_agent"] == f"sync.revert({change['inbox_id']}) by postgres"
    assert db.execute(
        "select inbox_id from sync.fragrance_history"
        " where fragrance_id = 7 order by id desc limit 1"
    ).fetchone() == (result["inbox_id"],)


def test_a_field_set_by_a_later_change_is_left_alone_and_said_so(db: psycopg.Connection) -> None:
    before = fragrance(db, 7)
    change = receive(db, {"fragrance_id": 7, "name": "Oops", "cost": 99})
    later = receive(db, {"fragrance_id": 7, "name": "Newer"})
    result = _revert(db, change["inbox_id"])
    assert (fragrance(db, 7)["name"], fragrance(db, 7)["cost"]) == ("Newer", before["cost"])
    assert result["restored"] == {"cost": before["cost"]}
    assert result["left_alone"]["name"].startswith(f"set since by delivery {later['inbox_id']}")
    assert "left alone: name (set since by delivery" in result["message"]


def test_a_field_a_later_delivery_will_set_is_left_alone_while_it_is_pending(
    db: psycopg.Connection,
) -> None:
    before = fragrance(db, 7)
    change = receive(db, {"fragrance_id": 7, "name": "Oops", "cost": 20})
    later = store(db, {"fragrance_id": 7, "cost": 30})  # stored by the hook, not merged yet
    result = _revert(db, change["inbox_id"])
    assert result["restored"] == {"name": before["name"]}
    assert result["left_alone"] == {
        "cost": f"set by delivery {later['inbox_id']}, received since and not applied yet"
    }
    db.execute("select sync.apply_received()")
    assert (fragrance(db, 7)["name"], fragrance(db, 7)["cost"]) == (before["name"], 30)
    assert inbox_row(db, later["inbox_id"])["status"] == "applied"


def test_a_field_a_later_quarantined_delivery_sets_is_left_alone_until_it_is_retried(
    db: psycopg.Connection,
) -> None:
    """Restored at a newer inbox id, the old cost made the later change stale on its retry."""
    before = fragrance(db, 7)
    change = receive(db, {"fragrance_id": 7, "name": "Oops", "cost": 20})
    db.execute("update sync.rule set parameter = 3 where code = 'description.too_long'")
    later = receive(db, {"fragrance_id": 7, "description": "Newer", "cost": 30})
    assert later["status"] == "rejected"
    result = _revert(db, change["inbox_id"])
    assert result["restored"] == {"name": before["name"]}
    assert result["left_alone"]["cost"].startswith(
        f"set by delivery {later['inbox_id']}, received since and in quarantine"
    )
    db.execute("update sync.rule set parameter = 1024 where code = 'description.too_long'")
    assert db.execute("select status from sync.retry(%s)", [later["inbox_id"]]).fetchone() == (
        "applied",
    )
    assert fragrance(db, 7)["cost"] == 30  # type: ignore[index]


def test_a_revert_left_in_an_open_transaction_holds_back_no_store(
    server: Server, dbname: str
) -> None:
    """A DBA may look before committing: intake goes on meanwhile."""
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as setup,
        psycopg.connect(server.url(dbname)) as dba,
        psycopg.connect(server.url(dbname), autocommit=True) as hook,
    ):
        change = receive(setup, {"fragrance_id": 7, "cost": 20})
        _revert(dba, change["inbox_id"])  # its transaction still open
        hook.execute("set lock_timeout = '200ms'")
        stored = store(hook, {"fragrance_id": 8, "cost": 30})
        dba.rollback()
    assert stored["status"] == "pending"


def test_a_revert_behind_a_held_fragrance_says_which_one_while_it_waits(
    server: Server, db: psycopg.Connection, dbname: str
) -> None:
    """Not a silent psql: after 2 s it names the held fragrance, then waits on, as a repair does."""
    change = receive(db, {"fragrance_id": 7, "cost": 20})
    with psycopg.connect(server.url(dbname)) as holder:
        holder.execute("select * from public.fragrances where fragrance_id = 7 for update")
        notices: list[str] = []
        db.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        # The DBA's own bound, longer than the 2 s after which it speaks, ends the wait here.
        db.execute("set lock_timeout = '3s'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            db.execute("select * from sync.revert(%s)", [change["inbox_id"]])
        db.execute("reset lock_timeout")
        holder.rollback()
    assert notices == ["sync.revert waits for fragrance 7, which another transaction holds"]


def test_a_revert_names_the_fragrance_it_changed_or_left(db: psycopg.Connection) -> None:
    """A history row's id passed for an inbox id reverts another fragrance: the answer says so."""
    change = receive(db, {"fragrance_id": 7, "cost": 20})
    result = _revert(db, change["inbox_id"])
    assert result["message"].startswith(f"inbox row {change['inbox_id']} of fragrance 7: ")
    again = _revert(db, change["inbox_id"])["message"]
    assert again == f"nothing to restore for inbox row {change['inbox_id']} of fragrance 7"


def test_a_field_set_by_hand_since_is_left_alone_and_said_so(db: psycopg.Connection) -> None:
    change = receive(db, {"fragrance_id": 7, "name": "Oops"})
    db.execute("update public.fragrances set name = 'DBA fix' where fragrance_id = 7")
    result = _revert(db, change["inbox_id"])
    assert fragrance(db, 7)["name"] == "DBA fix"
    assert (result["inbox_id"], result["status"], result["restored"]) == (None, "ignored", {})
    assert result["left_alone"]["name"].startswith("set since by a hand edit by postgres")


def test_a_field_resent_unchanged_since_is_left_alone(db: psycopg.Connection) -> None:
    change = receive(db, {"fragrance_id": 7, "name": "Oops"})
    again = receive(db, {"fragrance_id": 7, "name": "Oops"})
    result = _revert(db, change["inbox_id"])
    assert fragrance(db, 7)["name"] == "Oops"
    assert result["left_alone"] == {"name": f"set since by delivery {again['inbox_id']}"}


def test_a_revert_queued_while_apply_on_receipt_is_off_says_how_to_apply_it(
    db: psycopg.Connection,
) -> None:
    change = receive(db, {"fragrance_id": 7, "cost": 99})
    set_apply_on_receipt(db, False)
    result = _revert(db, change["inbox_id"])
    assert result["status"] == "pending"
    assert "sync.apply_pending" in result["message"]


@pytest.mark.parametrize(
    ("payload", "sqlstate"),
    [
        ({"fragrance_id": 7, "cost": -1}, "FS002"),
        ({"fragrance_id": 7}, "FS002"),
        (
            {"fragrance_id": 9000, "name": "N", "description": "", "cost": 1, "forbidden": False},
            "FS060",
        ),
    ],
    ids=["rejected", "ignored", "a creation"],
)
def test_what_cannot_be_reverted_is_refused_with_our_sqlstate_and_a_hint(
    db: psycopg.Connection, payload: dict[str, Any], sqlstate: str
) -> None:
    change = receive(db, payload)
    with pytest.raises(psycopg.Error) as refused:
        _revert(db, change["inbox_id"])
    assert (refused.value.sqlstate, bool(refused.value.diag.message_hint)) == (sqlstate, True)


def test_reverting_no_delivery_is_refused(db: psycopg.Connection) -> None:
    with raises_sqlstate("FS005", "needs an inbox id"):
        db.execute("select * from sync.revert(null)")


def test_reverting_a_delivery_that_does_not_exist_is_refused(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as refused:
        _revert(db, 123456)
    assert refused.value.sqlstate == "FS001"


@pytest.mark.parametrize("args", ["7, null", "null, now()"])
def test_a_fragrance_at_no_moment_or_of_no_fragrance_is_refused(
    db: psycopg.Connection, args: str
) -> None:
    with raises_sqlstate("FS005", "needs a fragrance id and a moment"):
        db.execute(f"select * from sync.fragrance_at({args})")


def test_a_fragrance_is_shown_as_it_was_at_each_moment(db: psycopg.Connection) -> None:
    original = fragrance(db, 7)
    t0 = _now(db)
    receive(db, {"fragrance_id": 7, "name": "First", "cost": 10})
    t1 = _now(db)
    receive(db, {"fragrance_id": 7, "name": "Second", "forbidden": True})
    t2 = _now(db)
    db.execute("update public.fragrances set description = 'by hand' where fragrance_id = 7")
    assert _at(db, 7, t0) == original
    assert _at(db, 7, t1) == {**original, "name": "First", "cost": 10}
    assert _at(db, 7, t2) == {**original, "name": "Second", "cost": 10, "forbidden": True}
    assert _at(db, 7, _now(db)) == fragrance(db, 7)


def test_an_adopted_fragrance_without_recorded_history_is_shown_as_adopted(
    db: psycopg.Connection,
) -> None:
    assert _at(db, 7, _now(db) - timedelta(days=365)) == fragrance(db, 7)


def test_a_fragrance_created_later_or_deleted_earlier_has_no_row(db: psycopg.Connection) -> None:
    t0 = _now(db)
    new = {"fragrance_id": 9000, "name": "N", "description": "D", "cost": 1, "forbidden": False}
    receive(db, new)
    t1 = _now(db)
    db.execute("delete from public.fragrances where fragrance_id = 9000")
    assert (_at(db, 9000, t0), _at(db, 9000, t1), _at(db, 9000, _now(db))) == (None, new, None)


def test_a_previous_null_is_left_alone_since_a_change_cannot_carry_it(
    db: psycopg.Connection,
) -> None:
    db.execute("update public.fragrances set description = null where fragrance_id = 7")
    change = receive(db, {"fragrance_id": 7, "description": "Filled in", "cost": 99})
    result = _revert(db, change["inbox_id"])
    assert fragrance(db, 7)["description"] == "Filled in"
    assert result["left_alone"] == {
        "description": "its previous value was null, which a change cannot carry; set it by hand"
    }
    assert list(result["restored"]) == ["cost"]


def _received_a_then_b_merged_b_then_a(
    server: Server, dbname: str, db: psycopg.Connection, b: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sets fragrance 42's name, then B (``b``) sets it too; B is merged first, A is stale."""
    earlier = store(db, {"fragrance_id": 42, "name": "From A"})
    change = store(db, b)
    with psycopg.connect(server.url(dbname)) as other_merger:
        other_merger.execute(
            "select from sync.inbox where id = %s for update", [earlier["inbox_id"]]
        )
        db.execute("select sync.apply_pending()")  # skips A, which another merger holds
    db.execute("select sync.apply_pending()")
    assert inbox_row(db, earlier["inbox_id"])["stale_fields"] == ["name"]
    return earlier, change


def test_a_field_an_earlier_delivery_lost_as_stale_to_the_change_is_left_alone_and_said_so(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """Received A then B, merged B then A: A's name, the one before B, was never written."""
    before = fragrance(db, 42)
    earlier, change = _received_a_then_b_merged_b_then_a(
        server, dbname, db, {"fragrance_id": 42, "name": "From B", "cost": 77}
    )
    result = _revert(db, change["inbox_id"])
    assert (fragrance(db, 42)["name"], fragrance(db, 42)["cost"]) == ("From B", before["cost"])
    assert result["left_alone"]["name"].startswith(
        f"delivery {earlier['inbox_id']}, received before this one, set it too"
    )


def _stage_repair_of_cost(db: psycopg.Connection, fragrance_id: int, cost: int) -> int:
    """A repair staged for a second look (p_apply false): pending, left by the hook's merger."""
    db.execute(
        "select sync.load_snapshot(jsonb_agg(case when f.fragrance_id = %s"
        " then to_jsonb(f) || jsonb_build_object('cost', %s) else to_jsonb(f) end))"
        " from public.fragrances as f",
        [fragrance_id, cost],
    )
    [(staged, status)] = db.execute("select inbox_id, status from sync.repair(p_apply => false)")
    assert status == "pending"
    return staged


def test_a_field_an_earlier_delivery_still_pending_sets_is_left_alone_and_said_so(
    db: psycopg.Connection,
) -> None:
    """Staged repair A, then webhook B merged: by receipt order the cost before B is A's."""
    before = fragrance(db, 7)
    earlier = _stage_repair_of_cost(db, 7, 50)
    change = store(db, {"fragrance_id": 7, "name": "From B", "cost": 60})
    db.execute("select sync.apply_received()")  # the hook's merger: webhooks only
    result = _revert(db, change["inbox_id"])
    assert result["restored"] == {"name": before["name"]}
    assert result["left_alone"]["cost"].startswith(
        f"delivery {earlier}, received before this one, sets it too and is still pending"
    )
    assert f"WHERE id = {earlier};" in result["message"]
    db.execute("select sync.apply_pending()")
    assert inbox_row(db, earlier)["status"] == "ignored"  # stale: B was received after it
    assert fragrance(db, 7)["cost"] == 60  # as B left it, not the value from before A and B


def test_an_earlier_pending_delivery_older_than_the_value_restored_does_not_hold_it(
    db: psycopg.Connection,
) -> None:
    """A pending, then B and C merged: the cost before C is B's, whatever becomes of A."""
    earlier = _stage_repair_of_cost(db, 7, 50)
    receive(db, {"fragrance_id": 7, "cost": 55})
    change = receive(db, {"fragrance_id": 7, "cost": 60})
    result = _revert(db, change["inbox_id"])
    assert (result["restored"], result["left_alone"]) == ({"cost": 55}, {})
    db.execute("select sync.apply_pending()")
    assert inbox_row(db, earlier)["status"] == "ignored"
    assert fragrance(db, 7)["cost"] == 55


def _inbox_ids(db: psycopg.Connection) -> list[tuple[int, str]]:
    return db.execute("select id, status from sync.inbox order by id").fetchall()


@pytest.mark.parametrize("apply_on_receipt", [True, False], ids=["applied", "staged"])
def test_a_revert_whose_values_the_rules_now_refuse_raises_and_stores_nothing(
    db: psycopg.Connection, apply_on_receipt: bool
) -> None:
    """It said "name restored through delivery 2 (rejected)", and the name was not restored."""
    change = receive(db, {"fragrance_id": 7, "name": "Abc", "cost": 5})
    db.execute("update sync.rule set parameter = 5 where code = 'name.too_long'")
    set_apply_on_receipt(db, apply_on_receipt)
    inbox = _inbox_ids(db)
    with pytest.raises(psycopg.Error) as refused:
        _revert(db, change["inbox_id"])
    assert refused.value.sqlstate == "FS061"
    assert f"inbox row {change['inbox_id']} cannot be reverted" in str(refused.value)
    assert "(name.too_long)" in str(refused.value)
    assert "Nothing was stored or restored" in (refused.value.diag.message_hint or "")
    assert "'name.too_long'" in (refused.value.diag.message_hint or "")
    assert _inbox_ids(db) == inbox
    assert (fragrance(db, 7)["name"], fragrance(db, 7)["cost"]) == ("Abc", 5)


def test_a_revert_the_merge_rejects_raises_and_leaves_no_delivery(db: psycopg.Connection) -> None:
    """The rules pass it, the table refuses it (a constraint of the smart library's)."""
    before = fragrance(db, 7)
    change = receive(db, {"fragrance_id": 7, "cost": 99})
    db.execute(
        "alter table public.fragrances add constraint not_that_cost"
        f" check (cost <> {before['cost']}) not valid"
    )
    inbox = _inbox_ids(db)
    with pytest.raises(psycopg.Error) as refused:
        _revert(db, change["inbox_id"])
    assert refused.value.sqlstate == "FS061"
    assert "(internal.error)" in str(refused.value)
    # internal.error is no rule: the hint says so, and sends nobody to sync.rule.
    hint = refused.value.diag.message_hint or ""
    assert "the table refused the write, not a rule" in hint
    assert "sync.rule" not in hint
    assert _inbox_ids(db) == inbox
    assert fragrance(db, 7)["cost"] == 99


def _stale_to_a_hand_edit(db: psycopg.Connection) -> int:
    """Delivery A (cost 50) received, then a hand edit (cost 55), then A merged: stale to it."""
    earlier = store(db, {"fragrance_id": 7, "cost": 50})
    db.execute("update public.fragrances set cost = 55 where fragrance_id = 7")
    db.execute("select sync.apply_pending()")
    assert inbox_row(db, earlier["inbox_id"])["stale_fields"] == ["cost"]
    return earlier["inbox_id"]


def _pending_behind_a_hand_edit(db: psycopg.Connection) -> int:
    """Staged repair A (cost 50) received, then a hand edit (cost 55); A still pending."""
    earlier = _stage_repair_of_cost(db, 7, 50)
    db.execute("update public.fragrances set cost = 55 where fragrance_id = 7")
    return earlier


@pytest.mark.parametrize(
    "earlier_delivery",
    [_stale_to_a_hand_edit, _pending_behind_a_hand_edit],
    ids=["merged-stale", "still-pending"],
)
def test_an_earlier_delivery_older_than_a_hand_edit_does_not_hold_the_value_it_left(
    db: psycopg.Connection, earlier_delivery: Any
) -> None:
    """A, then a hand edit, then B: the cost before B is the hand edit's, A is older than it.

    The revert took a hand edit for position 0, older than every delivery, so A
    (received before the edit) was named as the value before B, and the DBA
    was told to set A's older cost by hand.
    """
    earlier = earlier_delivery(db)
    change = receive(db, {"fragrance_id": 7, "cost": 60})
    result = _revert(db, change["inbox_id"])
    assert (result["restored"], result["left_alone"]) == ({"cost": 55}, {})
    db.execute("select sync.apply_pending()")
    assert inbox_row(db, earlier)["status"] in ("ignored", "applied")
    assert fragrance(db, 7)["cost"] == 55


def test_a_field_a_later_pending_delivery_the_rules_refuse_carries_is_left_alone(
    db: psycopg.Connection,
) -> None:
    """Not merged yet and bound for quarantine: restored over it, the retried change was stale."""
    before = fragrance(db, 7)
    change = receive(db, {"fragrance_id": 7, "name": "Oops", "cost": 20})
    db.execute("update sync.rule set parameter = 3 where code = 'description.too_long'")
    later = store(db, {"fragrance_id": 7, "description": "Newer", "cost": 30})
    result = _revert(db, change["inbox_id"])
    assert result["restored"] == {"name": before["name"]}
    assert result["left_alone"]["cost"].startswith(
        f"set by delivery {later['inbox_id']}, received since and not applied yet"
    )
    db.execute("select sync.apply_pending()")
    assert inbox_row(db, later["inbox_id"])["status"] == "rejected"
    db.execute("update sync.rule set parameter = 1024 where code = 'description.too_long'")
    assert db.execute("select status from sync.retry(%s)", [later["inbox_id"]]).fetchone() == (
        "applied",
    )
    assert fragrance(db, 7)["cost"] == 30  # type: ignore[index]


def test_a_purge_takes_a_change_before_the_earlier_delivery_that_lost_to_it_as_stale(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """Received A then B, merged B then A: purged oldest first, A went and B stayed.

    The revert of B then no longer saw A and put back the name from before
    both, not A's, the CMS's value before B (the chunk committed, and a purge
    stopped there left it so until the next night).
    """
    before = fragrance(db, 42)
    earlier, change = _received_a_then_b_merged_b_then_a(
        server, dbname, db, {"fragrance_id": 42, "name": "From B", "cost": 77}
    )
    purge_one = "select sync.purge_applied('0 seconds', p_force => true, p_limit => 1)"
    assert db.execute(purge_one).fetchone() == (1,)
    with raises_sqlstate("FS001"):
        _revert(db, change["inbox_id"])  # B went first: nothing can revert it any more
    assert inbox_row(db, earlier["inbox_id"])["status"] == "ignored"
    assert fragrance(db, 42)["name"] == "From B" != before["name"]
    assert db.execute(purge_one).fetchone() == (1,)  # then A, with nothing left to need it
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


def test_a_revert_of_a_purged_delivery_says_it_was_purged_and_how_to_undo_it_by_hand(
    db: psycopg.Connection,
) -> None:
    """It said "inbox row 1 does not exist", while the history showed what row 1 changed."""
    change = receive(db, {"fragrance_id": 7, "cost": 99})
    assert db.execute("select sync.purge_applied('0', p_force => true)").fetchone() == (1,)
    with pytest.raises(psycopg.Error) as refused:
        _revert(db, change["inbox_id"])
    assert refused.value.sqlstate == "FS001"
    assert f"inbox row {change['inbox_id']} was purged" in str(refused.value)
    hint = refused.value.diag.message_hint or ""
    assert f"FROM sync.fragrance_history WHERE inbox_id = {change['inbox_id']}" in hint
    assert "WHERE fragrance_id = 7;" in hint


def test_a_delivery_lost_as_stale_before_a_hand_delete_and_insert_does_not_hold_the_value_after(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """A and B, merged B then A; the row deleted and inserted by hand; then C.

    The name before C is the one inserted by hand. The revert of C took the
    hand insert for position 0 and named A, stale long before the row was
    deleted, as the value before C: the DBA was told to set A's name by hand.
    """
    earlier, _ = _received_a_then_b_merged_b_then_a(
        server, dbname, db, {"fragrance_id": 42, "name": "From B"}
    )
    row = fragrance(db, 42)
    assert row is not None
    db.execute("delete from public.fragrances where fragrance_id = 42")
    db.execute(
        "insert into public.fragrances values (42, 'By hand', %s, %s, %s)",
        [row["description"], row["cost"], row["forbidden"]],
    )
    change = receive(db, {"fragrance_id": 42, "name": "From C"})
    result = _revert(db, change["inbox_id"])
    assert (result["restored"], result["left_alone"]) == ({"name": "By hand"}, {})
    assert fragrance(db, 42)["name"] == "By hand"  # type: ignore[index]


def test_a_revert_of_a_repair_leaves_a_field_to_a_quarantined_delivery_received_after_its_snapshot(
    server: Server, dbname: str
) -> None:
    """Newer than the repair by position though older by inbox id: its retry must not be stale."""
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as hook,
    ):
        rows = dba.execute(
            "select json_agg(f order by fragrance_id) from public.fragrances as f"
        ).fetchone()[0]  # type: ignore[index]
        rows[7]["cost"] = 50
        dba.execute("select sync.load_snapshot(%s::jsonb)", [psycopg.types.json.Jsonb(rows)])
        dba.execute("update sync.rule set parameter = 3 where code = 'description.too_long'")
        # Stored beside the repair (its id below the repair's), after the snapshot.
        later = store(hook, {"fragrance_id": 7, "description": "Newer", "cost": 55})
        [(repair_id,)] = dba.execute("select inbox_id from sync.repair()")
        hook.commit()
        hook.execute("select sync.apply_received()")
        hook.commit()
        assert inbox_row(dba, later["inbox_id"])["status"] == "rejected"
        result = _revert(dba, repair_id)
        assert result["restored"] == {}
        assert result["left_alone"]["cost"].startswith(
            f"set by delivery {later['inbox_id']}, received since and in quarantine"
        )
        dba.execute("update sync.rule set parameter = 1024 where code = 'description.too_long'")
        assert dba.execute("select status from sync.retry(%s)", [later["inbox_id"]]).fetchone() == (
            "applied",
        )
        assert fragrance(dba, 7)["cost"] == 55  # type: ignore[index]


def test_a_delivery_stored_beside_a_revert_and_merged_after_it_keeps_its_value(
    server: Server, dbname: str
) -> None:
    """Its store drew its id before the revert's look, committed after it: unseen, it is newer."""
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as dba,
        psycopg.connect(server.url(dbname)) as hook,
    ):
        change = receive(dba, {"fragrance_id": 7, "cost": 20})
        later = store(hook, {"fragrance_id": 7, "cost": 30})
        result = _revert(dba, change["inbox_id"])
        assert "cost" in result["restored"]
        hook.commit()
        hook.execute("select sync.apply_received()")
        hook.commit()
        assert inbox_row(dba, later["inbox_id"])["status"] == "applied"
        assert fragrance(dba, 7)["cost"] == 30  # type: ignore[index]
