"""PostgreSQL down: deliveries are spooled (fsynced, 202), then drained in order, exactly once.

These tests stop and start a PostgreSQL server of their own, for real.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import CATALOG_SQL, SMART_LIBRARY_DDL, Server, run_yoyo
from helpers import body
from processes import Hook, start_hook, stop_hook

from devtools.throwaway_pg import ThrowawayPostgresql


@pytest.fixture
def own_server() -> Iterator[Server]:
    pg = ThrowawayPostgresql()
    server = Server(pg)
    try:
        with psycopg.connect(server.url("test"), autocommit=True) as conn:
            conn.execute(SMART_LIBRARY_DDL)
            conn.execute(CATALOG_SQL.read_text())
        run_yoyo(server, "test", "apply")
        yield server
    finally:
        pg.stop()


def _post(hook: Hook, n: int) -> httpx.Response:
    delta = {"fragrance_id": 7, "cost": n, "description": f"change {n}"}
    return httpx.post(hook.url + "/notifications", content=body(delta), timeout=30)


def _wait_for_empty_spool(hook: Hook) -> None:
    for _ in range(600):
        health = httpx.get(hook.url + "/healthz", timeout=30).json()
        if health == {"status": "ok", "database": "ok", "spool_depth": 0}:
            return
        time.sleep(0.05)
    pytest.fail(f"the spool never drained:\n{hook.output()}")


def _inbox(server: Server) -> list[tuple]:
    with psycopg.connect(server.url("test")) as conn:
        return conn.execute(
            "select payload->>'cost', status, spool_key is not null from sync.inbox order by id"
        ).fetchall()


def test_an_outage_mid_stream_loses_nothing_and_keeps_receipt_order(
    own_server: Server, tmp_path: Path
) -> None:
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, DB_TIMEOUT="1")
    try:
        statuses = [_post(hook, n).json()["status"] for n in range(1, 6)]
        own_server.pg.terminate()  # PostgreSQL goes down mid-stream
        statuses += [_post(hook, n).json()["status"] for n in range(6, 11)]
        degraded = httpx.get(hook.url + "/healthz", timeout=30).json()
        own_server.pg.start()
        _wait_for_empty_spool(hook)
        statuses += [_post(hook, n).json()["status"] for n in range(11, 14)]
    finally:
        stop_hook(hook)

    assert statuses == ["applied"] * 5 + ["spooled"] * 5 + ["applied"] * 3
    assert degraded == {"status": "degraded", "database": "unreachable", "spool_depth": 5}
    inbox = _inbox(own_server)
    assert [cost for cost, _, _ in inbox] == [str(n) for n in range(1, 14)]
    assert {status for _, status, _ in inbox} == {"applied"}
    assert all(keyed for *_, keyed in inbox)  # every delivery carries the hook's key
    with psycopg.connect(own_server.url("test")) as conn:
        assert conn.execute(
            "select cost from public.fragrances where fragrance_id = 7"
        ).fetchone() == (13,)


def test_a_hook_killed_while_spooling_leaves_every_answered_delivery_to_its_successor(
    own_server: Server, tmp_path: Path
) -> None:
    url = own_server.url("test", user="sync_hook_login")
    own_server.pg.terminate()
    first = start_hook(url, tmp_path, DB_TIMEOUT="1")
    answers = [_post(first, n) for n in range(1, 5)]
    first.process.send_signal(signal.SIGKILL)  # no chance to flush anything more
    first.process.wait(10)
    assert [a.json()["status"] for a in answers] == ["spooled"] * 4

    own_server.pg.start()
    second = start_hook(url, tmp_path, DB_TIMEOUT="1")
    try:
        _wait_for_empty_spool(second)
        # Draining again (as after a crash mid-drain) must not store anything twice.
        third = start_hook(url, tmp_path, DB_TIMEOUT="1")
        _wait_for_empty_spool(third)
        stop_hook(third)
    finally:
        stop_hook(second)
    assert [cost for cost, _, _ in _inbox(own_server)] == ["1", "2", "3", "4"]
    assert not list((tmp_path / "spool").glob("spool-*.log"))


def test_a_spool_replayed_after_a_crash_mid_drain_stores_nothing_twice(
    own_server: Server, tmp_path: Path
) -> None:
    from hook.spool import SpooledDelivery

    records = [
        SpooledDelivery.new(body({"fragrance_id": 7, "cost": n}), "application/json", None, None)
        for n in (1, 2, 3)
    ]
    # The crash: the first two reached the inbox, the file was never cleared.
    with psycopg.connect(own_server.url("test"), autocommit=True) as conn:
        for record in records[:2]:
            conn.execute(
                "select sync.receive_spooled(%s, %s, %s)",
                [record.key, record.received_at, record.body],
            )
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "spool-999999.log").write_bytes(b"".join(r.encode() for r in records))

    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path)
    try:
        _wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert [cost for cost, _, _ in _inbox(own_server)] == ["1", "2", "3"]
