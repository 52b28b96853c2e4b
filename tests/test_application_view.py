"""End to end, through the application's eyes: CMS edits -> sync -> smart library's HTTP API.

Three real processes, as deployed: the CMS simulator (chaos on, no pause
between ticks, a journal of what it sent), the sync service (the hook,
registered with the CMS as its listener on its secret token path) and the
smart library stand-in (the read-only login). Every check reads the catalog
the way the application does, through ``GET /fragrances`` and
``GET /fragrance/<id>``, where ``cost`` is served as ``int(cost)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from conftest import Server, _clone
from processes import (
    Service,
    free_port,
    run_cms_into,
    start_hook,
    start_smart_library,
    stop_service,
)
from psycopg.rows import dict_row

from cms_simulator import journal

TOKEN = "application-view-token-0123456789"
FIELDS = ("name", "description", "cost", "forbidden")
CATALOG = "select fragrance_id, name, description, cost, forbidden from public.fragrances"

Row = dict[str, Any]


def _as_served(row: Row) -> Row:
    """A database row as the smart library serves it: cost as int(cost)."""
    return {**row, "cost": int(row["cost"])}


def _catalog(url: str) -> dict[int, Row]:
    """Every row of a database's catalog, by id, as the smart library would serve it."""
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return {r["fragrance_id"]: _as_served(r) for r in cur.execute(CATALOG)}


@dataclass
class World:
    """One run of the three processes; the stand-in keeps running for the checks."""

    entries: list[dict[str, Any]]
    smart_url: str
    cms_url: str
    library: Service

    def served(self) -> dict[int, Row]:
        """``GET /fragrances``, by id."""
        answer = httpx.get(self.library.url + "/fragrances", timeout=30)
        assert answer.status_code == 200, answer.text
        return {row["fragrance_id"]: row for row in answer.json()["data"]}

    def served_one(self, fragrance_id: int) -> Row | None:
        """``GET /fragrance/<id>``."""
        answer = httpx.get(f"{self.library.url}/fragrance/{fragrance_id}", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def inbox(self) -> list[Row]:
        """Every delivery the sync received, in receipt order."""
        with psycopg.connect(self.smart_url) as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "select id, body, status, reasons from sync.inbox order by id"
            ).fetchall()


def _run_world(
    server: Server, smart_db: str, cms_url: str, tmp_path: Path, **sim_env: str
) -> Iterator[World]:
    """Run the CMS until its ticks are done and delivered; yield with the stand-in still up."""
    hook_port, cms_port = free_port(), free_port()
    journal_path = tmp_path / "journal.jsonl"
    library = start_smart_library(server.url(smart_db, user="smart_library_login"), tmp_path)
    try:
        hook = start_hook(
            server.url(smart_db, user="sync_hook_login"),
            tmp_path,
            port=hook_port,
            NOTIFY_TOKEN=TOKEN,
            CMS_URL=f"http://127.0.0.1:{cms_port}",
            PUBLIC_URL=f"http://127.0.0.1:{hook_port}/notifications/{TOKEN}",
            CMS_REGISTER_EVERY="1",
        )
        run_cms_into(hook, tmp_path, cms_port, cms_url, journal_path, **sim_env)
        yield World(journal.read(journal_path), server.url(smart_db), cms_url, library)
    finally:
        stop_service(library)


CHAOS = {"COUNT": "60", "SEED": "31", "CHAOS": "all", "CHAOS_PROBABILITY": "0.5"}


@pytest.fixture(scope="module")
def world(
    server: Server,
    shared_dbname: str,
    cms_template: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """One chaos run shared by the checks that only read."""
    for cms_db in _clone(server, cms_template, request):
        yield from _run_world(
            server, shared_dbname, server.url(cms_db), tmp_path_factory.mktemp("world"), **CHAOS
        )


@pytest.fixture
def world_to_repair(server: Server, dbname: str, cms_url: str, tmp_path: Path) -> Iterator[World]:
    """A run of its own, for the check that repairs (and so changes) the catalog."""
    yield from _run_world(server, dbname, cms_url, tmp_path, **CHAOS)


def _delta(row: Row) -> dict[str, Any] | None:
    """A delivery's body as a JSON object, or None when it is not one."""
    try:
        parsed = json.loads(bytes(row["body"]))
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def test_the_run_delivered_every_kind_of_delivery_the_rules_judge(world: World) -> None:
    statuses = {row["status"] for row in world.inbox()}
    assert {"applied", "rejected"} <= statuses
    assert {e["chaos"] for e in world.entries} >= {
        "invalid",
        "unknown_id",
        "unknown_field",
        "malformed",
        "duplicate",
        "out_of_order",
    }
    answered = [e for e in world.entries if e["outcome"] == "answered"]
    assert answered and {e["status"] for e in answered} == {202}
    assert len(world.inbox()) == len(answered)


def test_every_applied_change_is_served_with_the_cms_value(world: World) -> None:
    # Precondition: no change was in flight together with another one on the same fragrance
    # (out_of_order sends two at once), so receipt order and the CMS's order agree.
    ticks = [change["fragrance_id"] for change in journal.committed_changes(world.entries)]
    assert all(a != b for a, b in zip(ticks, ticks[1:], strict=False)), "pick another SEED"
    cms, served = _catalog(world.cms_url), world.served()
    checked = 0
    for row in world.inbox():
        if row["status"] != "applied":
            continue
        delta = _delta(row)
        assert delta is not None
        fragrance_id = delta["fragrance_id"]
        one = world.served_one(fragrance_id)
        assert one is not None
        for field in FIELDS:
            if field in delta:
                assert one[field] == cms[fragrance_id][field], (row["id"], field)
                assert served[fragrance_id][field] == one[field]
                checked += 1
    assert checked > 100


def test_nothing_the_rules_rejected_is_ever_served(world: World) -> None:
    served = world.served()
    poisoned = absent = 0
    for row in world.inbox():
        delta = _delta(row)
        if row["status"] != "rejected" or delta is None:
            continue
        fragrance_id = delta.get("fragrance_id")
        if not isinstance(fragrance_id, int) or isinstance(fragrance_id, bool) or fragrance_id < 0:
            continue
        codes = {reason["code"] for reason in row["reasons"]}
        if "fragrance_id.unknown" in codes:
            assert world.served_one(fragrance_id) is None
            assert fragrance_id not in served
            absent += 1
            continue
        bad_fields = {
            r["field"] for r in row["reasons"] if r["severity"] == "error" and r["field"] in FIELDS
        }
        for field in bad_fields:
            assert served[fragrance_id][field] != delta[field], (row["id"], field)
            assert (world.served_one(fragrance_id) or {}).get(field) != delta[field]
            poisoned += 1
    assert poisoned and absent, "the run rejected no poisoned field or no unknown fragrance"


def test_the_application_sees_the_catalog_plus_exactly_the_accepted_changes(
    world: World, server: Server, adopted_template: str
) -> None:
    expected = _catalog(server.url(adopted_template))
    for row in world.inbox():
        if row["status"] not in ("applied", "ignored"):
            continue
        delta = _delta(row)
        assert delta is not None
        row_now = expected[delta["fragrance_id"]]
        for field in FIELDS:
            if field in delta:
                value = delta[field]
                row_now[field] = int(Decimal(value)) if field == "cost" else value
    served = world.served()
    assert served == expected
    assert {type(row["cost"]) for row in served.values()} == {int}


def test_after_a_drift_repair_the_application_sees_the_cms_catalog_row_for_row(
    world_to_repair: World, server: Server
) -> None:
    cms = _catalog(world_to_repair.cms_url)
    assert world_to_repair.served() != cms  # the first change, made before anyone listened
    cms_db = urlsplit(world_to_repair.cms_url).path.lstrip("/")
    with psycopg.connect(world_to_repair.smart_url, autocommit=True) as conn:
        conn.execute(
            "select sync.load_snapshot_from_server('127.0.0.1', %s, %s, 'postgres')",
            [server.pg.settings["port"], cms_db],
        )
        repaired = conn.execute("select status from sync.repair()").fetchall()
    assert repaired and set(repaired) == {("applied",)}
    assert world_to_repair.served() == cms


def test_rows_the_sync_created_refused_and_reverted_keep_the_contracts_types(
    server: Server, dbname: str, tmp_path: Path
) -> None:
    """What the application reads after each kind of write keeps the row's shape and types.

    A fragrance the sync created (a fractional cost), a change refused on it
    (a cost as a string), a change applied (an exponent cost) and its revert:
    each answer is the five fields, the id an int, cost an int, forbidden a bool.
    """
    library = start_smart_library(server.url(dbname, user="smart_library_login"), tmp_path)
    try:
        hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, NOTIFY_TOKEN=TOKEN)
        created = {"fragrance_id": 5000, "name": "New", "description": "D  ", "cost": 12.5}
        sent = [
            {**created, "forbidden": False},
            {"fragrance_id": 5000, "cost": "13", "forbidden": True},
            {"fragrance_id": 5000, "cost": 1e2, "forbidden": True},
        ]
        try:
            url = f"{hook.url}/notifications/{TOKEN}"
            ids = [httpx.post(url, json=body).json()["inbox_id"] for body in sent]
        finally:
            stop_service(hook)  # a graceful stop applies what it stored first
        with psycopg.connect(server.url(dbname), autocommit=True) as dba:
            statuses = dba.execute(
                "select status from sync.inbox where id = any(%s) order by id", [ids]
            ).fetchall()
            assert statuses == [("applied",), ("rejected",), ("applied",)]
            after_change = httpx.get(f"{library.url}/fragrance/5000").json()
            dba.execute("select * from sync.revert(%s)", [ids[2]])
        after_revert = httpx.get(f"{library.url}/fragrance/5000").json()
        every = httpx.get(f"{library.url}/fragrances", timeout=30).json()["data"]
    finally:
        stop_service(library)
    assert after_change == {**created, "cost": 100, "forbidden": True}
    assert after_revert == {**created, "cost": 12, "forbidden": False} == every[-1]
    for row in (after_change, after_revert):
        assert list(row) == ["fragrance_id", "name", "description", "cost", "forbidden"]
        assert [type(row[k]) for k in ("fragrance_id", "cost", "forbidden")] == [int, int, bool]
