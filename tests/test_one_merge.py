"""The one merge: whatever a batch holds, the outcome of one delivery at a time.

Every entry point (the hook's batches, a lone receive, apply_pending, retries,
reverts, repairs, the spool's drain) goes through one set-wise merge,
``sync_private.settle``. These tests hold it to a simple, independent oracle
written here in Python: deliveries taken one by one in receipt order, each
field written only by a delivery newer than its last writer. The oracle judges
nothing itself: it takes each body's verdict from ``sync.prepare``, the
one-body path of the rules, which a property test below holds equal to the
batch judge.
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import psycopg
import pytest
from conftest import Server
from helpers import (
    as_replica,
    explained_plans,
    fuzz_settings,
    most_rows_discarded,
    receive_many,
    set_apply_on_receipt,
    table_activity,
    wait_for_lock_wait,
)
from hypothesis import given
from hypothesis import strategies as st
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

FIELDS = ("name", "description", "cost", "forbidden")

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
        "name": lambda: rng.choice(
            ["Rose", "Oud", "Vetiver", "Café noir", 'Say "hi"', "Bell\u0007"]
        ),
        "description": lambda: rng.choice(["Woody  ", "Fresh", "", "Línea \\ dos"]),
        "cost": lambda: rng.choice([0, 5, 10, 10.0, 10.5, 99, 1e2, 0.125]),
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


def process(conn: psycopg.Connection, status: str, limit: int) -> list[int]:
    """Claim deliveries of one status in receipt order, as apply_pending does, and process them.

    Pending ones batch after batch until none is left; rejected ones (a retry) in one pass.
    Returns the summed counts: processed, applied, ignored, rejected, pending.
    """
    totals = [0, 0, 0, 0, 0]
    while True:
        row = conn.execute(
            "select processed, applied, ignored, rejected, pending from"
            " sync_private.process_claimed(array(select id from sync.inbox where status = %s"
            " order by id limit %s for update))",
            [status, limit],
        ).fetchone()
        assert row is not None
        totals = [t + n for t, n in zip(totals, row, strict=True)]
        if row[0] == 0 or status != "pending":
            return totals


def connect(server: Server, dbname: str) -> psycopg.Connection:
    """An autocommit connection that reads JSON numbers exactly, as PostgreSQL keeps them."""
    conn = psycopg.connect(server.url(dbname), autocommit=True)
    set_json_loads(partial(json.loads, parse_float=Decimal), conn)
    return conn


# --- the oracle ---------------------------------------------------------------------------------


def reason(code: str, field_name: str | None, message: str, severity: str) -> dict[str, Any]:
    return {"code": code, "severity": severity, "field": field_name, "message": message}


@dataclass
class World:
    """What the merge reads and writes, as plain Python."""

    fragrances: dict[int, dict[str, Any]]
    clock: dict[int, dict[str, int]]
    history: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, conn: psycopg.Connection) -> World:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("select * from public.fragrances").fetchall()
            clocks = cur.execute("select fragrance_id, versions from sync.field_version").fetchall()
        return cls(
            {r["fragrance_id"]: r for r in rows},
            {c["fragrance_id"]: dict(c["versions"]) for c in clocks},
        )

    def process(self, inbox_id: int, judged: dict[str, Any]) -> str:
        """One delivery, alone, as the README's rules say; returns its status."""
        payload, reasons = judged["payload"], list(judged["reasons"])
        outcome = {
            "payload": payload,
            "fragrance_id": judged["fragrance_id"],
            "reasons": reasons,
            "applied_fields": [],
            "stale_fields": [],
        }
        self.outcomes[inbox_id] = outcome
        carried = [f for f in FIELDS if judged["valid"] and f in payload]
        if not judged["valid"]:
            outcome["status"] = "rejected"
        elif not carried:
            outcome["status"] = "ignored"
            reasons.append(
                reason("delta.empty", None, "the change carries no field to apply", "info")
            )
        elif payload["fragrance_id"] not in self.fragrances:
            fid = judged["fragrance_id"]
            if len(carried) < len(FIELDS):
                missing = ", ".join(f for f in FIELDS if f not in payload)
                outcome["status"] = "rejected"
                reasons.append(
                    reason(
                        "fragrance_id.unknown",
                        "fragrance_id",
                        f"fragrance {fid} does not exist; a change creates one only when it carries"
                        f" all {len(FIELDS)} fields (missing: {missing})",
                        "error",
                    )
                )
            else:
                row = {"fragrance_id": fid, **{f: payload[f] for f in FIELDS}}
                self.fragrances[fid] = row
                self.clock[fid] = {f: inbox_id for f in FIELDS}
                self.history.append(
                    {
                        "fragrance_id": fid,
                        "operation": "insert",
                        "old_values": None,
                        "new_values": dict(row),
                        "inbox_id": inbox_id,
                    }
                )
                outcome["status"], outcome["applied_fields"] = "applied", list(FIELDS)
        else:
            fid = judged["fragrance_id"]
            row, clock = self.fragrances[fid], self.clock.setdefault(fid, {})
            written = [f for f in carried if inbox_id > clock.get(f, 0)]
            stale = [f for f in carried if f not in written]
            changed = [f for f in written if payload[f] != row[f]]
            if changed:
                self.history.append(
                    {
                        "fragrance_id": fid,
                        "operation": "update",
                        "old_values": {f: row[f] for f in changed},
                        "new_values": {f: payload[f] for f in changed},
                        "inbox_id": inbox_id,
                    }
                )
            for f in written:
                row[f], clock[f] = payload[f], inbox_id
            outcome["status"] = "applied" if written else "ignored"
            outcome["applied_fields"], outcome["stale_fields"] = written, stale
            if stale:
                reasons.append(
                    reason(
                        "delta.stale",
                        None,
                        f"{', '.join(stale)} already set by a later delivery, so left as it is",
                        "info",
                    )
                )
        return outcome["status"]


def judged(conn: psycopg.Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each body's verdict, from the one-body rules (sync.prepare)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "select i.id, p.* from sync.inbox as i, sync.prepare(i.body) as p where i.id = any(%s)",
            [ids],
        ).fetchall()
    return {r["id"]: r for r in rows}


def expect(world: World, conn: psycopg.Connection, ids: list[int]) -> list[int]:
    """Run the oracle over these deliveries, in receipt order; return its counts."""
    verdicts = judged(conn, ids)
    statuses = [world.process(i, verdicts[i]) for i in sorted(ids)]
    return [len(ids), *(statuses.count(s) for s in ("applied", "ignored", "rejected", "pending"))]


def assert_matches(conn: psycopg.Connection, world: World, since_history: int = 0) -> None:
    """The database holds what the oracle says: fragrances, clock, outcomes and history."""
    actual = World.read(conn)
    assert actual.fragrances == world.fragrances
    assert {k: v for k, v in actual.clock.items() if v} == {
        k: v for k, v in world.clock.items() if v
    }
    with conn.cursor(row_factory=dict_row) as cur:
        outcomes = cur.execute(
            "select id, status, reasons, applied_fields, stale_fields, payload, fragrance_id"
            " from sync.inbox where id = any(%s)",
            [list(world.outcomes)],
        ).fetchall()
        # Each fragrance's history in order; across fragrances the order is the batch's.
        history = cur.execute(
            "select fragrance_id, operation, old_values, new_values, inbox_id"
            " from sync.fragrance_history where id > %s order by fragrance_id, id",
            [since_history],
        ).fetchall()
    assert {o.pop("id"): o for o in outcomes} == world.outcomes
    assert history == sorted(world.history, key=lambda h: h["fragrance_id"])


def last_history_id(conn: psycopg.Connection) -> int:
    return conn.execute("select coalesce(max(id), 0) from sync.fragrance_history").fetchone()[0]  # type: ignore[index]


def staged_ids(conn: psycopg.Connection, status: str) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "select id from sync.inbox where status = %s order by id", [status]
        ).fetchall()
    ]


@pytest.mark.parametrize("batch", [1, 7, 100, 1000])
def test_a_backlog_applied_in_batches_ends_as_one_by_one(
    server: Server, dbname: str, batch: int
) -> None:
    with connect(server, dbname) as conn:
        stage(conn, random_backlog(seed=batch, count=400))
        world = World.read(conn)
        expected = expect(world, conn, staged_ids(conn, "pending"))
        assert process(conn, "pending", batch) == expected
        assert {"applied", "ignored", "rejected"} <= {o["status"] for o in world.outcomes.values()}
        assert_matches(conn, world)


def test_hand_edits_later_deliveries_and_retries_end_as_one_by_one(
    server: Server, dbname: str
) -> None:
    with connect(server, dbname) as conn:
        stage(conn, random_backlog(seed=42, count=300))
        world = World.read(conn)
        expect(world, conn, staged_ids(conn, "pending"))
        process(conn, "pending", 50)
        assert_matches(conn, world)

        conn.execute("update public.fragrances set name = 'By hand' where fragrance_id in (1, 2)")
        conn.execute("update public.fragrances set cost = cost + 1 where fragrance_id = 3")
        stage(conn, random_backlog(seed=99, count=150))
        since = last_history_id(conn)
        world = World.read(conn)  # the hand edits moved the clock: read it back
        expect(world, conn, staged_ids(conn, "pending"))
        process(conn, "pending", 50)
        assert_matches(conn, world, since)

        # Partial deltas for fragrances created since, retried: some fields are stale by now.
        since = last_history_id(conn)
        world = World.read(conn)
        expected = expect(world, conn, staged_ids(conn, "rejected"))
        assert process(conn, "rejected", 1000) == expected
        assert_matches(conn, world, since)


def test_one_delivery_retried_alone_ends_as_one_by_one(server: Server, dbname: str) -> None:
    staged = [
        {"fragrance_id": 900_001, "name": "Too early", "cost": 3},
        {"fragrance_id": 900_001, "name": "Born", "description": "", "cost": 1, "forbidden": True},
        {"fragrance_id": 900_001, "name": "Renamed"},
        {"fragrance_id": 1, "cost": 3},
        {"fragrance_id": 1},
    ]
    with connect(server, dbname) as conn:
        stage(conn, [json.dumps(d).encode() for d in staged])
        process(conn, "pending", 10)
        first = min(staged_ids(conn, "rejected"))
        conn.execute("select sync_private.process_claimed(array[%s::bigint])", [first])
        row = conn.execute(
            "select status, stale_fields, attempts from sync.inbox where id = %s", [first]
        ).fetchone()
    assert row == ("ignored", ["name", "cost"], 2)


@pytest.mark.parametrize("chunk", [1, 8, 50])
def test_batches_stored_by_receive_many_end_as_one_by_one(
    server: Server, dbname: str, chunk: int
) -> None:
    deliveries = random_backlog(seed=7, count=300)
    with connect(server, dbname) as conn:
        world = World.read(conn)
        for start in range(0, len(deliveries), chunk):
            receive_many(conn, deliveries[start : start + chunk])
        expect(world, conn, [r[0] for r in conn.execute("select id from sync.inbox").fetchall()])
        assert_matches(conn, world)


def test_a_lone_receive_ends_as_one_by_one(server: Server, dbname: str) -> None:
    deliveries = random_backlog(seed=11, count=150)
    with connect(server, dbname) as conn:
        world = World.read(conn)
        for raw in deliveries:
            conn.execute("select sync.receive(%s)", [raw])
        expect(world, conn, [r[0] for r in conn.execute("select id from sync.inbox").fetchall()])
        assert_matches(conn, world)


@pytest.mark.parametrize(
    ("deltas", "outcome"),
    [
        pytest.param(
            [{"fragrance_id": 950_000, "cost": 3}],
            [("rejected", "fragrance_id.unknown")],
            id="a partial delta for no such fragrance is refused",
        ),
        pytest.param(
            [
                {"fragrance_id": 950_001, "cost": 2},
                {
                    "fragrance_id": 950_001,
                    "name": "New",
                    "description": "",
                    "cost": 1,
                    "forbidden": False,
                },
                {"fragrance_id": 950_001, "cost": 3},
                {
                    "fragrance_id": 950_001,
                    "name": "Newer",
                    "description": "",
                    "cost": 4,
                    "forbidden": True,
                },
            ],
            [
                ("rejected", "fragrance_id.unknown"),
                ("applied", None),
                ("applied", None),
                ("applied", None),
            ],
            id="in one batch: refused before its creation, merged after it",
        ),
    ],
)
def test_a_batch_creates_a_fragrance_from_its_first_complete_delta(
    db: psycopg.Connection, deltas: list[dict[str, Any]], outcome: list[tuple[str, str | None]]
) -> None:
    set_apply_on_receipt(db, False)
    for delta in deltas:
        db.execute("select sync.receive(%s)", [json.dumps(delta).encode()])
    db.execute("select sync.apply_pending()")
    rows = db.execute("select status, reasons -> -1 ->> 'code' from sync.inbox order by id")
    assert rows.fetchall() == outcome


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
            creator.execute("select sync_private.process_claimed(%s)", [ids[:2]])
            second = threading.Thread(
                target=lambda: waiter.execute("select sync_private.process_claimed(%s)", [ids[2:]])
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


#: Ordinary deltas (the judge finds their field rules in its own statement, even when
#: they break one) and the bodies that need the full rules (the structure is in doubt).
PLAIN_OR_NOT = [
    (b'{"fragrance_id": 7, "name": "Rose", "description": "Woody", "cost": 12}', True),
    (b'{"fragrance_id": 7, "name": "Rose", "description": "Woody  ", "cost": 12}', True),
    (b'{"fragrance_id": 7, "name": " Rose"}', True),
    (b'{"fragrance_id": 7, "forbidden": false}', True),
    (b'{"fragrance_id":7,"description":"Caf\\u00e9","cost":10}', True),
    (b'{"fragrance_id": 7, "cost": 12.0}', True),
    (b'{"fragrance_id": 7, "cost": 10.5}', True),
    (b'{"fragrance_id": 7, "cost": -1}', True),
    (b'{"fragrance_id": 7, "cost": 1e308}', True),
    (b'{"fragrance_id": 7, "cost": 1e-400}', True),
    (b'{"fragrance_id": 7, "name": "\\u0301"}', True),
    (b'{"fragrance_id": 7, "name": "Rose\\u0007"}', True),
    (b'{"fragrance_id": 7, "name": "Rose\\u202e"}', True),
    ('{"fragrance_id": 7, "name": "\u00a0\u200b\u3000"}'.encode(), True),
    ('{"fragrance_id": 7, "name": "Rose\u200b", "description": "Ro\u00adse"}'.encode(), True),
    (b'{"fragrance_id": 7, "name": "Caf\xc3\xa9 noir"}', True),
    (b'{ "fragrance_id" : 0 , "forbidden" : true }', True),
    (b'{"fragrance_id": 7}', True),
    (b'{"fragrance_id": 7, "name": "say \\"hi\\""}', False),
    (b'{"fragrance_id": 7, "cost": 1, "cost": 2}', False),
    (b'{"fragrance_id": 7, "n\\u0061me": "A", "name": "B"}', False),
    (b'{"fragrance_id": 7, "colour": "red"}', False),
    (b'{"fragrance_id": 7, "name": null}', False),
    (b'{"fragrance_id": 7, "cost": "12"}', False),
    (b'{"fragrance_id": 7, "forbidden": "yes"}', False),
    (b'{"fragrance_id": 7.5}', False),
    (b'{"fragrance_id": -1}', False),
    (b'{"fragrance_id": "7"}', False),
    (b'{"name": "Rose"}', False),
    (b"[7]", False),
]


@pytest.mark.parametrize(("raw", "plain"), PLAIN_OR_NOT)
def test_ordinary_deltas_take_the_fast_path_and_nothing_doubtful_does(
    rules_conn: psycopg.Connection, raw: bytes, plain: bool
) -> None:
    proven = rules_conn.execute(
        "select sync_private.is_plain(convert_from(%(b)s, 'UTF8')::jsonb,"
        " convert_from(%(b)s, 'UTF8'))",
        {"b": raw},
    ).fetchone()
    rules_conn.rollback()
    assert proven == (plain,)


@pytest.fixture(scope="module")
def rules_conn(server: Server, shared_dbname: str) -> Iterator[psycopg.Connection]:
    """One connection for the property test; each example rolls back what it stored."""
    with psycopg.connect(server.url(shared_dbname)) as conn:
        yield conn


@fuzz_settings(300)
@given(st.lists(bodies(), min_size=1, max_size=8))
def test_the_batch_judge_judges_every_body_as_the_one_body_rules_do(
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
            " from unnest(sync_private.judge("
            "(select array_agg(id order by id) from sync.inbox where id = any(%(ids)s)),"
            " (select array_agg(body order by id) from sync.inbox where id = any(%(ids)s)),"
            " (sync_private.current_rules()).rules)) as d",
            {"ids": ids},
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

#: A trigger of the library's that refuses to name a fragrance Boom: a delivery that fails.
REFUSE_BOOM = """
    create function public.refuse_boom() returns trigger language plpgsql as $$
    begin
        if new.name = 'Boom' then
            raise exception 'the library refuses Boom' using errcode = 'P0001';
        end if;
        return new;
    end $$;
    create trigger _050_refuse_boom before update on public.fragrances
        for each row execute function public.refuse_boom();
"""


def test_a_merge_that_fails_quarantines_only_its_own_delivery(db: psycopg.Connection) -> None:
    db.execute(REFUSE_BOOM)
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


def test_each_failing_delivery_of_a_big_batch_is_quarantined_alone_and_the_rest_in_order(
    db: psycopg.Connection,
) -> None:
    """The batch is halved until the failing delivery is alone: the others all apply."""
    db.execute(REFUSE_BOOM)
    set_apply_on_receipt(db, False)
    deltas = [
        {"fragrance_id": n % 5, "name": "Boom"}
        if n in (3, 15)
        else {"fragrance_id": n % 5, "cost": n}
        for n in range(20)
    ]
    for delta in deltas:
        db.execute("select sync.receive(%s)", [json.dumps(delta).encode()])
    assert db.execute("select applied, rejected from sync.apply_pending()").fetchone() == (18, 2)
    refused = db.execute(
        'select payload from sync.inbox where reasons @> \'[{"code": "internal.error"}]\''
        " order by id"
    ).fetchall()
    assert [r[0] for r in refused] == [deltas[3], deltas[15]]
    costs = db.execute(
        "select fragrance_id, cost from public.fragrances where fragrance_id < 5 order by 1"
    ).fetchall()
    assert costs == [(0, 10), (1, 16), (2, 17), (3, 18), (4, 19)]


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
        "select versions ?& '{name,cost}' from sync.field_version where fragrance_id = 5"
    ).fetchone()
    assert clock == (True,)


# --- plans --------------------------------------------------------------------------------------


def test_the_batch_statements_reach_rows_by_key_even_when_planned_on_empty_tables(
    db: psycopg.Connection,
) -> None:
    """Their plans are kept for the session: one made on a tiny inbox must not seq-scan it."""
    plans = explained_plans(db)
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


STORE_MANY = (
    "select * from sync.store_many(%s::bytea[], %s::text[], %s::text[], %s::text[], %s::uuid[])"
)


def through_the_hook(conn: psycopg.Connection, bodies: list[bytes]) -> None:
    """The hook's two calls: store and answer, then merge what was stored."""
    n = len(bodies)
    keys = [uuid.uuid4() for _ in range(n)]
    conn.execute(STORE_MANY, [bodies, ["application/json"] * n, [None] * n, [None] * n, keys])
    conn.execute("select * from sync.apply_received(1000)")


def through_apply_pending(conn: psycopg.Connection, bodies: list[bytes]) -> None:
    """Stored pending, merged later by the sweep a DBA or pg_cron runs."""
    set_apply_on_receipt(conn, False)
    receive_many(conn, bodies)
    conn.execute("select * from sync.apply_pending(1000)")
    set_apply_on_receipt(conn, True)


def through_retry_all(conn: psycopg.Connection, bodies: list[bytes]) -> None:
    """Refused on receipt (a negative cost), then retried by a DBA with the rules unchanged."""
    refused = [json.dumps({**json.loads(b), "cost": -1}).encode() for b in bodies]
    receive_many(conn, refused)
    conn.execute("select * from sync.retry_all()")


PLANTED = {
    "inbox": "insert into sync.inbox (body, status, processed_at)"
    " select '\\x7b7d', 'applied', now() from generate_series(1, 5000)",
    "fragrance_history": "insert into sync.fragrance_history (fragrance_id, operation, new_values)"
    " select 1 + g % 4000, 'update', '{}' from generate_series(1, 5000) as g",
    "field_version": "insert into sync.field_version (fragrance_id, versions)"
    " select f.fragrance_id, '{}' from public.fragrances as f on conflict do nothing",
    "finding": "insert into sync.finding (rule, fragrance_id, field, value, message, severity,"
    " rules_version) select r.code, g, r.field, '\"x \"', 'planted', 'warning',"
    " (select max(version) from sync.rule_version) from generate_series(1, 3999) as g"
    " cross join (values ('description.untrimmed', 'description'), ('name.duplicate', 'name'),"
    " ('cost.fractional', 'cost')) as r (code, field)"
    " on conflict do nothing",
}


#: Every entry point of the merge that plans its statements in the caller's session.
MERGE_PATHS = [through_the_hook, receive_many, through_apply_pending, through_retry_all]


def empty_tables(db: psycopg.Connection, *tables: str) -> None:
    """Empty tables of the sync as a new install has them.

    As a replica's apply: the history and the findings refuse a DELETE
    typed by hand (FS094), which is what this stands for.
    """
    with as_replica(db):
        for table in tables:
            db.execute(f"delete from sync.{table}")


@pytest.mark.parametrize("young", [0, 150], ids=["empty", "young"])
@pytest.mark.parametrize("path", MERGE_PATHS, ids=lambda p: p.__name__)
def test_every_table_is_read_by_key_when_the_plans_were_made_on_a_new_install(
    db: psycopg.Connection, path: Any, young: int
) -> None:
    """Plans are kept for the session: made on a new install, they must not read tables whole later.

    Each table the merge touches grows without bound (the inbox, the history,
    the clock, the findings) or is large (the 5,000 fragrances); a batch of 5
    must read a few of their rows (a few hundred at most, by key, dead
    versions included), not the 5,000 to 12,000 each holds here. Plans are
    made again at each analyze: empty tables and young ones (150
    deliveries) lead the planner to different plans. Planned young, the
    outcome update hashed the whole inbox at every call (10,166 rows read to
    record 2 outcomes, measured).
    """
    empty_tables(db, "finding", "field_version", "fragrance_history", "inbox")
    deltas = [
        {"fragrance_id": n, "name": f"Twin {n % 2}", "description": f"padded {n}  ", "cost": 1.5}
        for n in range(4990, 4995)
    ]
    bodies = [json.dumps(d).encode() for d in deltas]
    for _ in range(young // len(bodies)):
        path(db, bodies)
    db.execute("analyze")
    for _ in range(7):  # the plans are made now, past the five custom ones before a generic one
        path(db, bodies)
    for statement in PLANTED.values():
        db.execute(statement)
    activity = table_activity(db, lambda: path(db, bodies))
    reads = {table: counts["read"] for table, counts in activity.items()}
    assert {t: n for t in [*PLANTED, "fragrances"] if (n := reads.get(t, 0)) >= 1000} == {}


@pytest.mark.parametrize("deliveries", [1, 16])
@pytest.mark.parametrize("path", MERGE_PATHS, ids=lambda p: p.__name__)
def test_a_merge_call_planned_on_a_young_inbox_bounds_every_index_scan_by_its_leading_column(
    db: psycopg.Connection, path: Any, deliveries: int
) -> None:
    """The hook's session plans its merge at its first call, often on a new install's inbox.

    A B-tree scan with no bound on its index's leading column reads the
    whole index. Planned so, the outcome update reached each claimed inbox
    row through ``inbox_fragrance_idx`` (fragrance_id, id), by id alone: a
    walk of every entry of the inbox per delivery, at every call of the
    session until an analyze, growing with the inbox (5 ms of a merge of 16
    on average over 48,000 deliveries, bench/README.md, step 44; apply_pending
    and retry_all too). Each index scan of such a call must bound its index's
    leading column.
    """
    db.execute("delete from sync.inbox")
    db.execute("vacuum analyze sync.inbox")  # a new install's: no row, the statistics say so
    bodies = [
        json.dumps({"fragrance_id": 100 + n, "cost": 2 + n}).encode() for n in range(deliveries)
    ]
    for _ in range(7):  # the plans are made now, past the five custom ones before a generic one
        path(db, bodies)
    leading = dict(
        db.execute(
            "select c.relname, a.attname from pg_index as i"
            " join pg_class as c on c.oid = i.indexrelid"
            " join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]"
            " where i.indkey[0] <> 0"
        ).fetchall()
    )
    plans = explained_plans(db)
    path(db, bodies)
    unbounded = []
    scan = None
    for line in "\n".join(plans).splitlines():
        found = re.search(r"Index (?:Only )?Scan(?: Backward)? using (\w+) on", line)
        if found:
            scan = found.group(1)
        elif "->" in line or "Query Text:" in line:
            scan = None  # another node: the scan before had no condition (an ordered read)
        elif scan and "Index Cond:" in line:
            if scan in leading and not re.search(rf"\b{leading[scan]}\b", line):
                unbounded.append(f"{scan}: {line.strip()}")
            scan = None
    assert plans, "auto_explain reported no plan"
    assert unbounded == []


def test_the_merge_rewrites_the_clock_and_open_findings_on_their_own_pages(
    db: psycopg.Connection,
) -> None:
    """Nearly every change rewrites its fragrance's clock entry and open finding: in place.

    An update that finds room on its row's page adds no index entry (a HOT
    update); on a full page it writes the new version elsewhere, with an
    entry in every index. The two tables keep room in their pages for it.
    """
    empty_tables(db, "finding", "field_version")
    # Pages filled by a bulk insert, as an adopted catalog's findings fill them.
    db.execute(PLANTED["field_version"])
    db.execute(PLANTED["finding"])
    bodies = [
        json.dumps({"fragrance_id": n, "description": f"still padded {n}  "}).encode()
        for n in range(10, 4000, 80)
    ]
    activity = table_activity(db, lambda: through_apply_pending(db, bodies))
    updates = {
        table: (activity[table]["updated"], activity[table]["hot"])
        for table in ("field_version", "finding")
    }
    assert updates == {"field_version": (50, 50), "finding": (50, 50)}


def test_creating_many_fragrances_in_one_batch_compares_no_pairs(db: psycopg.Connection) -> None:
    """A batch of creations (an import, a repair) costs in proportion to its size.

    Planned on the estimates of arrays, the creators were matched to each
    created row and to each delivery in turn: 2,000 creations took 4 s.
    """
    set_apply_on_receipt(db, False)
    creations = 300
    receive_many(
        db,
        [
            json.dumps(
                {
                    "fragrance_id": 900_000 + n,
                    "name": f"New {n}",
                    "description": "d",
                    "cost": 5,
                    "forbidden": False,
                }
            ).encode()
            for n in range(creations)
        ],
    )
    plans = explained_plans(db, analyze=True)
    assert db.execute("select applied from sync.apply_pending(1000)").fetchone() == (creations,)
    assert most_rows_discarded(plans) < 5 * creations
