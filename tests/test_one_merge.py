"""The set-based merge: whatever a batch holds, the same outcome as one delivery at a time.

``sync._process_claimed`` (behind ``apply_pending``, ``retry`` and ``retry_all``)
merges a batch set-wise; ``sync._process_claimed_rowwise`` is the one-by-one
path it replaced, kept as the reference and the fallback. Each test stages the
same deliveries in two copies of one database, runs one path in each, and
compares every table the merge writes.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from conftest import Server
from helpers import fuzz_settings, receive_many, set_apply_on_receipt
from hypothesis import given
from hypothesis import strategies as st
from psycopg.rows import dict_row

SET_BASED = "sync._process_claimed"
ROW_BY_ROW = "sync._process_claimed_rowwise"

# A few fragrances, so one batch holds many deliveries for each of them.
FRAGRANCES = range(0, 12)
NEW_FRAGRANCES = range(900_000, 900_004)

RAW_BODIES = [
    b"",
    b"not json",
    b"\xff\xfe{}",
    b'{"fragrance_id": 1, "name": "a\\u0000b"}',
    b"[1, 2]",
    b'"just a string"',
    b'{"fragrance_id": 2, "name": "First", "name": "Second"}',
    b'{"fragrance_id": 2, "cost": 1, "cost": 1}',
    b'{"fragrance_id": 3, "description": "caf\\u00e9 \\"quoted\\" \\\\ slash"}',
    b'{"fragrance_id" : 4 , "name" : "Spaced out" }',
    b'{"fragrance_id": 4, "name": "name"}',
    b'{"fragrance_id": 5, "description": "say \\"name\\""}',
    b'{"fragrance_id": 6, "forbidden": true, "extra": {"name": 1}}',
    b'{"fragrance_id": 1e0, "cost": 1E1}',
    b'{"fragrance_id": 7.0, "cost": 2.50}',
]

INVALID_DELTAS: list[dict[str, Any]] = [
    {"fragrance_id": 1, "cost": -1},
    {"fragrance_id": 1, "name": None},
    {"fragrance_id": 2, "name": "   "},
    {"fragrance_id": 3, "name": "N" * 151},
    {"fragrance_id": 4, "forbidden": "yes"},
    {"fragrance_id": "7", "cost": 1},
    {"fragrance_id": 1.5, "cost": 1},
    {"cost": 1},
    {"fragrance_id": -1, "cost": 1},
]


def random_delta(rng: random.Random, fragrance_id: int) -> dict[str, Any]:
    """A partial CMS delta: one to four fields, values drawn from small pools so some repeat."""
    values = {
        "name": lambda: rng.choice(["Rose", "Oud", "Vetiver", "Café noir", 'Say "hi"']),
        "description": lambda: rng.choice(["Woody  ", "Fresh", "", "Línea \\ dos"]),
        "cost": lambda: rng.choice([0, 5, 10, 10.0, 10.5, 99, 1e2]),
        "forbidden": lambda: rng.choice([True, False]),
    }
    fields = rng.sample(sorted(values), rng.randint(1, 4))
    return {"fragrance_id": fragrance_id, **{f: values[f]() for f in fields}}


def random_backlog(seed: int, count: int) -> list[bytes]:
    """Deliveries as the CMS and its failures produce them, mostly valid partial deltas."""
    rng = random.Random(seed)
    bodies: list[bytes] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.55:
            delta = random_delta(rng, rng.choice(FRAGRANCES))
        elif roll < 0.62:
            delta = {"fragrance_id": rng.choice(FRAGRANCES)}
        elif roll < 0.67:
            delta = {**random_delta(rng, rng.choice(FRAGRANCES)), "colour": "red"}
        elif roll < 0.75:
            delta = rng.choice(INVALID_DELTAS)
        elif roll < 0.80:
            delta = random_delta(rng, rng.choice(NEW_FRAGRANCES))
        elif roll < 0.85:
            delta = {
                "fragrance_id": rng.choice(NEW_FRAGRANCES),
                "name": "Created",
                "description": "by a full delta",
                "cost": rng.choice([1, 2]),
                "forbidden": False,
            }
        else:
            bodies.append(rng.choice(RAW_BODIES))
            continue
        compact = rng.random() < 0.5
        separators = (",", ":") if compact else (", ", ": ")
        bodies.append(
            json.dumps(delta, separators=separators, ensure_ascii=rng.random() < 0.5).encode()
        )
    return bodies


def stage(conn: psycopg.Connection, bodies: list[bytes]) -> None:
    """Store deliveries as pending, in order, as the hook would with processing deferred."""
    set_apply_on_receipt(conn, False)
    with conn.cursor() as cur:
        cur.executemany("select sync.receive(%s)", [[b] for b in bodies])


def process(conn: psycopg.Connection, function: str, status: str, limit: int) -> list[int]:
    """Claim deliveries of one status in receipt order, as apply_pending does, and process them.

    Pending ones batch after batch until none is left; rejected ones (a retry) in one pass.
    Returns the summed counts: processed, applied, ignored, rejected, pending.
    """
    totals = [0, 0, 0, 0, 0]
    while True:
        row = conn.execute(
            f"select processed, applied, ignored, rejected, pending from {function}("
            "array(select id from sync.inbox where status = %s order by id limit %s for update))",
            [status, limit],
        ).fetchone()
        assert row is not None
        totals = [t + n for t, n in zip(totals, row, strict=True)]
        if row[0] == 0 or status != "pending":
            return totals


def state(conn: psycopg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Everything the merge writes, in an order both paths share."""
    queries = {
        "fragrances": "select * from public.fragrances order by fragrance_id",
        "inbox": "select id, status, reasons, applied_fields, stale_fields, payload,"
        " fragrance_id, attempts from sync.inbox order by id",
        "field_version": "select * from sync.field_version order by fragrance_id",
        # history ids interleave differently across fragrances; within one they are in order
        "history": "select fragrance_id, operation, old_values, new_values, inbox_id, db_user"
        " from sync.fragrance_history order by fragrance_id, id",
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return {name: cur.execute(query).fetchall() for name, query in queries.items()}


Scenario = Callable[[psycopg.Connection, str], list[int]]
Outcome = tuple[list[int], dict[str, list[dict[str, Any]]]]


def run_both_paths(
    server: Server, dbname: str, staged: list[bytes], scenario: Scenario
) -> Iterator[Outcome]:
    """Stage deliveries, copy the database, run the scenario with each path, read both back."""
    if staged:
        with psycopg.connect(server.url(dbname), autocommit=True) as conn:
            stage(conn, staged)
    twin = f"{dbname[:50]}_rowwise"
    server.create_database(twin, dbname)
    try:
        for name, function in ((dbname, SET_BASED), (twin, ROW_BY_ROW)):
            with psycopg.connect(server.url(name), autocommit=True) as conn:
                counts = scenario(conn, function)
                yield counts, state(conn)
    finally:
        server.drop_database(twin)


def assert_same(
    server: Server,
    dbname: str,
    staged: list[bytes],
    scenario: Scenario,
    must_see: frozenset[str] = frozenset({"applied", "ignored", "rejected"}),
) -> dict[str, list[dict[str, Any]]]:
    """Both paths end with the same counts and the same rows in every table they write."""
    (set_counts, set_state), (row_counts, row_state) = run_both_paths(
        server, dbname, staged, scenario
    )
    for table in row_state:
        assert set_state[table] == row_state[table], f"{table} differs"
    assert set_counts == row_counts
    # The scenario must have exercised the merge, or equality proves nothing.
    assert must_see <= {r["status"] for r in set_state["inbox"]}
    return set_state


@pytest.mark.parametrize("batch", [1, 7, 100, 1000])
def test_a_backlog_applied_in_batches_ends_as_one_by_one(
    server: Server, dbname: str, batch: int
) -> None:
    def apply_pending(conn: psycopg.Connection, function: str) -> list[int]:
        return process(conn, function, "pending", batch)

    assert_same(server, dbname, random_backlog(seed=batch, count=400), apply_pending)


def test_hand_edits_later_deliveries_and_retries_end_as_one_by_one(
    server: Server, dbname: str
) -> None:
    def story(conn: psycopg.Connection, function: str) -> list[int]:
        counts = process(conn, function, "pending", 50)
        conn.execute("update public.fragrances set name = 'By hand' where fragrance_id in (1, 2)")
        conn.execute("update public.fragrances set cost = cost + 1 where fragrance_id = 3")
        stage(conn, random_backlog(seed=99, count=150))
        counts = [
            a + b for a, b in zip(counts, process(conn, function, "pending", 50), strict=True)
        ]
        # Partial deltas for fragrances created since, retried: some fields are stale by now.
        retried = process(conn, function, "rejected", 1000)
        return [a + b for a, b in zip(counts, retried, strict=True)]

    assert_same(server, dbname, random_backlog(seed=42, count=300), story)


def test_one_delivery_retried_alone_ends_as_one_by_one(server: Server, dbname: str) -> None:
    staged = [
        json.dumps({"fragrance_id": 900_001, "name": "Too early", "cost": 3}).encode(),
        json.dumps(
            {
                "fragrance_id": 900_001,
                "name": "Born",
                "description": "",
                "cost": 1,
                "forbidden": True,
            }
        ).encode(),
        json.dumps({"fragrance_id": 900_001, "name": "Renamed"}).encode(),
        json.dumps({"fragrance_id": 1, "cost": 3}).encode(),
        json.dumps({"fragrance_id": 1}).encode(),
    ]

    def story(conn: psycopg.Connection, function: str) -> list[int]:
        counts = process(conn, function, "pending", 10)
        first = conn.execute("select min(id) from sync.inbox").fetchone()
        assert first is not None
        retried = conn.execute(
            f"select processed, applied, ignored, rejected, pending from {function}(%s)",
            [[first[0]]],
        ).fetchone()
        assert retried is not None
        return [a + b for a, b in zip(counts, retried, strict=True)]

    inbox = assert_same(server, dbname, staged, story, frozenset({"applied", "ignored"}))["inbox"]
    assert (inbox[0]["status"], inbox[0]["stale_fields"], inbox[0]["attempts"]) == (
        "ignored",
        ["name", "cost"],
        2,
    )


@pytest.mark.parametrize("chunk", [1, 8, 50])
def test_batches_stored_by_receive_many_end_as_deliveries_stored_one_by_one(
    server: Server, dbname: str, chunk: int
) -> None:
    deliveries = random_backlog(seed=7, count=300)

    def store(conn: psycopg.Connection, function: str) -> list[int]:
        if function == ROW_BY_ROW:
            for raw in deliveries:
                conn.execute("select sync.receive(%s)", [raw])
            return []
        for start in range(0, len(deliveries), chunk):
            receive_many(conn, deliveries[start : start + chunk])
        return []

    assert_same(server, dbname, [], store)


def wait_for_lock_wait(conn: psycopg.Connection, pid: int) -> None:
    """Return once the backend ``pid`` waits for a lock (so the interleaving is forced)."""
    for _ in range(500):
        waiting = conn.execute(
            "select wait_event_type = 'Lock' from pg_stat_activity where pid = %s", [pid]
        ).fetchone()
        if waiting == (True,):
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


def test_a_fragrance_created_while_a_batch_waits_for_its_locks_takes_that_batchs_deltas(
    server: Server, dbname: str
) -> None:
    deltas = [
        {"fragrance_id": 900_001, "name": "Born", "description": "", "cost": 1, "forbidden": False},
        {"fragrance_id": 5, "cost": 2},
        {"fragrance_id": 5, "name": "Second batch"},
        {"fragrance_id": 900_001, "name": "Renamed"},
    ]
    with psycopg.connect(server.url(dbname), autocommit=True) as admin:
        set_apply_on_receipt(admin, False)
        ids = [
            admin.execute(
                "select inbox_id from sync.receive(%s)", [json.dumps(d).encode()]
            ).fetchone()[0]  # type: ignore[index]
            for d in deltas
        ]
        with (
            psycopg.connect(server.url(dbname)) as creator,
            psycopg.connect(server.url(dbname), autocommit=True) as waiter,
        ):
            # The first batch creates 900001 and holds fragrance 5 until it commits.
            creator.execute(f"select {SET_BASED}(%s)", [ids[:2]])
            second = threading.Thread(
                target=lambda: waiter.execute(f"select {SET_BASED}(%s)", [ids[2:]])
            )
            second.start()
            wait_for_lock_wait(admin, waiter.info.backend_pid)
            creator.commit()
            second.join(timeout=30)
        outcome = admin.execute("select status from sync.inbox where id = %s", [ids[3]]).fetchone()
        name = admin.execute(
            "select name from public.fragrances where fragrance_id = 900001"
        ).fetchone()
    assert (outcome, name) == (("applied",), ("Renamed",))


def test_a_batch_that_waited_for_a_fragrance_is_ordered_after_the_batch_that_took_it_meanwhile(
    server: Server, dbname: str
) -> None:
    """Ids are drawn once the locks are held: receipt order is the order batches got them."""
    waiting_batch = [{"fragrance_id": 4, "cost": 44}, {"fragrance_id": 5, "name": "Waited"}]
    with (
        psycopg.connect(server.url(dbname), autocommit=True) as admin,
        psycopg.connect(server.url(dbname)) as holder,
        psycopg.connect(server.url(dbname), autocommit=True) as waiter,
    ):
        holder.execute("select from public.fragrances where fragrance_id = 4 for update")
        second = threading.Thread(
            target=lambda: receive_many(waiter, [json.dumps(d).encode() for d in waiting_batch])
        )
        second.start()
        wait_for_lock_wait(admin, waiter.info.backend_pid)
        # Fragrance 5 is not locked yet: the waiting batch locks in id order, 4 first.
        receive_many(admin, [json.dumps({"fragrance_id": 5, "name": "Meanwhile"}).encode()])
        holder.rollback()
        second.join(timeout=30)
        rows = admin.execute(
            "select payload ->> 'name', status, stale_fields from sync.inbox"
            " where payload ? 'name' order by id"
        ).fetchall()
        name = admin.execute("select name from public.fragrances where fragrance_id = 5").fetchone()
    assert (rows, name) == (
        [("Meanwhile", "applied", []), ("Waited", "applied", [])],
        ("Waited",),
    )


def test_a_batch_and_a_spool_drain_of_one_of_its_deliveries_never_deadlock(
    server: Server, dbname: str
) -> None:
    """receive_many locks its fragrances before it takes its keys, as receive_spooled does."""
    key = uuid.uuid4()
    spooled = json.dumps({"fragrance_id": 5, "cost": 55}).encode()
    bodies = [json.dumps({"fragrance_id": 3, "cost": 33}).encode(), spooled]
    errors: list[BaseException] = []

    def store(conn: psycopg.Connection, sql: str, params: list[Any]) -> None:
        try:
            conn.execute(sql, params)
        except psycopg.Error as exc:
            errors.append(exc)

    with (
        psycopg.connect(server.url(dbname), autocommit=True) as admin,
        psycopg.connect(server.url(dbname)) as holder,
        psycopg.connect(server.url(dbname), autocommit=True) as batch,
        psycopg.connect(server.url(dbname), autocommit=True) as drain,
    ):
        holder.execute("select 1 from public.fragrances where fragrance_id = 3 for update")
        batch_thread = threading.Thread(
            target=store,
            args=(
                batch,
                "select * from sync.receive_many(%s, %s, %s, %s, %s)",
                [bodies, [None, None], [None, None], [None, None], [uuid.uuid4(), key]],
            ),
        )
        batch_thread.start()
        wait_for_lock_wait(admin, batch.info.backend_pid)
        drain_thread = threading.Thread(
            target=store,
            args=(drain, "select sync.receive_spooled(%s, now(), %s)", [key, spooled]),
        )
        drain_thread.start()
        drain_thread.join(timeout=10)
        drained_while_the_batch_waited = not drain_thread.is_alive()
        holder.commit()
        batch_thread.join(timeout=30)
        drain_thread.join(timeout=30)
        stored = admin.execute(
            "select count(*) from sync.inbox where spool_key = %s", [key]
        ).fetchone()
    assert drained_while_the_batch_waited
    assert not any(isinstance(e, psycopg.errors.DeadlockDetected) for e in errors)
    assert stored == (1,)


# --- parsing and the rules, set-wise ------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["name", '"', "\\", 'a"b', "  ", "x" * 151]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)
keys = st.sampled_from(["fragrance_id", "name", "description", "cost", "forbidden", "colour", ""])
objects = st.dictionaries(keys, json_values, max_size=6).map(lambda d: {"fragrance_id": 1, **d})


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Bodies the rules must judge: JSON objects, with duplicated keys, spacing, escapes, junk."""
    kind = draw(st.sampled_from(["object", "duplicate", "ascii", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=40))
    text = json.dumps(draw(objects), ensure_ascii=kind == "ascii")
    if kind == "duplicate":
        key = draw(keys)
        text = text[:-1] + f', "{key}": ' + json.dumps(draw(json_values)) + "}"
    return text.encode()


CLEAN_OR_NOT = [
    (b'{"fragrance_id": 7, "name": "Rose", "description": "Woody  ", "cost": 12}', True),
    (b'{"fragrance_id": 7, "forbidden": false}', True),
    (b'{"fragrance_id":7,"description":"Caf\\u00e9","cost":10.5}', True),
    (b'{"fragrance_id": 7, "name": "Caf\xc3\xa9 noir"}', True),
    (b'{ "fragrance_id" : 0 , "forbidden" : true }', True),
    (b'{"fragrance_id": 7}', True),
    (b'{"fragrance_id": 7, "name": "say \\"hi\\""}', False),
    (b'{"fragrance_id": 7, "cost": 1, "cost": 2}', False),
    (b'{"fragrance_id": 7, "n\\u0061me": "A", "name": "B"}', False),
    (b'{"fragrance_id": 7, "colour": "red"}', False),
    (b'{"fragrance_id": 7, "cost": -1}', False),
    (b'{"fragrance_id": 7, "name": " "}', False),
    ('{"fragrance_id": 7, "name": "\u00a0\u200b\u3000"}'.encode(), False),
    (b'{"fragrance_id": 7, "name": "\\u2800"}', False),
    ('{"fragrance_id": 7, "name": "\u200bA"}'.encode(), True),
    (b'{"fragrance_id": 7.5}', False),
    (b"[7]", False),
]


@pytest.mark.parametrize(("raw", "clean"), CLEAN_OR_NOT)
def test_ordinary_deltas_take_the_fast_path_and_nothing_doubtful_does(
    rules_conn: psycopg.Connection, raw: bytes, clean: bool
) -> None:
    proven = rules_conn.execute(
        "select sync._is_clean(convert_from(%(b)s, 'UTF8')::jsonb, convert_from(%(b)s, 'UTF8'))",
        {"b": raw},
    ).fetchone()
    rules_conn.rollback()
    assert proven == (clean,)


@pytest.fixture(scope="module")
def rules_conn(server: Server, shared_dbname: str) -> Iterator[psycopg.Connection]:
    """One connection for the property test; each example rolls back what it stored."""
    with psycopg.connect(server.url(shared_dbname)) as conn:
        yield conn


@fuzz_settings(300)
@given(st.lists(bodies(), min_size=1, max_size=8))
def test_prepare_many_judges_every_body_as_prepare_does(
    rules_conn: psycopg.Connection, batch: list[bytes]
) -> None:
    try:
        rules_conn.execute("update sync.settings set apply_on_receipt = false")
        ids = [
            rules_conn.execute("select inbox_id from sync.receive(%s)", [b]).fetchone()[0]  # type: ignore[index]
            for b in batch
        ]
        many = rules_conn.execute(
            "select d.inbox_id, d.payload, d.fragrance_id, d.reasons, d.valid"
            " from unnest(sync._prepare_many(%s)) as d",
            [ids],
        ).fetchall()
        one_by_one = rules_conn.execute(
            "select i.id, p.payload, p.fragrance_id, p.reasons, p.valid"
            " from sync.inbox as i, sync.prepare(i.body) as p where i.id = any(%s) order by i.id",
            [ids],
        ).fetchall()
        assert many == one_by_one
    finally:
        rules_conn.rollback()


# --- failures and the history trigger -----------------------------------------------------------


def test_a_merge_that_fails_quarantines_only_its_own_delivery(db: psycopg.Connection) -> None:
    db.execute("""
        create function public.refuse_boom() returns trigger language plpgsql as $$
        begin
            if new.name = 'Boom' then
                raise exception 'the library refuses Boom' using errcode = 'P0001';
            end if;
            return new;
        end $$;
        create trigger _050_refuse_boom before update on public.fragrances
            for each row execute function public.refuse_boom();
    """)
    set_apply_on_receipt(db, False)
    for delta in (
        {"fragrance_id": 1, "cost": 11},
        {"fragrance_id": 2, "name": "Boom"},
        {"fragrance_id": 3, "cost": 33},
    ):
        db.execute("select sync.receive(%s)", [json.dumps(delta).encode()])
    result = db.execute("select applied, rejected from sync.apply_pending()").fetchone()
    assert result == (2, 1)
    rows = db.execute(
        "select fragrance_id, status, reasons -> -1 ->> 'code' from sync.inbox order by id"
    ).fetchall()
    assert rows == [(1, "applied", None), (2, "rejected", "internal.error"), (3, "applied", None)]
    assert db.execute("select cost from public.fragrances where fragrance_id = 3").fetchone() == (
        33,
    )


def rowwise_calls(conn: psycopg.Connection) -> int:
    """Calls of the per-delivery path in this transaction (needs track_functions = all)."""
    row = conn.execute(
        "select coalesce(sum(calls), 0) from pg_stat_xact_user_functions"
        " where funcname = '_process_claimed_rowwise'"
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("deltas", "rowwise", "outcome"),
    [
        pytest.param(
            [{"fragrance_id": 950_000, "cost": 3}],
            0,
            [("rejected", "fragrance_id.unknown")],
            id="partial delta, no such fragrance: rejected set-wise",
        ),
        pytest.param(
            [
                {
                    "fragrance_id": 950_001,
                    "name": "New",
                    "description": "",
                    "cost": 1,
                    "forbidden": False,
                },
                {"fragrance_id": 950_001, "cost": 2},
            ],
            1,
            [("applied", None), ("applied", None)],
            id="a delta of the batch creates it: one by one",
        ),
    ],
)
def test_only_deltas_that_may_create_their_fragrance_go_one_by_one(
    db: psycopg.Connection,
    deltas: list[dict[str, Any]],
    rowwise: int,
    outcome: list[tuple[str, str | None]],
) -> None:
    set_apply_on_receipt(db, False)
    for delta in deltas:
        db.execute("select sync.receive(%s)", [json.dumps(delta).encode()])
    db.execute("set track_functions = 'all'")
    with db.transaction():
        db.execute("select sync.apply_pending()")
        calls = rowwise_calls(db)
    rows = db.execute("select status, reasons -> -1 ->> 'code' from sync.inbox order by id")
    assert (calls, rows.fetchall()) == (rowwise, outcome)


def test_a_hand_edit_after_apply_pending_in_the_same_transaction_is_in_the_history(
    db: psycopg.Connection,
) -> None:
    set_apply_on_receipt(db, False)
    db.execute("select sync.receive(%s)", [json.dumps({"fragrance_id": 5, "cost": 55}).encode()])
    with db.transaction():
        db.execute("select sync.apply_pending()")
        db.execute("update public.fragrances set name = 'Hand' where fragrance_id = 5")
    history = db.execute(
        "select inbox_id is null, new_values from sync.fragrance_history"
        " where fragrance_id = 5 order by id"
    ).fetchall()
    assert history == [(False, {"cost": 55}), (True, {"name": "Hand"})]
    clock = db.execute(
        "select name_inbox_id > 0, cost_inbox_id > 0 from sync.field_version where fragrance_id = 5"
    ).fetchone()
    assert clock == (True, True)


# --- plans --------------------------------------------------------------------------------------


def test_the_batch_statements_reach_rows_by_key_even_when_planned_on_empty_tables(
    db: psycopg.Connection,
) -> None:
    """Their plans are kept for the session: one made on a tiny inbox must not seq-scan it."""
    db.execute("load 'auto_explain'")
    for setting, value in {
        "log_min_duration": "0",
        "log_nested_statements": "on",
        "log_level": "notice",
    }.items():
        db.execute(f"set auto_explain.{setting} = {value}")
    plans: list[str] = []
    db.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    bodies = [json.dumps({"fragrance_id": n, "cost": n}).encode() for n in range(1, 6)]
    for _ in range(3):  # the generic plan is made and then used
        db.execute(
            "select * from sync.receive_many(%s, %s, %s, %s, %s)",
            [bodies, [None] * 5, [None] * 5, [None] * 5, [uuid.uuid4() for _ in bodies]],
        )
    explained = "\n".join(plans)
    assert "with delivery as" in explained and "from sync.inbox as i" in explained
    for table in ("inbox", "fragrances", "field_version"):
        assert f"Seq Scan on {table}" not in explained
    assert "JIT:" not in explained
