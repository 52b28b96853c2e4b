"""The CMS simulator behaves as the contract says the real CMS does, and its extras work.

Most tests run the app in-process (its lifespan, its routes over ASGI) and
drive ticks by hand with ``Simulator.tick``; deliveries go over real HTTP to
a small receiver that also reads the CMS database the moment each one
arrives. A few tests run ``python -m cms_simulator`` as the deploy does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import ROOT, Server, _clone
from psycopg.rows import dict_row

from cms_simulator.app import Listener, create_app
from cms_simulator.changes import DESCRIPTION_SUFFIX, NAME_SUFFIX
from cms_simulator.journal import apply_changes, body_bytes, committed_changes
from cms_simulator.journal import read as journal
from cms_simulator.settings import CHAOS_KINDS, Settings, SettingsError
from cms_simulator.simulator import Simulator

pytestmark = pytest.mark.anyio

Row = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The CMS's database (fixtures cms_template and cms_url in conftest).


def rows(url: str) -> dict[int, Row]:
    """Every fragrance of a database, by id."""
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return {r["fragrance_id"]: r for r in cur.execute("select * from public.fragrances")}


def keep_only(url: str, fragrance_id: int, **values: Any) -> None:
    """Reduce the CMS to one fragrance, with some columns set by hand."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("delete from public.fragrances where fragrance_id <> %s", [fragrance_id])
        for column, value in values.items():
            conn.execute(
                f"update public.fragrances set {column} = %s where fragrance_id = %s",
                [value, fragrance_id],
            )


# A listener that records what arrives and what the CMS database held then.


@dataclass
class Received:
    """One delivery as the listener saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    cms_row: Row | None


@dataclass
class Receiver:
    """A local HTTP listener in a thread; answers every POST with ``status``."""

    cms_url: str | None = None
    status: int = 202
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body, receiver.cms_row(body)))
                self.send_response(receiver.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        serve = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        serve.start()

    def cms_row(self, body: bytes) -> Row | None:
        """The CMS's row for the delivery's fragrance, read as it arrives."""
        try:
            fragrance_id = json.loads(body)["fragrance_id"]
        except (ValueError, TypeError, KeyError):
            return None
        if self.cms_url is None or not isinstance(fragrance_id, int):
            return None
        with psycopg.connect(self.cms_url) as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "select * from public.fragrances where fragrance_id = %s", [fragrance_id]
            ).fetchone()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(cms_url: str) -> Iterator[Receiver]:
    running = Receiver(cms_url)
    yield running
    running.close()


def _free_port() -> int:
    """A TCP port nobody listens on right now (tests/processes.py has one on main)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listener_for(port: int, endpoint: str = "/notifications") -> dict[str, Any]:
    return {"host": "http://127.0.0.1", "port": port, "endpoint": endpoint}


# The simulator in-process.


def settings_for(url: str, **overrides: Any) -> Settings:
    """Test settings: no waiting, a fixed seed, and only the first change unless told."""
    base = Settings(database_url=url, interval_min=0, interval_max=0, count=1, seed=7)
    return replace(base, **overrides)


@asynccontextmanager
async def cms(settings: Settings) -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    """Start the app's lifespan and talk to its routes over ASGI."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://cms") as client,
    ):
        yield app.state.simulator, client


def fold(catalog: dict[int, Row], entries: list[Row]) -> dict[int, Row]:
    """The catalog with every committed change of a journal applied, in order."""
    return apply_changes(catalog, committed_changes(entries))


# Endpoints and the listener.


async def test_healthcheck_root_and_docs_answer(cms_url: str) -> None:
    async with cms(settings_for(cms_url)) as (_, client):
        assert (await client.get("/healthcheck")).json() == {"status": "ok"}
        root = (await client.get("/")).json()
        assert root["status"] == "ok"
        assert (await client.get("/docs")).status_code == 200
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert set(paths) == {"/healthcheck", "/", "/listener"}
        assert set(paths["/listener"]) == {"post", "delete"}


@pytest.mark.parametrize(
    ("listener", "url"),
    [
        (
            {"host": "http://fragrance_sync", "port": 9098, "endpoint": "/notifications"},
            "http://fragrance_sync:9098/notifications",
        ),
        ({"host": "http://h/", "port": "0080", "endpoint": "x"}, "http://h/:0080x"),
        ({"host": "", "port": 1, "endpoint": ""}, ":1"),
    ],
)
def test_the_listener_url_is_plain_concatenation(listener: dict[str, Any], url: str) -> None:
    assert Listener(**listener).url() == url


async def test_changes_are_posted_to_host_port_and_endpoint(
    cms_url: str, receiver: Receiver
) -> None:
    async with cms(settings_for(cms_url)) as (simulator, client):
        answer = await client.post("/listener", json=listener_for(receiver.port, "/hooks/cms"))
        assert answer.json() == {"listener": f"http://127.0.0.1:{receiver.port}/hooks/cms"}
        await simulator.tick()
    [delivery] = receiver.received
    assert delivery.path == "/hooks/cms"
    assert delivery.headers["content-type"] == "application/json"


async def test_a_new_listener_replaces_the_old_one(cms_url: str, receiver: Receiver) -> None:
    other = Receiver(cms_url)
    try:
        async with cms(settings_for(cms_url)) as (simulator, client):
            await client.post("/listener", json=listener_for(receiver.port))
            await simulator.tick()
            await client.post("/listener", json=listener_for(other.port))
            await simulator.tick()
            await simulator.tick()
    finally:
        other.close()
    assert (len(receiver.received), len(other.received)) == (1, 2)


async def test_after_delete_nobody_receives(
    cms_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    settings = settings_for(cms_url, journal=str(tmp_path / "j.jsonl"))
    async with cms(settings) as (simulator, client):
        await client.post("/listener", json=listener_for(receiver.port))
        assert (await client.delete("/listener")).json() == {"listener": None}
        await simulator.tick()
        assert (await client.get("/")).json()["simulator"]["listener"] is None
    assert receiver.received == []
    assert [e["outcome"] for e in journal(tmp_path / "j.jsonl")] == ["no_listener"] * 2


async def test_the_listener_is_forgotten_on_restart(cms_url: str, receiver: Receiver) -> None:
    async with cms(settings_for(cms_url)) as (_, client):
        await client.post("/listener", json=listener_for(receiver.port))
    async with cms(settings_for(cms_url)) as (simulator, client):
        await simulator.tick()
        assert (await client.get("/")).json()["simulator"]["listener"] is None
    assert receiver.received == []


# Ticks: what changes, when it is committed, what is sent.


async def test_the_first_change_is_committed_at_start_and_never_delivered(
    cms_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    before = rows(cms_url)
    settings = settings_for(cms_url, journal=str(tmp_path / "j.jsonl"))
    async with cms(settings) as (simulator, client):
        [first] = journal(tmp_path / "j.jsonl")
        changed = {i for i, r in rows(cms_url).items() if r != before[i]}
        await client.post("/listener", json=listener_for(receiver.port))
        await simulator.tick()
    assert (first["tick"], first["outcome"], first["committed"]) == (1, "no_listener", True)
    assert changed == {first["fragrance_id"]}
    assert [e["tick"] for e in journal(tmp_path / "j.jsonl")] == [1, 2]
    assert len(receiver.received) == 1


async def test_each_change_is_in_the_cms_database_when_it_arrives(
    cms_url: str, receiver: Receiver
) -> None:
    async with cms(settings_for(cms_url)) as (simulator, client):
        await client.post("/listener", json=listener_for(receiver.port))
        for _ in range(10):
            await simulator.tick()
    assert len(receiver.received) == 10
    for delivery in receiver.received:
        delta = json.loads(delivery.body)
        assert delivery.cms_row is not None
        assert {k: delivery.cms_row[k] for k in delta} == delta


@dataclass(frozen=True)
class Run:
    """A seeded run of 41 changes through the tick loop: the catalog before and the journal."""

    catalog: dict[int, Row]
    entries: list[Row]
    received: list[Received]
    status: dict[str, Any]
    after: dict[int, Row]

    def deltas_with_rows_before(self) -> list[tuple[Row, dict[str, Any]]]:
        state = {i: dict(r) for i, r in self.catalog.items()}
        pairs = []
        for entry in self.entries:
            delta = json.loads(entry["body"])
            pairs.append((dict(state[delta["fragrance_id"]]), delta))
            state[delta["fragrance_id"]].update(delta)
        return pairs


async def _seeded_run(url: str, journal_path: Path, count: int, **overrides: Any) -> Run:
    catalog = rows(url)
    receiver = Receiver(url)
    settings = settings_for(
        url, count=count, wait_for_listener=True, journal=str(journal_path), **overrides
    )
    try:
        async with cms(settings) as (simulator, client):
            await client.post("/listener", json=listener_for(receiver.port))
            await simulator.finished()
            status = (await client.get("/")).json()["simulator"]
    finally:
        receiver.close()
    return Run(catalog, journal(journal_path), receiver.received, status, rows(url))


@pytest.fixture(scope="module")
def seeded_run(
    server: Server, cms_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """One run of the tick loop shared by the delta-shape tests (they only read it)."""
    server.create_database("cms_seeded_run", cms_template)
    try:
        path = tmp_path_factory.mktemp("seeded") / "journal.jsonl"
        yield asyncio.run(_seeded_run(server.url("cms_seeded_run"), path, count=41))
    finally:
        server.drop_database("cms_seeded_run")


def test_count_stops_the_tick_loop(seeded_run: Run) -> None:
    assert [e["tick"] for e in seeded_run.entries] == list(range(1, 42))
    assert (seeded_run.status["ticks"], seeded_run.status["ticking"]) == (41, False)
    assert len(seeded_run.received) == 40


def test_the_cms_database_holds_the_catalog_plus_every_change(seeded_run: Run) -> None:
    assert seeded_run.after == fold(seeded_run.catalog, seeded_run.entries)


def test_forbidden_flips_every_time(seeded_run: Run) -> None:
    for before, delta in seeded_run.deltas_with_rows_before():
        assert delta["forbidden"] is (not before["forbidden"])


def test_description_is_always_sent_and_grows(seeded_run: Run) -> None:
    for before, delta in seeded_run.deltas_with_rows_before():
        assert delta["description"] == before["description"] + DESCRIPTION_SUFFIX


def test_name_changes_about_half_the_time_by_appending_the_suffix(seeded_run: Run) -> None:
    pairs = seeded_run.deltas_with_rows_before()
    renamed = [(b, d) for b, d in pairs if "name" in d]
    assert 0 < len(renamed) < len(pairs)
    for before, delta in renamed:
        assert delta["name"] == before["name"] + NAME_SUFFIX


def test_cost_changes_about_half_the_time_as_an_integer_5_to_10_higher(seeded_run: Run) -> None:
    pairs = seeded_run.deltas_with_rows_before()
    repriced = [(b, d) for b, d in pairs if "cost" in d]
    assert 0 < len(repriced) < len(pairs)
    for before, delta in repriced:
        assert type(delta["cost"]) is int
        assert 5 <= delta["cost"] - int(before["cost"]) <= 10


def test_a_delta_carries_only_the_known_fields(seeded_run: Run) -> None:
    for _, delta in seeded_run.deltas_with_rows_before():
        assert {"fragrance_id", "description", "forbidden"} <= set(delta)
        assert set(delta) <= {"fragrance_id", "name", "description", "cost", "forbidden"}


async def test_a_fractional_cost_is_truncated_before_the_raise(
    cms_url: str, tmp_path: Path
) -> None:
    keep_only(cms_url, 3, cost=Decimal("41.9"))
    async with cms(settings_for(cms_url, journal=str(tmp_path / "j.jsonl"))) as (simulator, _):
        for _ in range(20):
            await simulator.tick()
    costs = [json.loads(e["body"]).get("cost") for e in journal(tmp_path / "j.jsonl")]
    first_cost = next(c for c in costs if c is not None)
    assert 46 <= first_cost <= 51


async def test_the_same_seed_repeats_the_same_changes(
    server: Server, cms_template: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bodies = []
    for n, seed in enumerate([11, 11, 12]):
        for name in _clone(server, cms_template, request):
            path = tmp_path / f"{n}.jsonl"
            settings = settings_for(server.url(name), seed=seed, count=15, journal=str(path))
            async with cms(settings) as (simulator, _):
                await simulator.finished()
            bodies.append([e["body"] for e in journal(path)])
    assert len(bodies[0]) == 15
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


def test_the_interval_is_drawn_once_within_the_bounds_and_repeats_with_the_seed() -> None:
    def interval(seed: int) -> float:
        return Simulator(settings_for("", seed=seed, interval_min=20, interval_max=25)).interval

    assert interval(11) == interval(11) != interval(12)
    assert all(20 <= interval(seed) <= 25 for seed in range(50))


# Overlong growth: the database refuses, and the CMS goes silent for good.


@pytest.mark.parametrize(
    ("column", "value"),
    [("description", "d" * (1024 - len(DESCRIPTION_SUFFIX) + 1)), ("name", "n" * 140)],
)
async def test_growth_past_the_column_limit_silences_it_until_restart(
    cms_url: str, receiver: Receiver, tmp_path: Path, column: str, value: str
) -> None:
    keep_only(cms_url, 5, **{column: value})
    settings = settings_for(cms_url, journal=str(tmp_path / "j.jsonl"))
    async with cms(settings) as (simulator, client):
        await client.post("/listener", json=listener_for(receiver.port))
        for _ in range(50):
            if simulator.broken:
                break
            await simulator.tick()
        sent_before_failure = len(receiver.received)
        row_at_failure = rows(cms_url)[5]
        for _ in range(3):
            await simulator.tick()
        status = (await client.get("/")).json()["simulator"]
    assert "value too long" in status["broken"]
    assert status["failed_ticks"] >= 4
    assert len(receiver.received) == sent_before_failure
    assert rows(cms_url)[5] == row_at_failure
    assert [e["outcome"] for e in journal(tmp_path / "j.jsonl")[-3:]] == ["not_sent"] * 3


async def test_once_broken_it_fails_even_after_the_data_is_fixed(
    cms_url: str, receiver: Receiver
) -> None:
    keep_only(cms_url, 5, description="d" * 1024)
    async with cms(settings_for(cms_url)) as (simulator, client):
        assert simulator.broken is not None
        keep_only(cms_url, 5, description="short again")
        await client.post("/listener", json=listener_for(receiver.port))
        await simulator.tick()
        assert simulator.counters.failed_ticks == 2
    assert receiver.received == []
    async with cms(settings_for(cms_url)) as (simulator, client):
        await client.post("/listener", json=listener_for(receiver.port))
        await simulator.tick()
        assert simulator.broken is None
    assert len(receiver.received) == 1


async def test_with_no_fragrance_left_a_tick_fails_like_a_refused_commit(
    cms_url: str, receiver: Receiver
) -> None:
    async with cms(settings_for(cms_url)) as (simulator, client):
        with psycopg.connect(cms_url, autocommit=True) as conn:
            conn.execute("delete from public.fragrances")
        await client.post("/listener", json=listener_for(receiver.port))
        await simulator.tick()
        assert "no fragrance to change" in (simulator.broken or "")
    assert receiver.received == []


# Fire and forget.


async def test_a_listener_answering_500_gets_each_change_once(
    cms_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.status = 500
    settings = settings_for(cms_url, journal=str(tmp_path / "j.jsonl"))
    async with cms(settings) as (simulator, client):
        await client.post("/listener", json=listener_for(receiver.port))
        await simulator.tick()
        await simulator.tick()
        assert simulator.broken is None
    assert len(receiver.received) == 2
    assert len({r.body for r in receiver.received}) == 2
    assert [(e["outcome"], e["status"]) for e in journal(tmp_path / "j.jsonl")[1:]] == [
        ("answered", 500),
        ("answered", 500),
    ]


async def test_a_refused_connection_is_logged_and_the_change_stays_committed(
    cms_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(cms_url, journal=str(tmp_path / "j.jsonl"))
    async with cms(settings) as (simulator, client):
        await client.post("/listener", json=listener_for(_free_port()))
        await simulator.tick()
        await simulator.tick()
        counters = simulator.counters
    entries = journal(tmp_path / "j.jsonl")[1:]
    assert [e["outcome"] for e in entries] == ["connection_error"] * 2
    assert (counters.connection_errors, counters.changes_committed) == (2, 3)
    assert "could not deliver" in caplog.text
    after = rows(cms_url)
    for entry in entries:
        delta = json.loads(entry["body"])
        assert delta["description"] in after[delta["fragrance_id"]]["description"]


# The journal.


async def test_the_journal_records_the_exact_bytes_each_delivery_carried(
    cms_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "j.jsonl"
    run = await _seeded_run(
        cms_url, path, count=11, chaos=frozenset({"malformed"}), chaos_probability=1
    )
    sent = [body_bytes(e) for e in run.entries if e["outcome"] == "answered"]
    assert sorted(sent) == sorted(r.body for r in run.received)
    assert any(e["body_encoding"] == "base64" for e in run.entries)
    assert all(set(e) == JOURNAL_KEYS for e in run.entries)


JOURNAL_KEYS = {
    "at",
    "seq",
    "tick",
    "fragrance_id",
    "chaos",
    "committed",
    "body",
    "body_encoding",
    "listener",
    "outcome",
    "status",
    "error",
}


# Chaos: each switch produces its kind and never corrupts the CMS database.


def _poisoned(entry: Row, run: Run) -> bool:
    """An invalid delivery: one field the CMS's database or the rules would refuse."""
    delta = json.loads(entry["body"])
    fragrance_id = delta["fragrance_id"]
    if not isinstance(fragrance_id, int) or isinstance(fragrance_id, bool) or fragrance_id < 0:
        return True
    name, description = delta.get("name", "x"), delta.get("description", "")
    cost, forbidden = delta.get("cost", 0), delta["forbidden"]
    return not (
        isinstance(name, str)
        and name.strip()
        and len(name) <= 150
        and isinstance(description, str)
        and len(description) <= 1024
        and type(cost) in (int, float)
        and cost >= 0
        and type(forbidden) is bool
    )


def _is_malformed(entry: Row, run: Run) -> bool:
    raw = body_bytes(entry)
    try:
        parsed = json.loads(raw, object_pairs_hook=lambda pairs: (pairs, dict(pairs)))
    except ValueError:
        return True
    if not isinstance(parsed, tuple):
        return True
    pairs, obj = parsed
    return len(pairs) != len(obj) or any(v != v for v in obj.values())


def _aims_at_an_unknown_id(entry: Row, run: Run) -> bool:
    """An unknown id, and too few fields to create the fragrance."""
    delta = json.loads(entry["body"])
    return delta["fragrance_id"] not in run.catalog and set(delta) == {
        "fragrance_id",
        "description",
        "forbidden",
    }


def _carries_an_unknown_field(entry: Row, run: Run) -> bool:
    known = {"fragrance_id", "name", "description", "cost", "forbidden"}
    return entry["committed"] and bool(set(json.loads(entry["body"])) - known)


def _repeats_the_change_just_sent(entry: Row, run: Run) -> bool:
    earlier = [e for e in run.entries if e["seq"] == entry["seq"] - 1]
    return entry["committed"] and [(e["tick"], e["body"]) for e in earlier] == [
        (entry["tick"], entry["body"])
    ]


def _follows_a_later_change(entry: Row, run: Run) -> bool:
    earlier = [e for e in run.entries if e["seq"] is not None and e["seq"] < entry["seq"]]
    return entry["committed"] and any(e["tick"] > entry["tick"] for e in earlier)


CHAOS_CHECKS = {
    "invalid": (_poisoned, False),
    "unknown_id": (_aims_at_an_unknown_id, False),
    "unknown_field": (_carries_an_unknown_field, True),
    "malformed": (_is_malformed, False),
    "duplicate": (_repeats_the_change_just_sent, True),
    "out_of_order": (_follows_a_later_change, True),
}


def test_every_chaos_kind_is_specified() -> None:
    assert set(CHAOS_CHECKS) == set(CHAOS_KINDS)


@pytest.mark.parametrize("kind", CHAOS_KINDS)
async def test_each_chaos_switch_produces_its_kind_and_leaves_the_cms_database_valid(
    cms_url: str, tmp_path: Path, kind: str
) -> None:
    check, committed = CHAOS_CHECKS[kind]
    run = await _seeded_run(
        cms_url, tmp_path / "j.jsonl", count=11, chaos=frozenset({kind}), chaos_probability=1
    )
    chaotic = [e for e in run.entries if e["chaos"] == kind]
    assert len(chaotic) >= 5
    assert all(check(e, run) and e["committed"] is committed for e in chaotic)
    assert all(e["outcome"] == "answered" for e in chaotic)
    assert run.after == fold(run.catalog, run.entries)
    assert set(run.after) == set(run.catalog)


async def test_without_chaos_switches_every_delivery_is_a_real_change(seeded_run: Run) -> None:
    assert {(e["chaos"], e["committed"]) for e in seeded_run.entries} == {(None, True)}


# Setting up the CMS database.


async def test_an_empty_database_gets_the_table_and_the_catalog(
    server: Server, bare_dbname: str, cms_template: str
) -> None:
    async with cms(settings_for(server.url(bare_dbname), count=0)) as (simulator, _):
        assert simulator.counters.ticks == 0
    assert rows(server.url(bare_dbname)) == rows(server.url(cms_template))


# Settings.


def test_settings_defaults_follow_the_real_cms() -> None:
    settings = Settings.from_env({})
    assert (settings.port, settings.host) == (9090, "127.0.0.1")
    assert (settings.interval_min, settings.interval_max) == (20, 25)
    assert (settings.count, settings.seed, settings.journal) == (None, None, None)
    assert (settings.chaos, settings.wait_for_listener) == (frozenset(), False)


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CMS_DATABASE_URL": "postgresql+psycopg://u@h/cms",
            "INTERVAL_MIN": "0",
            "INTERVAL_MAX": "0",
            "COUNT": "3",
            "SEED": "9",
            "CHAOS": "duplicate, malformed",
            "CHAOS_PROBABILITY": "0.5",
            "JOURNAL": "/tmp/j.jsonl",
            "WAIT_FOR_LISTENER": "yes",
        }
    )
    assert settings.database_url == "postgresql://u@h/cms"
    assert (settings.interval_max, settings.count, settings.seed) == (0, 3, 9)
    assert settings.chaos == {"duplicate", "malformed"}
    assert (settings.chaos_probability, settings.wait_for_listener) == (0.5, True)
    assert Settings.from_env({"CHAOS": "all"}).chaos == set(CHAOS_KINDS)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"INTERVAL_MIN": "-1"}, "INTERVAL_MIN must be at least 0.0, got -1.0"),
        ({"INTERVAL_MIN": "9", "INTERVAL_MAX": "3"}, "must not exceed INTERVAL_MAX"),
        ({"COUNT": "many"}, "COUNT must be a whole number, got 'many'"),
        ({"SEED": "-3"}, "SEED must be at least 0, got -3"),
        ({"CHAOS": "invalid,fire"}, "CHAOS holds unknown kinds fire"),
        ({"CHAOS_PROBABILITY": "2"}, "CHAOS_PROBABILITY must be at most 1"),
        ({"WAIT_FOR_LISTENER": "maybe"}, "WAIT_FOR_LISTENER must be true or false"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be debug, info, warning or error, got 'loud'"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


# The real process.


def _start(cms_url: str, tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    log = tmp_path / "cms.log"
    environment = {**os.environ, "CMS_DATABASE_URL": cms_url, "PORT": str(port), **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cms_simulator"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        if process.poll() is not None:
            pytest.fail(f"cms_simulator exited early:\n{log.read_text()}")
        try:
            httpx.get(url + "/healthcheck", timeout=10)
            return process, url, log
        except httpx.ConnectError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"cms_simulator did not start:\n{log.read_text()}")


def test_python_m_cms_simulator_serves_and_delivers_until_count(
    cms_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    process, url, log = _start(
        cms_url, tmp_path, INTERVAL_MIN="0", INTERVAL_MAX="0", COUNT="3", WAIT_FOR_LISTENER="1"
    )
    try:
        httpx.post(url + "/listener", json=listener_for(receiver.port))
        while httpx.get(url + "/").json()["simulator"]["ticking"]:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    assert len(receiver.received) == 2
    assert "Traceback" not in log.read_text()


SECRET = "s3cret-token-of-the-hook-0123"


def test_its_log_never_carries_the_listeners_secret_token(
    cms_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    """The hook's token is the path's last part: the log names the listener without it.

    Logs reach more people than the token may (``docker compose logs``): the
    simulator logged every delivery's URL (httpx, at info) and every refused
    connection's (its own warning), token and all.
    """
    process, url, log = _start(
        cms_url, tmp_path, INTERVAL_MIN="0", INTERVAL_MAX="0", WAIT_FOR_LISTENER="1"
    )
    endpoint = f"/notifications/{SECRET}"

    def listen_until(port: int, counter: str) -> None:
        httpx.post(url + "/listener", json=listener_for(port, endpoint))
        while httpx.get(url + "/").json()["simulator"][counter] < 1:
            time.sleep(0.05)

    try:
        listen_until(_free_port(), "connection_errors")
        listen_until(receiver.port, "answered")
        httpx.delete(url + "/listener")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    output = log.read_text()
    assert "could not deliver to http://127.0.0.1:" in output
    assert "/notifications/<token>" in output
    assert SECRET not in output


def test_sigterm_stops_it_cleanly_while_it_ticks(cms_url: str, tmp_path: Path) -> None:
    process, url, log = _start(cms_url, tmp_path, INTERVAL_MIN="0", INTERVAL_MAX="0")
    try:
        while httpx.get(url + "/").json()["simulator"]["ticks"] < 20:
            time.sleep(0.05)
    finally:
        process.terminate()
        code = process.wait(15)
    assert code == 0
    output = log.read_text()
    assert "Traceback" not in output
    assert "Application shutdown complete" in output


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CHAOS": "fire"}, "cms_simulator: bad setting: CHAOS holds unknown kinds fire"),
        (
            {"CMS_DATABASE_URL": f"postgresql://cms@127.0.0.1:{_free_port()}/cms"},
            "CMS_DATABASE_URL cannot be reached",
        ),
    ],
)
def test_it_refuses_to_start_with_a_clear_message(environ: dict[str, str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cms_simulator"],
        cwd=ROOT,
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
