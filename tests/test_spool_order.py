"""One spool per host: receipt order across an outage for every worker, and a drain that catches up.

Real hook processes (``WORKERS=2``) against a PostgreSQL of the test's own
that is stopped and started for real.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import ROOT, Server
from helpers import body
from processes import Hook, start_hook, stop_hook, wait_for_empty_spool


def _spooled_by(tmp_path: Path) -> list[int]:
    """The pid of the process that spooled each waiting record, in queue order."""
    with sqlite3.connect(tmp_path / "spool" / "spool.sqlite3") as spool:
        return [pid for (pid,) in spool.execute("select spooled_by from queue order by seq")]


def test_deliveries_spooled_by_two_workers_reach_the_inbox_in_the_order_they_were_sent(
    own_server: Server, tmp_path: Path
) -> None:
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, WORKERS="2")
    try:
        own_server.pg.terminate()
        costs: list[int] = []
        # Each on a new connection, a few seconds apart, until both workers spooled some.
        while len(costs) < 6 or len(set(_spooled_by(tmp_path))) < 2:
            if len(costs) == 30:
                pytest.fail("every connection went to one worker; nothing to order")
            if costs:
                time.sleep(2)
            cost = len(costs) + 1
            delta = {"fragrance_id": 7, "cost": cost, "description": f"outage {cost}"}
            reply = httpx.post(hook.url + "/notifications", content=body(delta), timeout=30)
            assert reply.json()["status"] == "spooled"
            costs.append(cost)
        own_server.pg.start()
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)

    with psycopg.connect(own_server.url("test")) as conn:
        inbox = conn.execute("select payload->>'cost' from sync.inbox order by id").fetchall()
        final = conn.execute("select cost from public.fragrances where fragrance_id = 7").fetchone()
    assert [int(c) for (c,) in inbox] == costs  # inbox ids follow send order
    assert final == (costs[-1],)


class Senders:
    """Closed-loop senders, one fragrance each, sending costs 1, 2, 3, ... until told to stop."""

    def __init__(self, hook: Hook, count: int) -> None:
        self.hook = hook
        self.count = count
        self.stop = threading.Event()
        self.lock = threading.Lock()
        #: Per sender: (cost, status) of every delivery answered 202, in send order.
        self.answers: dict[int, list[tuple[int, str]]] = defaultdict(list)
        self.failures: list[str] = []

    def run(self, sender: int) -> None:
        fragrance = 100 + sender
        with httpx.Client(base_url=self.hook.url, timeout=60) as client:
            cost = 0
            while not self.stop.is_set():
                cost += 1
                delta = {"fragrance_id": fragrance, "cost": cost, "description": f"s{sender}"}
                reply = client.post("/notifications", content=body(delta))
                if reply.status_code != 202:
                    with self.lock:
                        self.failures.append(f"{reply.status_code} {reply.text}")
                    return
                with self.lock:
                    self.answers[sender].append((cost, reply.json()["status"]))

    def spooled(self, sender: int) -> bool:
        """Whether a delivery of a sender has been answered as spooled."""
        with self.lock:
            return any(status == "spooled" for _, status in self.answers[sender])

    def straight_since_last_spooled(self, sender: int) -> int:
        """How many deliveries of a sender went straight to the database since its last spooled."""
        with self.lock:
            statuses = [status for _, status in self.answers[sender]]
        if "spooled" not in statuses:
            return 0
        return len(statuses) - 1 - max(i for i, s in enumerate(statuses) if s == "spooled")

    def total(self) -> int:
        with self.lock:
            return sum(len(a) for a in self.answers.values())


def test_after_an_outage_under_sustained_load_the_spool_empties_and_order_is_kept(
    own_server: Server, tmp_path: Path
) -> None:
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, WORKERS="2")
    senders = Senders(hook, 8)
    try:
        with ThreadPoolExecutor(max_workers=senders.count) as pool:
            running = [pool.submit(senders.run, n) for n in range(senders.count)]
            try:
                while senders.total() < 200:
                    time.sleep(0.05)
                own_server.pg.terminate()
                # The outage lasts until every sender has had a delivery spooled (each keeps
                # sending), so each one has a last spooled delivery that the rest must follow.
                deadline = time.monotonic() + 120
                while not all(senders.spooled(n) for n in range(senders.count)):
                    if time.monotonic() > deadline or senders.failures:
                        pytest.fail(f"not every sender was spooled for: {senders.failures}")
                    time.sleep(0.05)
                own_server.pg.start()
                # Keep the load on until every sender has seen 30 deliveries go straight to
                # the database after its last spooled one: the spool caught up meanwhile.
                deadline = time.monotonic() + 300
                while any(senders.straight_since_last_spooled(n) < 30 for n in range(8)):
                    if time.monotonic() > deadline or senders.failures:
                        pytest.fail(f"the spool never caught up: {senders.failures}")
                    time.sleep(0.1)
            finally:
                senders.stop.set()
                for future in running:
                    future.result()
        health = wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)

    assert health["spool_depth"] == 0 and not senders.failures
    with psycopg.connect(own_server.url("test")) as conn:
        rows = conn.execute(
            "select (payload->>'fragrance_id')::int - 100, (payload->>'cost')::int"
            " from sync.inbox order by id"
        ).fetchall()
        finals = dict(
            conn.execute(
                "select fragrance_id - 100, cost::int from public.fragrances"
                " where fragrance_id between 100 and 107"
            ).fetchall()
        )
    stored: dict[int, list[int]] = defaultdict(list)
    for sender, cost in rows:
        stored[sender].append(cost)
    spooled = 0
    for sender in range(senders.count):
        sent = [cost for cost, _ in senders.answers[sender]]
        spooled += sum(status == "spooled" for _, status in senders.answers[sender])
        # Every answered delivery once, in the order sent (inbox ids follow it).
        assert stored[sender] == sent, f"sender {sender}"
        assert finals[sender] == sent[-1]
    answered = sum(len(a) for a in senders.answers.values())
    print(f"answered 202 {answered} (spooled {spooled}), stored {len(rows)}, refused 0")
    assert spooled > 0  # the outage did happen under load


REFUSED = b'{"fragrance_id": 7, "cost": 2, "note": "\xff\x00 kept as it came"}'


def _spool_two_the_database_will_refuse(own_server: Server, tmp_path: Path) -> Hook:
    """A running hook whose spool drained five deliveries, two of which the database refused.

    They were spooled while the database was down; a DBA's new rule refuses
    the two once it is back.
    """
    with psycopg.connect(own_server.url("test"), autocommit=True) as conn:
        conn.execute(
            "alter table sync.inbox add constraint no_x"
            " check (user_agent is distinct from 'refuse-me')"
        )
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path)
    try:
        own_server.pg.terminate()
        for data, agent in [
            (body({"fragrance_id": 7, "cost": 1}), "cms/1"),
            (REFUSED, "refuse-me"),
            (body({"fragrance_id": 7, "cost": 3}), "cms/1"),
            (body({"fragrance_id": 8, "cost": 4}), "refuse-me"),
            (body({"fragrance_id": 7, "cost": 5}), "cms/1"),
        ]:
            reply = httpx.post(
                hook.url + "/notifications",
                content=data,
                headers={"User-Agent": agent, "Content-Type": "application/json"},
                timeout=30,
            )
            assert reply.json()["status"] == "spooled"
        own_server.pg.start()
        wait_for_empty_spool(hook)
    except BaseException:
        stop_hook(hook)
        raise
    return hook


def _inbox(own_server: Server) -> list[tuple[bytes, str]]:
    with psycopg.connect(own_server.url("test")) as conn:
        rows = conn.execute("select body, user_agent from sync.inbox order by id").fetchall()
    return [(bytes(b), agent) for b, agent in rows]


def test_a_spooled_delivery_the_database_refuses_is_set_aside_shown_and_holds_nothing_back(
    own_server: Server, tmp_path: Path
) -> None:
    hook = _spool_two_the_database_will_refuse(own_server, tmp_path)
    try:
        health = httpx.get(hook.url + "/healthz", timeout=30).json()
        metrics = httpx.get(hook.url + "/metrics", timeout=30).text
        status_page = httpx.get(hook.url + "/status", timeout=30).text
        listed = _cli(tmp_path, "list")
    finally:
        stop_hook(hook)

    inbox = _inbox(own_server)
    assert [json.loads(b)["cost"] for b, _ in inbox] == [1, 3, 5]  # nothing held back
    assert health == {
        "status": "degraded",
        "database": "ok",
        "spool_depth": 0,
        "spool_set_aside": 2,
        "spool_damaged": 0,
    }
    assert "fragrance_sync_spool_set_aside 2.0" in metrics
    assert "2 spooled deliveries were set aside" in status_page
    assert "python -m hook.spool replay" in status_page
    assert [item["user_agent"] for item in listed] == ["refuse-me", "refuse-me"]
    assert "no_x" in listed[0]["error"]
    assert base64.b64decode(listed[0]["body_base64"]) == REFUSED  # byte for byte


def test_a_delivery_set_aside_is_stored_when_replayed_after_the_fix_and_gone_when_dropped(
    own_server: Server, tmp_path: Path
) -> None:
    hook = _spool_two_the_database_will_refuse(own_server, tmp_path)
    try:
        first, second = (item["id"] for item in _cli(tmp_path, "list"))
        dropped = _cli(tmp_path, "drop", str(second))
        with psycopg.connect(own_server.url("test"), autocommit=True) as conn:
            conn.execute("alter table sync.inbox drop constraint no_x")  # the DBA fixes the cause
        _cli(tmp_path, "replay", str(first))
        for _ in range(600):
            health = httpx.get(hook.url + "/healthz", timeout=30).json()
            if health["status"] == "ok":
                break
            time.sleep(0.05)
    finally:
        stop_hook(hook)

    assert json.loads(base64.b64decode(dropped["body_base64"])) == {"fragrance_id": 8, "cost": 4}
    assert health == {
        "status": "ok",
        "database": "ok",
        "spool_depth": 0,
        "spool_set_aside": 0,
        "spool_damaged": 0,
    }
    inbox = _inbox(own_server)
    assert inbox[-1] == (REFUSED, "refuse-me")  # stored, at the end of the queue
    assert [agent for _, agent in inbox].count("refuse-me") == 1  # the dropped one is gone


def _cli(tmp_path: Path, *args: str) -> Any:
    """``python -m hook.spool`` on the hook's spool while the hook runs; its JSON output."""
    done = subprocess.run(
        [sys.executable, "-m", "hook.spool", "--spool-dir", str(tmp_path / "spool"), *args],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return lines if args[0] == "list" else (lines[0] if lines else None)
