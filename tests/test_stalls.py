"""A DBA's row lock or a site's statement_timeout stalls neither the drain nor the merger."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import Server
from helpers import fragrance, inbox_row, name_sharing_a_turn_with, store, wait_for_lock_wait
from processes import Hook, start_hook, stop_hook

#: Generous bound for each awaited condition: it can only run out when the behaviour is wrong.
PATIENCE = 90.0


def _wait_until(condition: Callable[[], bool], what: str, hook: Hook) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if hook.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen (hook log follows):\n{hook.output()[-8000:]}")
        time.sleep(0.05)


def _post(hook: Hook, fragrance_id: int, cost: int) -> httpx.Response:
    data = json.dumps({"fragrance_id": fragrance_id, "cost": cost}).encode()
    return httpx.post(
        hook.url + "/notifications",
        content=data,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


def _health(hook: Hook) -> dict:
    return httpx.get(hook.url + "/healthz", timeout=60).json()


def _hook_waits_for_a_lock(server: Server) -> bool:
    """Whether a session of the hook's pool (stores, the drain; not the merger) waits on a lock."""
    with psycopg.connect(server.url("test")) as conn:
        return conn.execute(
            "select exists (select from pg_stat_activity where wait_event_type = 'Lock'"
            " and application_name = 'fragrance-sync-hook')"
        ).fetchone() == (True,)


def test_a_dba_row_lock_on_a_fragrance_does_not_stop_the_spool_draining(
    own_server: Server, tmp_path: Path
) -> None:
    """Intake must not depend on anyone's transaction (ADR 0022), spooled or not."""
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, DB_TIMEOUT="1")
    try:
        assert _post(hook, 7, 1).json()["status"] == "pending"
        with (
            psycopg.connect(own_server.url("test")) as dba,
            psycopg.connect(own_server.url("test")) as holder,
        ):
            # A short lock on the inbox puts a delivery in the spool (as in
            # test_a_store_held_past_db_timeout_is_spooled_not_left_waiting)...
            holder.execute("lock table sync.inbox in access exclusive mode")
            assert _post(hook, 7, 2).json()["status"] == "spooled"
            # ...and a DBA looks at fragrance 7 in an open transaction while it drains.
            dba.execute("select * from public.fragrances where fragrance_id = 7 for update")
            holder.rollback()
            _wait_until(
                lambda: _hook_waits_for_a_lock(own_server) or _health(hook)["spool_depth"] == 0,
                "the drain blocked on the DBA's lock, or done",
                hook,
            )
            health = _health(hook)
            dba.rollback()
    finally:
        stop_hook(hook)
    assert health["spool_depth"] == 0, health


def _status(server: Server, cost: int, fragrance_id: int = 7) -> str | None:
    with psycopg.connect(server.url("test")) as conn:
        row = conn.execute(
            "select status from sync.inbox where body = %s",
            [json.dumps({"fragrance_id": fragrance_id, "cost": cost}).encode()],
        ).fetchone()
    return None if row is None else row[0]


def test_a_sites_statement_timeout_does_not_stop_the_merger_for_good(
    own_server: Server, tmp_path: Path
) -> None:
    """A merge the site's statement_timeout cancels is the same merge at every sweep.

    The merger claims the oldest pending deliveries first, so a merge that
    cannot finish within a statement_timeout the site set for every session
    (here on the hook's login; a database-wide one does the same) is cancelled
    at every sweep, and nothing stored after it is ever applied. The hook's
    stores run under DB_TIMEOUT and the spool's drain without a bound; the
    merger's own connection kept the site's. The slow merge is made certain,
    not likely, by a trigger of the site's that sleeps longer than the bound.
    """
    with psycopg.connect(own_server.url("test"), autocommit=True) as owner:
        owner.execute("alter role sync_hook_login set statement_timeout = '100ms'")
        owner.execute(
            "create function public.slow_audit() returns trigger language plpgsql as"
            " $$ begin perform pg_sleep(0.5); return new; end $$"
        )
        owner.execute(
            "create trigger slow_audit after update on public.fragrances"
            " for each row execute function public.slow_audit()"
        )
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path)
    try:
        assert _post(hook, 7, 41).json()["status"] == "pending"
        _wait_until(
            lambda: _status(own_server, 41) != "pending" or "statement timeout" in hook.output(),
            "the merge applied, or cancelled by the site's statement_timeout",
            hook,
        )
        status = _status(own_server, 41)
    finally:
        stop_hook(hook)
        with psycopg.connect(own_server.url("test"), autocommit=True) as owner:
            owner.execute("alter role sync_hook_login reset statement_timeout")
    assert status == "applied", hook.output()[-3000:]


def test_a_dba_row_lock_on_one_fragrance_holds_back_only_that_fragrances_merge(
    own_server: Server, tmp_path: Path
) -> None:
    """A DBA's open transaction on fragrance 7 leaves fragrance 8's changes flowing.

    The merger claims the oldest pending deliveries and locks their
    fragrances: it waited for the DBA's row, and with it every delivery
    stored after, of any fragrance, until the DBA's transaction ended.
    """
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path)
    try:
        with psycopg.connect(own_server.url("test")) as holder:
            holder.execute("select * from public.fragrances where fragrance_id = 7 for update")
            assert _post(hook, 7, 71).json()["status"] == "pending"
            assert _post(hook, 8, 72).json()["status"] == "pending"
            _wait_until(
                lambda: _status(own_server, 72, fragrance_id=8) != "pending",
                "fragrance 8's change applied while fragrance 7 is held",
                hook,
            )
            assert _status(own_server, 72, fragrance_id=8) == "applied"
            assert _status(own_server, 71) == "pending"
            holder.rollback()
        _wait_until(
            lambda: _status(own_server, 71) != "pending",
            "fragrance 7's change applied once the DBA's transaction ended",
            hook,
        )
        assert _status(own_server, 71) == "applied"
    finally:
        stop_hook(hook)


@pytest.fixture
def holder(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    """A second session, in a transaction, for holding rows of the test's database."""
    with psycopg.connect(server.url(dbname)) as conn:
        yield conn
        conn.rollback()


def test_apply_pending_merges_the_other_fragrances_and_names_the_held_one(
    db: psycopg.Connection, holder: psycopg.Connection
) -> None:
    """The held fragrance's deliveries stay pending, in order, until its holder ends."""
    first = store(db, {"fragrance_id": 7, "cost": 61})
    other = store(db, {"fragrance_id": 8, "cost": 62})
    second = store(db, {"fragrance_id": 7, "cost": 63})
    holder.execute("select * from public.fragrances where fragrance_id = 7 for update")
    notices: list[str] = []
    db.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    db.execute("set lock_timeout = '10s'")  # without the skip, the call waits and fails
    result = db.execute("select processed, applied from sync.apply_pending(1000)").fetchone()
    assert result == (1, 1)
    assert inbox_row(db, other["inbox_id"])["status"] == "applied"
    assert [inbox_row(db, r["inbox_id"])["status"] for r in (first, second)] == ["pending"] * 2
    assert notices == ["2 of 3 deliveries left pending: another transaction holds fragrance 7"]
    holder.rollback()
    assert db.execute("select applied from sync.apply_pending(1000)").fetchone() == (2,)
    assert fragrance(db, 7)["cost"] == 63  # type: ignore[index]


def test_apply_received_passes_over_a_claim_of_held_fragrances_only(
    db: psycopg.Connection, holder: psycopg.Connection
) -> None:
    """A claim the size of the limit, all of one held fragrance, holds nothing behind it."""
    held = [store(db, {"fragrance_id": 7, "cost": c}) for c in (81, 82)]
    later = store(db, {"fragrance_id": 8, "cost": 83})
    holder.execute("select * from public.fragrances where fragrance_id = 7 for update")
    db.execute("set lock_timeout = '10s'")
    receipts = db.execute("select inbox_id, status from sync.apply_received(2)").fetchall()
    assert receipts == [(later["inbox_id"], "applied")]
    assert [inbox_row(db, r["inbox_id"])["status"] for r in held] == ["pending"] * 2


@pytest.fixture
def hook_session(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    """The hook's login as its merger connects, with a site's lock_timeout: a wait fails."""
    with psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as conn:
        conn.execute("set lock_timeout = '5s'")
        yield conn


@pytest.mark.parametrize("edited", [1, 200], ids=["one row", "more rows than 64 names"])
def test_a_dba_cost_edit_left_open_holds_back_no_other_fragrances_name(
    db: psycopg.Connection,
    dba: psycopg.Connection,
    hook_session: psycopg.Connection,
    edited: int,
) -> None:
    """A hand edit that leaves names as they are takes no turn of any name.

    The findings trigger locked the names of every row a statement wrote,
    changed or not: a DBA's open transaction that changed costs held those
    names' turns (more than 64 names: the whole turn table), and the merge
    of another fragrance's new name waited for it (sync_private.lock_names).
    """
    new_name = name_sharing_a_turn_with(db, fragrance(db, 1)["name"])  # type: ignore[index]
    with dba.transaction(force_rollback=True):
        dba.execute(
            "update public.fragrances set cost = cost + 1 where fragrance_id <= %s", [edited]
        )
        stored = store(hook_session, {"fragrance_id": 4000, "name": new_name})
        receipts = hook_session.execute("select inbox_id, status from sync.apply_received(10)")
        assert receipts.fetchall() == [(stored["inbox_id"], "applied")]


@pytest.fixture
def hook_holder(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    """Another session of the hook's login, in a transaction it leaves open."""
    with psycopg.connect(server.url(dbname, user="sync_hook_login")) as conn:
        yield conn
        conn.rollback()


def _name_on_a_turn_of_its_own(db: psycopg.Connection, names: list[str]) -> str:
    """A new name whose name.duplicate turn no name of `names` takes."""
    row = db.execute(
        "select n from generate_series(1, 100000) as i, format('A turn of its own %%s', i) as n"
        " where sync_private.name_turn_of(n) <> all"
        "     (array(select sync_private.name_turn_of(h) from unnest(%s::text[]) as h))"
        " limit 1",
        [names],
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("held", [1, 65], ids=["one name", "more than 64 names"])
def test_names_merged_in_a_transaction_left_open_hold_back_only_deliveries_of_their_turns(
    db: psycopg.Connection,
    hook_holder: psycopg.Connection,
    hook_session: psycopg.Connection,
    held: int,
) -> None:
    """The merger passes over a delivery whose name's turn another transaction holds.

    A merge that writes names keeps their turns until it commits. A session
    of the hook's login (a compromised hook), or a DBA's rename, left open
    after writing names held them for good, and the merger waited for it
    with every delivery of its claim: past 64 names it held the whole turn
    table, so every merge of a name, of any fragrance.
    """
    names = [f"Held name {n}" for n in range(held)]
    for n, name in enumerate(names, start=1):
        store(hook_holder, {"fragrance_id": n, "name": name})
    hook_holder.execute("select sync.apply_received(100)")
    waiting = store(
        hook_session, {"fragrance_id": 4000, "name": name_sharing_a_turn_with(db, names[0])}
    )
    free = store(
        hook_session, {"fragrance_id": 4001, "name": _name_on_a_turn_of_its_own(db, names)}
    )
    receipts = hook_session.execute("select inbox_id, status from sync.apply_received(10)")
    assert receipts.fetchall() == [(free["inbox_id"], "applied")]
    assert inbox_row(db, waiting["inbox_id"])["status"] == "pending"


@pytest.mark.parametrize("first", ["creation", "rename"])
def test_a_delivery_left_pending_for_a_held_turn_is_not_overtaken_by_a_later_one(
    db: psycopg.Connection,
    hook_holder: psycopg.Connection,
    hook_session: psycopg.Connection,
    first: str,
) -> None:
    """A later delivery of the same fragrance waits behind one left for a turn.

    The merger's claim loop passes over a claim whose deliveries were all
    left pending and claims the next ones; a turn held back only deliveries
    that carry a name, so the same fragrance's next delivery (a cost, no
    name, its row free) was merged first: after a creation left pending it
    was refused as fragrance_id.unknown, and its cost lost.
    """
    store(hook_holder, {"fragrance_id": 1, "name": "Held name"})
    hook_holder.execute("select sync.apply_received(100)")
    name = name_sharing_a_turn_with(db, "Held name")
    if first == "creation":
        fragrance_id = 900001
        delta = {"name": name, "description": "new", "cost": 10, "forbidden": False}
    else:
        fragrance_id = 2
        delta = {"name": name}
    earlier = store(hook_session, {"fragrance_id": fragrance_id, **delta})
    later = store(hook_session, {"fragrance_id": fragrance_id, "cost": 11})
    receipts = hook_session.execute("select inbox_id, status from sync.apply_received(1)")
    assert receipts.fetchall() == []
    assert [inbox_row(db, r["inbox_id"])["status"] for r in (earlier, later)] == ["pending"] * 2
    hook_holder.rollback()
    receipts = hook_session.execute("select inbox_id, status from sync.apply_received(10)")
    assert receipts.fetchall() == [
        (earlier["inbox_id"], "applied"),
        (later["inbox_id"], "applied"),
    ]
    assert fragrance(db, fragrance_id)["cost"] == 11  # type: ignore[index]


def test_a_merge_that_deadlocks_with_a_dbas_transaction_leaves_its_fragrances_to_the_dba(
    server: Server, dbname: str, db: psycopg.Connection, holder: psycopg.Connection
) -> None:
    """The merge holds 11 and waits for 12, which a DBA holds; the DBA then asks for 11.

    PostgreSQL broke the cycle by failing the merge (40P01): every other
    fragrance of its claim failed with it, and sync.apply_pending raised to
    its caller. The merge gives its rows back and passes over the held ones.
    """
    db.execute("update sync.settings set apply_on_receipt = false")
    first = store(db, {"fragrance_id": 11, "cost": 7})
    second = store(db, {"fragrance_id": 12, "cost": 8})
    holder.execute("update public.fragrances set cost = 1 where fragrance_id = 12")
    outcome: list[object] = []
    merging: list[int] = []
    connected = threading.Event()

    def merge() -> None:
        with psycopg.connect(server.url(dbname), autocommit=True) as conn:
            merging.append(conn.info.backend_pid)
            connected.set()
            try:
                outcome.append(conn.execute("select * from sync.apply_pending(10)").fetchone())
            except psycopg.Error as exc:
                outcome.append(exc)

    merger = threading.Thread(target=merge)
    merger.start()
    assert connected.wait(PATIENCE), "the merge never connected"
    # The merge has taken what it could and waits for 12 (deadlock_timeout is 1 s): only
    # then can the DBA's next statement close a circle with it.
    wait_for_lock_wait(db, merging[0])
    holder.execute("update public.fragrances set cost = 2 where fragrance_id = 11")
    merger.join(PATIENCE)
    holder.commit()
    assert len(outcome) == 1 and not isinstance(outcome[0], psycopg.Error), outcome

    db.execute("select sync.apply_pending(10)")
    ids = [first["inbox_id"], second["inbox_id"]]
    assert db.execute(
        "select count(*) from sync.inbox where id = any(%s) and status = 'pending'", [ids]
    ).fetchone() == (0,)
    # The DBA's edits came last, whichever of the two took 11 first: they stand.
    assert db.execute(
        "select fragrance_id, cost from public.fragrances where fragrance_id in (11, 12) order by 1"
    ).fetchall() == [(11, 2), (12, 1)]
