"""Batched ingest: sync.receive_many and the hook's batching store, against a real database.

A batch is one transaction: every delivery in it is stored in input order and
gets its own receipt, and nobody is answered before the commit. A failed
batch answers every request in it with the failure and stores nothing.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import Server
from helpers import (
    RECEIVE_MANY,
    body,
    explained_plans,
    fragrance,
    inbox_row,
    most_rows_discarded,
    receive_many,
    set_apply_on_receipt,
    settled,
)
from processes import start_service, stop_service
from psycopg_pool import AsyncConnectionPool
from test_hook import start_hook, stop_hook

from hook.ingest import BatchingStore, Delivery, Receipt, StoreError
from hook.serve import _tcp_socket


def delivery(payload: Any) -> Delivery:
    raw = payload if isinstance(payload, bytes) else body(payload)
    return Delivery(raw, "application/json", "127.0.0.1", "cms-test/1.0")


def store_all(
    url: str, deliveries: list[Delivery], max_batch: int = 50, deadline: float | None = None
) -> list[Receipt | StoreError]:
    """Hand deliveries to one BatchingStore concurrently, as concurrent requests do."""

    async def run() -> list[Receipt | StoreError]:
        pool = AsyncConnectionPool(
            url, min_size=1, max_size=2, timeout=2, kwargs={"autocommit": True}, open=False
        )
        await pool.open(wait=False)
        try:
            store = BatchingStore(pool, max_batch=max_batch, concurrency=1, deadline=deadline)
            return await asyncio.gather(
                *(store.store(d) for d in deliveries), return_exceptions=True
            )
        finally:
            await pool.close()

    return asyncio.run(run())


# --- sync.receive_many --------------------------------------------------------------------------


def test_receive_many_answers_one_receipt_per_body_in_input_order(db: psycopg.Connection) -> None:
    bodies = [
        body({"fragrance_id": 1, "cost": 5}),
        b"\xff not json",
        body({"fragrance_id": 2, "cost": -1}),
        body({"fragrance_id": 3}),
    ]
    receipts = receive_many(db, bodies)
    assert [status for _, status, _ in receipts] == ["applied", "rejected", "rejected", "ignored"]
    ids = [inbox_id for inbox_id, _, _ in receipts]
    assert ids == sorted(ids)
    assert [bytes(inbox_row(db, i)["body"]) for i in ids] == bodies


def test_receive_many_stores_the_request_metadata_of_each_delivery(
    db: psycopg.Connection,
) -> None:
    [(inbox_id, _, _)] = db.execute(
        RECEIVE_MANY, [[b"{}"], ["text/plain"], ["10.1.2.3"], ["cms/2"], [uuid.uuid4()]]
    ).fetchall()
    row = inbox_row(db, inbox_id)
    assert (row["content_type"], str(row["client_addr"]), row["user_agent"]) == (
        "text/plain",
        "10.1.2.3",
        "cms/2",
    )


@pytest.mark.parametrize(
    ("given", "addr", "raw"),
    [
        ("10.1.2.3", "10.1.2.3", None),
        ("2001:db8::1", "2001:db8::1", None),
        ("fe80::1%eth0", None, "fe80::1%eth0"),
        ("not an address", None, "not an address"),
        (None, None, None),
    ],
)
def test_a_client_address_the_database_cannot_read_is_kept_as_it_came(
    db: psycopg.Connection, given: str | None, addr: str | None, raw: str | None
) -> None:
    [(inbox_id, status, _)] = db.execute(
        RECEIVE_MANY,
        [[body({"fragrance_id": 7, "cost": 3})], [None], [given], [None], [uuid.uuid4()]],
    ).fetchall()
    row = inbox_row(db, inbox_id)
    assert (status, row["client_addr"] and str(row["client_addr"]), row["client_addr_raw"]) == (
        "applied",
        addr,
        raw,
    )


def test_one_unreadable_address_costs_neither_its_delivery_nor_its_batch(
    db: psycopg.Connection,
) -> None:
    receipts = db.execute(
        RECEIVE_MANY,
        [
            [body({"fragrance_id": n, "cost": n}) for n in (1, 2, 3)],
            [None] * 3,
            ["10.0.0.1", "fe80::1%eth0", "10.0.0.3"],
            [None] * 3,
            [uuid.uuid4() for _ in range(3)],
        ],
    ).fetchall()
    assert [r[1] for r in receipts] == ["applied"] * 3
    rows = db.execute("select host(client_addr), client_addr_raw from sync.inbox order by id")
    assert rows.fetchall() == [("10.0.0.1", None), (None, "fe80::1%eth0"), ("10.0.0.3", None)]


def test_a_sender_cannot_pass_a_delivery_off_as_one_the_database_made(
    db: psycopg.Connection,
) -> None:
    [(inbox_id, _, _)] = db.execute(
        RECEIVE_MANY,
        [
            [body({"fragrance_id": 7, "cost": 3})],
            ["application/x-sync-revert"],
            ["6.6.6.6"],
            ["sync.revert(1) by alice"],
            [uuid.uuid4()],
        ],
    ).fetchall()
    assert inbox_row(db, inbox_id)["origin"] == "webhook"
    [latest] = db.execute("select sync.status_report()").fetchone()[0]["latest"]
    assert latest["origin"] == "webhook"


def test_two_changes_of_one_fragrance_in_a_batch_merge_in_receipt_order(
    db: psycopg.Connection,
) -> None:
    receipts = receive_many(
        db,
        [body({"fragrance_id": 7, "name": "First"}), body({"fragrance_id": 7, "name": "Second"})],
    )
    assert [status for _, status, _ in receipts] == ["applied", "applied"]
    assert fragrance(db, 7)["name"] == "Second"


def test_receive_many_leaves_deliveries_pending_when_apply_on_receipt_is_off(
    db: psycopg.Connection,
) -> None:
    set_apply_on_receipt(db, False)
    [(inbox_id, status, _)] = receive_many(db, [body({"fragrance_id": 7, "name": "Later"})])
    row = inbox_row(db, inbox_id)
    assert (status, row["attempts"], row["processed_at"], row["payload"]) == (
        "pending",
        0,
        None,
        None,
    )
    assert fragrance(db, 7)["name"] != "Later"


def test_receive_many_writes_each_delivery_it_processes_once(db: psycopg.Connection) -> None:
    """Judged and merged before the insert: no second version of any inbox row (0018)."""
    bodies = [
        body({"fragrance_id": 7, "name": "Once"}),
        body({"fragrance_id": 7, "name": "Twice"}),
        body({"fragrance_id": 8}),
        body({"fragrance_id": 9, "cost": -1}),
        b"\xff not json",
    ]
    with db.transaction():
        receipts = receive_many(db, bodies)
        writes = db.execute(
            "select n_tup_ins, n_tup_upd from pg_stat_xact_user_tables"
            " where relid = 'sync.inbox'::regclass"
        ).fetchone()
    assert [s for _, s, _ in receipts] == ["applied", "applied", "ignored", "rejected", "rejected"]
    assert writes == (len(bodies), 0)


def test_a_delivery_processed_by_receive_many_was_received_before_it_changed_anything(
    db: psycopg.Connection,
) -> None:
    """received_at precedes the merge, so fragrance_at(received_at) is the state before it."""
    [(inbox_id, _, _)] = receive_many(db, [body({"fragrance_id": 7, "cost": 12})])
    times = db.execute(
        "select i.received_at < h.changed_at, h.changed_at <= i.processed_at, i.attempts"
        " from sync.inbox as i join sync.fragrance_history as h on h.inbox_id = i.id"
        " where i.id = %s",
        [inbox_id],
    ).fetchall()
    assert times == [(True, True, 1)]


@pytest.mark.parametrize(
    "arrays",
    [[[]] * 5, [None] * 5],
    ids=["empty arrays", "null arrays"],
)
def test_receive_many_of_no_delivery_stores_nothing(
    db: psycopg.Connection, arrays: list[Any]
) -> None:
    before = db.execute("select count(*) from sync.inbox").fetchone()
    assert db.execute(RECEIVE_MANY, arrays).fetchall() == []
    assert db.execute("select count(*) from sync.inbox").fetchone() == before


def test_receive_many_refuses_arrays_of_different_lengths(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as raised:
        db.execute(RECEIVE_MANY, [[b"{}", b"{}"], ["a"], ["10.0.0.1"], ["x"], [uuid.uuid4()] * 2])
    assert raised.value.sqlstate == "FS021"


def test_receive_many_refuses_arrays_of_two_dimensions(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as raised:
        db.execute(
            "select * from sync.receive_many(array[['{}', '{}'], ['{}', '{}']]::bytea[],"
            " array[['a', 'a'], ['a', 'a']], array[[null, null], [null, null]]::text[],"
            " array[['x', 'x'], ['x', 'x']], array[[null, null], [null, null]]::uuid[])"
        )
    assert raised.value.sqlstate == "FS021"


def test_a_null_body_in_a_batch_is_an_empty_delivery_and_fails_no_other(
    db: psycopg.Connection,
) -> None:
    receipts = db.execute(
        RECEIVE_MANY,
        [
            [body({"fragrance_id": 7, "cost": 9}), None],
            ["a"] * 2,
            [None] * 2,
            ["x"] * 2,
            [None] * 2,
        ],
    ).fetchall()
    assert [(status, [r["code"] for r in reasons]) for _, status, reasons in receipts] == [
        ("applied", []),
        ("rejected", ["body.empty"]),
    ]


def test_the_hook_login_may_call_receive_many(server: Server, dbname: str) -> None:
    with psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as hook:
        assert [s for _, s, _ in receive_many(hook, [body({"fragrance_id": 7, "cost": 9})])] == [
            "applied"
        ]


# --- the batching store ---------------------------------------------------------------------------


def test_concurrent_deliveries_are_stored_in_one_transaction_each_with_its_own_receipt(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    deliveries = [delivery({"fragrance_id": i, "cost": i}) for i in range(20)]
    receipts = store_all(server.url(dbname, user="sync_hook_login"), deliveries)
    assert all(isinstance(r, Receipt) and r.status == "pending" for r in receipts)
    ids = [r.inbox_id for r in receipts]
    assert ids == sorted(ids), "receipt order is the order the requests arrived in"
    assert [bytes(inbox_row(db, i)["body"]) for i in ids] == [d.body for d in deliveries]
    assert db.execute("select count(distinct xmin::text) from sync.inbox").fetchone() == (1,)


def test_a_burst_larger_than_the_batch_limit_is_stored_in_several_commits_in_order(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    deliveries = [delivery({"fragrance_id": 7, "cost": i}) for i in range(20)]
    receipts = store_all(server.url(dbname, user="sync_hook_login"), deliveries, max_batch=8)
    ids = [r.inbox_id for r in receipts if isinstance(r, Receipt)]
    assert len(ids) == 20 and ids == sorted(ids)
    assert db.execute("select count(distinct xmin::text) from sync.inbox").fetchone() == (3,)
    db.execute("select * from sync.apply_received(1000)")
    assert fragrance(db, 7)["cost"] == 19


def test_storing_a_large_batch_compares_no_pairs_of_its_deliveries(db: psycopg.Connection) -> None:
    """A store costs in proportion to its batch: each key is checked once, not against every other.

    Finding the first delivery of each key by a subquery over the whole batch
    made a store of 2,000 take 224 ms instead of about 60.
    """
    keys = [uuid.uuid4() for _ in range(299)]
    keys.append(keys[0])  # the same delivery twice: stored once
    bodies = [body({"fragrance_id": n % 5000, "cost": n % 100}) for n in range(300)]
    plans = explained_plans(db, analyze=True)
    receipts = db.execute(
        "select inbox_id from sync.store_many(%s, %s, %s, %s, %s)",
        [bodies, ["application/json"] * 300, [None] * 300, [None] * 300, keys],
    ).fetchall()
    assert len(receipts) == 300 and receipts[-1] == receipts[0]
    assert len({r[0] for r in receipts}) == 299
    assert most_rows_discarded(plans) < 5 * 300


def test_the_answer_says_pending_and_apply_received_gives_the_outcome_and_reasons(
    server: Server, dbname: str
) -> None:
    url = server.url(dbname, user="sync_hook_login")
    [receipt] = store_all(url, [delivery({"fragrance_id": 7, "cost": -1})])
    assert isinstance(receipt, Receipt)
    assert (receipt.status, receipt.reasons_json) == ("pending", "[]")
    with psycopg.connect(url, autocommit=True) as hook:
        [(inbox_id, status, reasons)] = hook.execute(
            "select * from sync.apply_received(1000)"
        ).fetchall()
    assert (inbox_id, status) == (receipt.inbox_id, "rejected")
    assert [r["code"] for r in reasons] == ["cost.negative"]


def test_apply_received_applies_in_receipt_order_in_batches_of_its_limit(
    db: psycopg.Connection,
) -> None:
    stored = db.execute(
        "select inbox_id from sync.store_many(%s, %s, %s, %s, %s)",
        [
            [body({"fragrance_id": 7, "cost": c}) for c in (1, 2, 3)],
            [None] * 3,
            [None] * 3,
            [None] * 3,
            [uuid.uuid4() for _ in range(3)],
        ],
    ).fetchall()
    first = db.execute("select inbox_id, status from sync.apply_received(2)").fetchall()
    assert first == [(stored[0][0], "applied"), (stored[1][0], "applied")]
    assert fragrance(db, 7)["cost"] == 2
    assert db.execute("select inbox_id from sync.apply_received(2)").fetchall() == [stored[2]]
    assert fragrance(db, 7)["cost"] == 3
    assert db.execute("select * from sync.apply_received(2)").fetchall() == []


#: 1 MiB bodies, stored compressed (one letter repeated) so that the test stays light.
LARGE_PENDING = """
    insert into sync.inbox (body, content_type)
    select convert_to(format('{"fragrance_id": %s, "description": "%s"}', 1000 + g,
                             repeat('a', 1048576 - 41)), 'UTF8'), 'application/json'
    from generate_series(1, 66) as g
"""


@pytest.mark.parametrize(
    "call",
    [
        "select count(*) from sync.apply_received(1000)",
        "select processed from sync.apply_pending(1000)",
    ],
)
def test_one_merge_call_takes_at_most_64_mib_of_bodies_and_leaves_the_rest_pending(
    db: psycopg.Connection, call: str
) -> None:
    """1,000 bodies of a larger MAX_BODY_BYTES would not fit in one value (1 GB)."""
    set_apply_on_receipt(db, False)
    db.execute(LARGE_PENDING)
    set_apply_on_receipt(db, True)
    assert db.execute(
        "select min(octet_length(body)), max(octet_length(body)) from sync.inbox"
    ).fetchone() == (1048576, 1048576)
    assert db.execute(call).fetchone() == (64,)
    assert db.execute("select count(*) from sync.inbox where status = 'pending'").fetchone() == (2,)
    assert db.execute(call).fetchone() == (2,)


def test_one_body_larger_than_64_mib_is_still_merged(db: psycopg.Connection) -> None:
    set_apply_on_receipt(db, False)
    db.execute(
        "insert into sync.inbox (body, content_type) values (convert_to(format("
        """'{"fragrance_id": 7, "description": "%s"}', repeat('a', 65 * 1048576)), 'UTF8'), null)"""
    )
    set_apply_on_receipt(db, True)
    assert db.execute("select status from sync.apply_received(1000)").fetchall() == [("rejected",)]


def test_apply_received_does_nothing_while_a_dba_holds_deliveries_back(
    db: psycopg.Connection,
) -> None:
    set_apply_on_receipt(db, False)
    db.execute(
        "select * from sync.store_many(%s, %s, %s, %s, %s)",
        [[body({"fragrance_id": 7, "cost": 4})], [None], [None], [None], [uuid.uuid4()]],
    )
    assert db.execute("select * from sync.apply_received(1000)").fetchall() == []
    assert db.execute("select count(*) from sync.inbox where status = 'pending'").fetchone() == (1,)


def _sql_function_calls(conn: psycopg.Connection) -> dict[str, int]:
    """Calls of our SQL-language functions counted so far in this backend (pending stats)."""
    return dict(
        conn.execute("""
            select s.schemaname || '.' || s.funcname, s.calls
            from pg_stat_xact_user_functions as s
            join pg_proc as p on p.oid = s.funcid
            join pg_language as l on l.oid = p.prolang
            where l.lanname = 'sql'
        """).fetchall()
    )


def test_the_hooks_path_calls_no_sql_function_that_is_planned_again_at_each_call(
    db: psycopg.Connection,
) -> None:
    """A SQL function is parsed and planned at every call unless it is inlined.

    Behind sync.store_many, sync.apply_received and the merge, every function
    called must be PL/pgSQL (whose plans the session keeps) or inlined where
    it is used (bench/README.md, step 19). A fresh session (a superuser's:
    counting calls is for superusers), a first round to make the plans, then
    the round that is counted.
    """
    deltas = [
        {"fragrance_id": 7, "name": "Amber Musk", "description": "Padded  ", "cost": 12.5},
        {"fragrance_id": 8, "description": "Cedar", "forbidden": True},
    ]
    store = "select * from sync.store_many(%s, %s, %s, %s, %s)"
    params = [[body(d) for d in deltas], [None] * 2, ["127.0.0.1"] * 2, [None] * 2, [None] * 2]
    db.execute("set track_functions = 'all'")
    counted = []
    for _ in range(2):
        before = _sql_function_calls(db)
        db.execute(store, params)
        applied = db.execute("select status from sync.apply_received(1000)").fetchall()
        assert applied == [("applied",), ("applied",)]
        after = _sql_function_calls(db)
        counted.append({f: n - before.get(f, 0) for f, n in after.items() if n > before.get(f, 0)})
    assert counted[1] == {}


def _function_calls(conn: psycopg.Connection, names: list[str]) -> dict[str, int]:
    """Calls of the named functions counted so far in this backend (pending stats)."""
    return dict(
        conn.execute(
            """
            select s.schemaname || '.' || s.funcname, s.calls
            from pg_stat_xact_user_functions as s
            where s.schemaname || '.' || s.funcname = any (%s)
            """,
            [names],
        ).fetchall()
    )


def test_a_merge_that_took_every_lock_asks_for_no_turn_again(db: psycopg.Connection) -> None:
    """The merger looks for held rows and turns only when it could not take them all.

    sync_private.lock_fragrances takes the rows and the name turns a merge
    needs before it settles; when it got them all, the merge called
    sync_private.take_turns for the same turns and sync_private.lock_names in
    its findings, finding them its own each time: statements every merge call
    of a name paid for nothing (bench/README.md, step 41). A fresh session (a
    superuser's), a first round to make the plans, then the round counted.
    """
    watched = ["sync_private.take_turns", "sync_private.lock_names", "sync_private.lock_fragrances"]
    store = "select * from sync.store_many(%s, %s, %s, %s, %s)"
    db.execute("set track_functions = 'all'")
    counted = []
    for round_ in range(2):
        deltas = [
            {"fragrance_id": 7, "name": f"Amber Musk {round_}", "cost": 12.5},
            {"fragrance_id": 8, "name": f"Cedar {round_}"},
        ]
        params = [[body(d) for d in deltas], [None] * 2, ["127.0.0.1"] * 2, [None] * 2, [None] * 2]
        before = _function_calls(db, watched)
        db.execute(store, params)
        applied = db.execute("select status from sync.apply_received(1000)").fetchall()
        assert applied == [("applied",), ("applied",)]
        after = _function_calls(db, watched)
        counted.append({f: after.get(f, 0) - before.get(f, 0) for f in watched})
    assert counted[1] == {
        "sync_private.take_turns": 0,
        "sync_private.lock_names": 0,
        "sync_private.lock_fragrances": 1,
    }


def _fail_on_poison(db: psycopg.Connection, sqlstate: str) -> None:
    """A trigger that fails any transaction storing a body that says 'poison'."""
    db.execute(f"""
        create function public.poison() returns trigger language plpgsql as $$
        begin
            if convert_from(new.body, 'UTF8') like '%poison%' then
                raise exception 'poisoned' using errcode = '{sqlstate}';
            end if;
            return new;
        end $$;
        create trigger _050_poison before insert on sync.inbox
            for each row execute function public.poison();
    """)


def test_a_batch_the_database_drops_answers_503_to_all_its_requests_and_stores_none(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    _fail_on_poison(db, "57P01")  # admin_shutdown: what a lost connection looks like
    deliveries = [delivery({"fragrance_id": 1}), delivery(b"poison"), delivery({"fragrance_id": 2})]
    answers = store_all(server.url(dbname), deliveries)
    assert [(type(a), getattr(a, "status", None)) for a in answers] == [(StoreError, 503)] * 3
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


def test_a_store_the_database_does_not_finish_in_time_answers_503_and_stores_none(
    server: Server, dbname: str
) -> None:
    """Past the deadline a batch is an outage (spooled), for a server that cannot say so itself.

    A stopped or unreachable one held every delivery queued behind the store.
    """
    with psycopg.connect(server.url(dbname)) as holder:
        holder.execute("lock table sync.inbox in access exclusive mode")
        answers = store_all(server.url(dbname), [delivery({"fragrance_id": 1})], deadline=0.5)
        holder.rollback()
        stored = holder.execute("select count(*) from sync.inbox").fetchone()
    assert [(type(a), getattr(a, "status", None)) for a in answers] == [(StoreError, 503)]
    assert stored == (0,)


def test_a_delivery_the_database_refuses_does_not_cost_the_rest_of_its_batch(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    _fail_on_poison(db, "P0001")
    deliveries = [delivery({"fragrance_id": 1}), delivery(b"poison"), delivery({"fragrance_id": 2})]
    first, poisoned, last = store_all(server.url(dbname), deliveries)
    assert isinstance(poisoned, StoreError) and poisoned.status == 500
    assert isinstance(first, Receipt) and isinstance(last, Receipt)
    assert first.inbox_id < last.inbox_id
    stored = db.execute("select id from sync.inbox order by id").fetchall()
    assert stored == [(first.inbox_id,), (last.inbox_id,)]


def test_with_the_database_down_every_delivery_gets_503(tmp_path: Path) -> None:
    url = "postgresql://sync_hook_login@127.0.0.1:9/none"
    answers = store_all(url, [delivery({"fragrance_id": 1}), delivery({"fragrance_id": 2})])
    assert [getattr(a, "status", None) for a in answers] == [503, 503]


# --- over HTTP ----------------------------------------------------------------------------------


def test_concurrent_posts_are_each_answered_with_the_receipt_of_their_own_body(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    bodies = [body({"fragrance_id": i, "description": f"concurrent {i}"}) for i in range(30)]

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=hook.url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/notifications", content=b) for b in bodies))

    try:
        answers = asyncio.run(post_all())
    finally:
        stop_hook(hook)
    assert [a.status_code for a in answers] == [202] * 30
    for sent, answer in zip(bodies, answers, strict=True):
        assert bytes(inbox_row(db, answer.json()["inbox_id"])["body"]) == sent
        assert answer.json()["status"] == "pending"
        assert settled(db, answer.json()["inbox_id"])["status"] == "applied"


def test_the_no_database_hook_answers_without_storing(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """bench/nodb_hook.py: the hook's own app, with a store that never touches the database."""
    url = server.url(dbname, user="sync_hook_login")
    nodb = start_service("bench.nodb_hook", tmp_path, "/healthz", DATABASE_URL=url)
    try:
        answer = httpx.post(nodb.url + "/notifications", content=b'{"fragrance_id": 7}')
    finally:
        stop_service(nodb)
    assert (answer.status_code, answer.json()) == (
        202,
        {"inbox_id": 0, "status": "pending", "reasons": []},
    )
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


# --- serving ------------------------------------------------------------------------------------


def test_the_workers_shared_socket_is_labelled_tcp_so_answers_are_not_delayed() -> None:
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # protocol 0, as uvicorn makes it
    labelled = _tcp_socket(plain)
    try:
        assert labelled.proto == socket.IPPROTO_TCP
    finally:
        labelled.close()


def test_several_workers_serve_deliveries(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, WORKERS="2")
    try:
        answers = [
            httpx.post(hook.url + "/notifications", content=body({"fragrance_id": i, "cost": 1}))
            for i in range(4)
        ]
    finally:
        stop_hook(hook)
    assert [a.status_code for a in answers] == [202] * 4
    assert db.execute("select count(*) from sync.inbox").fetchone() == (4,)


def test_receipts_that_do_not_match_the_batch_are_answered_500_and_not_stored_twice(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    db.execute("""
        create or replace function sync.store_many(
            p_bodies bytea[], p_content_types text[], p_client_addrs text[], p_user_agents text[],
            p_keys uuid[]
        ) returns setof sync.receipt language sql security definer as $$
            with stored as (
                insert into sync.inbox (body) select b from unnest(p_bodies) as b
                returning id, status, reasons
            )
            select * from stored order by id limit 1
        $$
    """)
    deliveries = [delivery({"fragrance_id": i}) for i in range(3)]
    answers = store_all(server.url(dbname), deliveries)
    assert [getattr(a, "status", None) for a in answers] == [500, 500, 500]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (3,)


def test_deliveries_queued_behind_a_batch_the_database_dropped_fail_with_it() -> None:
    """None of them may overtake the dropped one into the database if it comes back."""

    class FlappingStore(BatchingStore):
        calls = 0

        async def _call(self, deliveries: list[Delivery]) -> list[Receipt]:
            FlappingStore.calls += 1
            if FlappingStore.calls == 1:
                raise StoreError(503, "database unavailable")
            return [Receipt(n, "applied", "[]") for n, _ in enumerate(deliveries)]

    async def run() -> list[Any]:
        store = FlappingStore(None, max_batch=1, concurrency=1)  # type: ignore[arg-type]
        return await asyncio.gather(
            *(store.store(delivery({"fragrance_id": i})) for i in range(4)),
            return_exceptions=True,
        )

    answers = asyncio.run(run())
    assert [getattr(a, "status", None) for a in answers] == [503, 503, 503, 503]
    assert FlappingStore.calls == 1


def test_a_merge_commits_without_waiting_for_its_flush_and_storing_still_waits(
    server: Server, dbname: str
) -> None:
    """A crash can only undo a merge (its deliveries stay stored, pending); never a store."""
    with psycopg.connect(server.url(dbname, user="sync_hook_login")) as hook:
        hook.execute(
            "select * from sync.store_many(%s, %s, %s, %s, %s)",
            [[body({"fragrance_id": 7, "cost": 4})], [None], [None], [None], [uuid.uuid4()]],
        )
        assert hook.execute("show synchronous_commit").fetchone() == ("on",)
        hook.commit()
        assert hook.execute("select status from sync.apply_received(10)").fetchall() == [
            ("applied",)
        ]
        assert hook.execute("show synchronous_commit").fetchone() == ("off",)
        hook.commit()
        assert hook.execute("show synchronous_commit").fetchone() == ("on",)
