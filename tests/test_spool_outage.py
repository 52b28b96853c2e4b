"""PostgreSQL down: deliveries are spooled (fsynced, 202), then drained in order, exactly once.

These tests stop and start a PostgreSQL server of their own, for real, and
kill the hook with real signals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import resource
import signal
import socket
import sqlite3
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from conftest import Server, load_smart_library, run_yoyo
from helpers import body, calls_started_after
from load import peak_rss_mb, post_at_once
from processes import (
    Hook,
    free_port,
    start_hook,
    stop_hook,
    wait_for_empty_spool,
    worker_pids,
)

from hook.ingest import Delivery
from hook.spool import DRAIN_BATCH, Spool, SpooledDelivery


def _post(hook: Hook, n: int, timeout: float = 30) -> httpx.Response:
    delta = {"fragrance_id": 7, "cost": n, "description": f"change {n}"}
    return httpx.post(hook.url + "/notifications", content=body(delta), timeout=timeout)


def _inbox(server: Server) -> list[tuple]:
    with psycopg.connect(server.url("test")) as conn:
        return conn.execute(
            "select payload->>'cost', status, spool_key is not null from sync.inbox order by id"
        ).fetchall()


def _bodies(server: Server) -> list[bytes]:
    with psycopg.connect(server.url("test")) as conn:
        return [bytes(b) for (b,) in conn.execute("select body from sync.inbox order by id")]


def _spool_counts(tmp_path: Path) -> tuple[int, int]:
    spool = Spool(tmp_path / "spool")
    try:
        return spool.counts()
    finally:
        spool.close()


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
        wait_for_empty_spool(hook)
        statuses += [_post(hook, n).json()["status"] for n in range(11, 14)]
    finally:
        stop_hook(hook)

    assert statuses == ["pending"] * 5 + ["spooled"] * 5 + ["pending"] * 3
    assert degraded == {
        "status": "degraded",
        "database": "unreachable",
        "spool_depth": 5,
        "spool_set_aside": 0,
        "spool_damaged": 0,
    }
    inbox = _inbox(own_server)
    assert [cost for cost, _, _ in inbox] == [str(n) for n in range(1, 14)]
    # A delivery stored just before the outage may be applied only after the spooled ones
    # (later in receipt order) were: it is then ignored, its cost already superseded.
    assert {status for _, status, _ in inbox} <= {"applied", "ignored"}
    assert inbox[-1][1] == "applied"
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
    try:
        answers = [_post(first, n) for n in range(1, 5)]
    finally:
        first.process.send_signal(signal.SIGKILL)  # no chance to flush anything more
        first.process.wait(10)
    assert [a.json()["status"] for a in answers] == ["spooled"] * 4

    own_server.pg.start()
    second = start_hook(url, tmp_path, DB_TIMEOUT="1")
    try:
        wait_for_empty_spool(second)
    finally:
        stop_hook(second)
    # Draining again (as after a crash mid-drain) must not store anything twice.
    third = start_hook(url, tmp_path, DB_TIMEOUT="1")
    try:
        wait_for_empty_spool(third)
    finally:
        stop_hook(third)
    assert [cost for cost, _, _ in _inbox(own_server)] == ["1", "2", "3", "4"]
    assert _spool_counts(tmp_path) == (0, 0)
    assert not (tmp_path / "spool" / "spool.waiting").exists()


def _spooled(cost: int, key: uuid.UUID | None = None) -> SpooledDelivery:
    record = SpooledDelivery.of(
        Delivery(body({"fragrance_id": 7, "cost": cost}), "application/json", None, None)
    )
    return record if key is None else dataclasses.replace(record, key=key)


def test_a_spool_replayed_after_a_crash_mid_drain_stores_nothing_twice(
    own_server: Server, tmp_path: Path
) -> None:
    records = [_spooled(n) for n in (1, 2, 3)]
    # The crash: the first two reached the inbox, the spool never heard of it.
    with psycopg.connect(own_server.url("test"), autocommit=True) as conn:
        for record in records[:2]:
            conn.execute(
                "select sync.receive_spooled(%s, %s, %s)",
                [record.key, record.received_at, record.body],
            )
    spool = Spool(tmp_path / "spool")
    spool.append(records)
    spool.close()

    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path)
    try:
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert [cost for cost, _, _ in _inbox(own_server)] == ["1", "2", "3"]


def test_a_delivery_whose_reply_was_lost_after_its_commit_is_stored_once(
    own_server: Server, tmp_path: Path
) -> None:
    key = uuid.uuid4()
    stored = _spooled(5, key)
    # The hook's batch committed, the reply never came: it spooled the same delivery too.
    with psycopg.connect(own_server.url("test"), autocommit=True) as conn:
        conn.execute(
            "select * from sync.receive_many(%s::bytea[], %s::text[], %s::text[], %s::text[],"
            " %s::uuid[])",
            [[stored.body], ["application/json"], [None], [None], [key]],
        )
    spool = Spool(tmp_path / "spool")
    spool.append([stored, _spooled(6)])
    spool.close()

    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path)
    try:
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert [cost for cost, _, _ in _inbox(own_server)] == ["5", "6"]


# Item 13 of issue 14: an outage is answered at once, not after DB_TIMEOUT.

#: Far longer than the answers may take: a test passes only if nothing waited for the pool.
SLOW_POOL = {"DB_TIMEOUT": "30"}
ANSWER_WITHIN = 10


def test_the_first_delivery_of_an_outage_is_spooled_without_waiting_for_the_pool(
    own_server: Server, tmp_path: Path
) -> None:
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, **SLOW_POOL)
    try:
        assert _post(hook, 1).json()["status"] == "pending"  # a pooled connection, alive
        own_server.pg.terminate()
        # httpx raises if an answer takes ANSWER_WITHIN s: only a 30 s pool wait could.
        statuses = [_post(hook, n, timeout=ANSWER_WITHIN).json()["status"] for n in range(2, 6)]
        health = httpx.get(hook.url + "/healthz", timeout=ANSWER_WITHIN).json()
    finally:
        stop_hook(hook)
    assert statuses == ["spooled"] * 4
    assert health["database"] == "unreachable"


@contextmanager
def _read_only(server: Server) -> Iterator[psycopg.Connection]:
    """The database refuses every write (maintenance, or a failover's old primary) meanwhile."""
    with psycopg.connect(server.url("test"), autocommit=True) as owner:
        owner.execute("alter system set default_transaction_read_only = on")
        owner.execute("select pg_reload_conf()")
        try:
            yield owner
        finally:
            owner.execute("set default_transaction_read_only = off")
            owner.execute("alter system reset default_transaction_read_only")
            owner.execute("select pg_reload_conf()")


def test_a_database_that_turns_read_only_spools_deliveries_instead_of_refusing_them(
    own_server: Server, tmp_path: Path
) -> None:
    """Maintenance or a standby: every write is refused (25006), which is no delivery's fault."""
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path)
    try:
        assert _post(hook, 1).status_code == 202
        with _read_only(own_server):
            answers = [_post(hook, n) for n in (2, 3)]
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert [(a.status_code, a.json()["status"]) for a in answers] == [(202, "spooled")] * 2
    assert [json.loads(b)["cost"] for b in _bodies(own_server)] == [1, 2, 3]


def test_a_read_only_database_pauses_the_drain_with_one_warning_not_one_per_retry(
    own_server: Server, tmp_path: Path
) -> None:
    """After a failover the old primary answers, read-only: the drain retries every interval."""
    hook = start_hook(
        own_server.url("test", user="sync_hook_login"), tmp_path, SPOOL_RETRY_EVERY="0.1"
    )
    try:
        with _read_only(own_server) as owner:
            assert _post(hook, 1).json()["status"] == "spooled"
            now = owner.execute("select clock_timestamp()").fetchone()[0]
            # Each refused drain ends in a ROLLBACK of the hook's pool.
            calls_started_after(owner, now, "ROLLBACK", 5, "fragrance-sync-hook")
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert hook.output().count("draining the spool paused") == 1


def test_a_store_held_past_db_timeout_is_spooled_not_left_waiting(
    own_server: Server, tmp_path: Path
) -> None:
    """A lock, or a database that hangs, held every delivery queued behind the store."""
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, DB_TIMEOUT="1")
    try:
        assert _post(hook, 1).status_code == 202
        with psycopg.connect(own_server.url("test")) as holder:
            holder.execute("lock table sync.inbox in access exclusive mode")
            held = _post(hook, 2)
            holder.rollback()
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert (held.status_code, held.json()["status"]) == (202, "spooled")
    assert [json.loads(b)["cost"] for b in _bodies(own_server)] == [1, 2]


def test_without_a_spool_an_outage_is_answered_503_without_waiting_for_the_pool(
    own_server: Server, tmp_path: Path
) -> None:
    url = own_server.url("test", user="sync_hook_login")
    hook = start_hook(url, tmp_path, SPOOL_DIR="", **SLOW_POOL)
    try:
        assert _post(hook, 1).status_code == 202
        own_server.pg.terminate()
        codes = [_post(hook, n, timeout=ANSWER_WITHIN).status_code for n in range(2, 5)]
        own_server.pg.start()
        # The probe notices the database is back; deliveries are stored again.
        for _ in range(600):
            if _post(hook, 5).status_code == 202:
                break
        else:
            pytest.fail(f"the hook never noticed the database was back:\n{hook.output()}")
    finally:
        stop_hook(hook)
    assert codes == [503] * 3


def test_a_busy_pool_is_waited_for_not_mistaken_for_an_outage(
    own_server: Server, tmp_path: Path
) -> None:
    url = own_server.url("test", user="sync_hook_login")
    hook = start_hook(
        url,
        tmp_path,
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE="1",
        BATCH_CONCURRENCY="2",
        **SLOW_POOL,
    )
    try:
        assert _post(hook, 1).json()["status"] == "pending"
        with ThreadPoolExecutor(max_workers=2) as senders:
            with psycopg.connect(own_server.url("test")) as locker:
                locker.execute("lock table sync.inbox in exclusive mode")
                first = senders.submit(_post, hook, 2)  # holds the pool's one connection
                for _ in range(600):  # until it waits for our lock inside the database
                    waiting = locker.execute(
                        "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                        " and application_name = 'fragrance-sync-hook'"
                    ).fetchone()[0]
                    if waiting:
                        break
                    threading.Event().wait(0.05)
                second = senders.submit(_post, hook, 3)  # waits for the busy pool
                threading.Event().wait(1)
                locker.rollback()
            statuses = [first.result().json()["status"], second.result().json()["status"]]
    finally:
        stop_hook(hook)
    assert statuses == ["pending", "pending"]


# Item 4 of issue 14: nothing inside a body is ever read as a record.


def _old_format_frame(payload: bytes) -> tuple[bytes, str]:
    """A complete, checksum-valid record of the spool file format this spool replaced."""
    forged_key = str(uuid.uuid4())
    header = {
        "key": forged_key,
        "received_at": "2001-01-01T00:00:00+00:00",
        "content_type": "application/x-sync-repair",
        "client_addr": "6.6.6.6",
        "user_agent": "sync.repair by alice",
    }
    data = json.dumps(header).encode() + b"\n" + payload
    return struct.pack(">4sII", b"FSP1", len(data), zlib.crc32(data)) + data, forged_key


def test_a_body_holding_a_forged_record_comes_out_as_itself_after_a_sigkill(
    own_server: Server, tmp_path: Path
) -> None:
    frame, forged_key = _old_format_frame(b'{"fragrance_id": 7, "cost": 99999}')
    original = b'{"fragrance_id": 7, "cost": 12, "padding": "' + frame + b'"}'
    url = own_server.url("test", user="sync_hook_login")
    own_server.pg.terminate()
    first = start_hook(url, tmp_path)
    try:
        answer = httpx.post(
            first.url + "/notifications",
            content=original,
            headers={"Content-Type": "application/json", "User-Agent": "cms/1"},
            timeout=30,
        )
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    assert answer.json()["status"] == "spooled"

    own_server.pg.start()
    second = start_hook(url, tmp_path)
    try:
        wait_for_empty_spool(second)
    finally:
        stop_hook(second)
    with psycopg.connect(own_server.url("test")) as conn:
        rows = conn.execute(
            "select body, received_at > '2020-01-01', host(client_addr), content_type,"
            " user_agent, spool_key::text from sync.inbox"
        ).fetchall()
        cost = conn.execute("select cost from public.fragrances where fragrance_id = 7").fetchone()
    assert len(rows) == 1
    stored, recent, client, content_type, user_agent, key = rows[0]
    assert bytes(stored) == original
    metadata = (recent, client, content_type, user_agent)
    assert metadata == (True, "127.0.0.1", "application/json", "cms/1")
    assert key != forged_key
    assert cost != (99999,)


def test_a_torn_last_write_never_replays_a_record_from_inside_a_body(
    own_server: Server, tmp_path: Path
) -> None:
    frame, forged_key = _old_format_frame(b'{"fragrance_id": 7, "cost": 99999}')
    before = body({"fragrance_id": 7, "cost": 11})
    # The frame sits well inside the body: a tear of the body's tail leaves it whole.
    torn = (
        b'{"fragrance_id": 7, "cost": 12, "padding": "' + frame + b'", "tail": "%s"}' % (b"t" * 100)
    )
    url = own_server.url("test", user="sync_hook_login")
    own_server.pg.terminate()
    first = start_hook(url, tmp_path)
    try:
        for data in (before, torn):
            reply = httpx.post(first.url + "/notifications", content=data, timeout=30)
            assert reply.json()["status"] == "spooled"
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    # The disk kept only part of the last write, as a crash in the middle of it leaves it.
    wal = tmp_path / "spool" / "spool.sqlite3-wal"
    os.truncate(wal, wal.stat().st_size - 10)

    own_server.pg.start()
    second = start_hook(url, tmp_path)
    try:
        wait_for_empty_spool(second)
    finally:
        stop_hook(second)
    with psycopg.connect(own_server.url("test")) as conn:
        keys = conn.execute("select spool_key::text from sync.inbox").fetchall()
    assert _bodies(own_server) == [before]  # the torn record is gone, whole; nothing from it
    assert (forged_key,) not in keys


def test_a_worker_killed_while_spooling_under_load_replays_nothing_partial_and_loses_nothing(
    own_server: Server, tmp_path: Path
) -> None:
    url = own_server.url("test", user="sync_hook_login")
    own_server.pg.terminate()
    hook = start_hook(url, tmp_path, WORKERS="2")
    sent: set[bytes] = set()
    answered: list[bytes] = []
    lock = threading.Lock()
    killed: list[int] = []

    def post(n: int) -> None:
        frame, _ = _old_format_frame(b'{"fragrance_id": 1, "cost": 1}')
        data = body({"fragrance_id": n % 40, "cost": n}) + frame * (n % 3) + b"x" * (n % 5000)
        with lock:
            sent.add(data)
        try:
            reply = client.post("/notifications", content=data)
        except httpx.HTTPError:
            return  # no answer: the sender would not count it as delivered either
        if reply.status_code == 202:
            with lock:
                answered.append(data)
                if len(answered) == 150 and not killed:
                    victim = worker_pids(hook)[0]
                    killed.append(victim)
                    os.kill(victim, signal.SIGKILL)

    client = httpx.Client(base_url=hook.url, timeout=30)
    try:
        with client, ThreadPoolExecutor(max_workers=16) as senders:
            list(senders.map(post, range(600)))
        own_server.pg.start()
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)

    stored = _bodies(own_server)
    # The counts for the record (pytest -rP shows them).
    print(f"sent {len(sent)}, answered 202 {len(answered)}, SIGKILLed workers {len(killed)},")
    print(f"lost {len(set(answered) - set(stored))}, doubled {len(stored) - len(set(stored))}")
    assert killed, "the load ended before a worker was killed"
    assert len(stored) == len(set(stored)), "a delivery was stored twice"
    assert set(stored) <= sent, "something was stored that no one sent"
    assert set(answered) <= set(stored), "a delivery answered 202 was lost"


def test_a_full_spool_disk_answers_503_never_a_false_202_and_recovers(tmp_path: Path) -> None:
    down = f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/none"
    hook = start_hook(down, tmp_path, LOG_LEVEL="error")
    pid = hook.process.pid
    answers: dict[bytes, int] = {}
    try:
        first = b'{"fragrance_id": 1, "n": 0}'
        answers[first] = _deliver(hook, first)
        # The disk fills: no file of the hook may grow past its size now (plus a little).
        spool_files = (tmp_path / "spool").glob("spool.sqlite3*")
        limit = max(p.stat().st_size for p in spool_files) + 300_000
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        for n in range(1, 25):
            data = b'{"fragrance_id": 1, "n": %d, "pad": "%s"}' % (n, b"p" * 100_000)
            answers[data] = _deliver(hook, data)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)  # freed
        last = b'{"fragrance_id": 1, "n": 99}'
        answers[last] = _deliver(hook, last)
    finally:
        stop_hook(hook)

    statuses = list(answers.values())
    print(f"sent {len(statuses)}, answered 202 {statuses.count(202)}, 503 {statuses.count(503)}")
    assert set(answers.values()) == {202, 503}
    assert answers[first] == answers[last] == 202
    with sqlite3.connect(tmp_path / "spool" / "spool.sqlite3") as spool:
        kept = [bytes(b) for (b,) in spool.execute("select body from queue order by seq")]
    assert kept == [data for data, status in answers.items() if status == 202]
    assert "Traceback" not in hook.output()


def _deliver(hook: Hook, data: bytes) -> int:
    reply = httpx.post(hook.url + "/notifications", content=data, timeout=30)
    if reply.status_code == 503:
        assert "spool cannot be written" in reply.json()["detail"]
    else:
        assert reply.json()["status"] == "spooled"
    return reply.status_code


def test_a_hook_started_before_the_migrations_spools_until_they_are_applied(
    server: Server, bare_dbname: str, tmp_path: Path
) -> None:
    """A database without schema ``sync`` yet (the deploy has not migrated it) is an outage.

    The CMS never retries: a 500 there loses the change for good. So the hook
    spools, and the spool's drain stores the delivery once the migrations are in.
    """
    load_smart_library(server, bare_dbname)
    hook = start_hook(server.url(bare_dbname), tmp_path)
    try:
        early = _post(hook, 1)
        run_yoyo(server, bare_dbname, "apply")
        wait_for_empty_spool(hook)
        late = _post(hook, 2)
    finally:
        stop_hook(hook)
    assert (early.status_code, early.json()["status"]) == (202, "spooled")
    assert (late.status_code, late.json()["status"]) == (202, "pending")
    with psycopg.connect(server.url(bare_dbname)) as conn:
        costs = conn.execute("select payload->>'cost' from sync.inbox order by id").fetchall()
    assert costs == [("1",), ("2",)]


RESTART_SENDERS = 4
RESTART_EACH = 30


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "no-spool"])
@pytest.mark.parametrize("stop", ["fast", "crash"])
def test_a_database_restarted_under_load_keeps_every_delivery_answered_202(
    own_server: Server, tmp_path: Path, stop: str, spool: bool
) -> None:
    """A 202 means committed (or fsynced in the spool) whenever the database goes away.

    Deliveries are in flight on every connection of the pool when PostgreSQL
    stops (a fast shutdown, or a crash that cuts every session mid-statement)
    and starts again. Without a spool only a commit may be answered 202;
    with one, what was spooled is stored once it drains. Nothing answered 202
    is missing, and nothing is stored twice.
    """
    env = {"DB_TIMEOUT": "1"} if spool else {"DB_TIMEOUT": "1", "SPOOL_DIR": ""}
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, **env)
    halfway = threading.Barrier(RESTART_SENDERS + 1)
    answered: list[tuple[bytes, int]] = []

    def send(sender: int) -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(RESTART_EACH):
                if n == RESTART_EACH // 3:
                    halfway.wait()
                delta = body({"fragrance_id": 7, "cost": sender * 1000 + n})
                try:
                    status = client.post(hook.url + "/notifications", content=delta).status_code
                except httpx.HTTPError:
                    status = 0
                answered.append((delta, status))

    try:
        with ThreadPoolExecutor(RESTART_SENDERS) as senders:
            running = [senders.submit(send, s) for s in range(RESTART_SENDERS)]
            halfway.wait()
            if stop == "crash":
                own_server.pg.crash()
            else:
                own_server.pg.terminate()
            own_server.pg.start()
            for each in running:
                each.result()
        if spool:
            wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    stored = _bodies(own_server)
    accepted = [delta for delta, status in answered if status == 202]
    assert len(answered) == RESTART_SENDERS * RESTART_EACH
    assert sorted(set(accepted) - set(stored)) == []
    assert len(stored) == len(set(stored))
    if spool:  # every delivery is kept: none was refused
        assert len(accepted) == len(answered)


LARGE_SPOOLED = 300


def test_draining_large_spooled_bodies_keeps_the_worker_under_150_mb(
    own_server: Server, tmp_path: Path
) -> None:
    """The drain reads the spool in batches bounded by bytes, not only by count.

    300 bodies of 1 MiB spooled during an outage were read back, dumped and
    sent in one batch of 500 records: 600 MB in the worker that drains (and a
    bytea[] as large in the database), where the same bodies arriving live
    stay under 150 MB (tests/test_overload.py). With a larger MAX_BODY_BYTES
    a batch passed PostgreSQL's 1 GB message limit, which closes the
    connection: an outage to the drain, retried for ever, so nothing spooled
    ever reached the inbox again.
    """
    large = b" " * 1024 * 1024  # not JSON: stored and rejected
    own_server.pg.terminate()
    hook = start_hook(own_server.url("test", user="sync_hook_login"), tmp_path, DB_TIMEOUT="1")
    try:
        url = urlsplit(hook.url)
        assert url.hostname is not None and url.port is not None
        statuses = asyncio.run(post_at_once(url.hostname, url.port, large, LARGE_SPOOLED))
        assert statuses == [202] * LARGE_SPOOLED
        spooling = peak_rss_mb(hook.process.pid)
        own_server.pg.start()
        wait_for_empty_spool(hook)
        peak = peak_rss_mb(hook.process.pid)
    finally:
        stop_hook(hook)
    print(
        f"\n{LARGE_SPOOLED} spooled 1 MiB bodies: peak RSS {spooling:.1f} MB spooling, "
        f"{peak:.1f} MB after the drain"
    )
    with psycopg.connect(own_server.url("test")) as conn:
        assert conn.execute("select count(*) from sync.inbox").fetchone() == (LARGE_SPOOLED,)
    assert peak < 150


def _fill_spool_disk(hook: Hook, tmp_path: Path) -> None:
    """The spool's disk is full: no file of the hook may grow any more, a delete included."""
    spool_files = (tmp_path / "spool").glob("spool.sqlite3*")
    limit = max(p.stat().st_size for p in spool_files)
    resource.prlimit(hook.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def _free_spool_disk(hook: Hook) -> None:
    resource.prlimit(hook.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)


def _wait_for_inbox(server: Server, count: int) -> None:
    with psycopg.connect(server.url("test"), autocommit=True) as conn:
        for _ in range(1200):
            if conn.execute("select count(*) from sync.inbox").fetchone() == (count,):
                return
            time.sleep(0.05)
    pytest.fail(f"the inbox never held {count} deliveries, only {len(_inbox(server))}")


def test_a_spool_disk_that_filled_in_an_outage_refuses_nothing_once_the_database_is_back(
    own_server: Server, tmp_path: Path
) -> None:
    """Once the database is back a delivery is stored, even while the spool cannot be written.

    The drain stored what the spool held, but a full disk refused the delete
    that follows (SQLite writes to delete), so the queue never emptied: every
    later delivery, meant to wait behind it, failed to spool and was answered
    503, lost, for as long as the disk stayed full, with the database up.
    """
    hook = start_hook(
        own_server.url("test", user="sync_hook_login"), tmp_path, DB_TIMEOUT="1", LOG_LEVEL="error"
    )
    try:
        own_server.pg.terminate()
        spooled = [_post(hook, n).json()["status"] for n in (1, 2, 3)]
        _fill_spool_disk(hook, tmp_path)
        own_server.pg.start()
        _wait_for_inbox(own_server, 3)  # drained, still in the spool: the delete failed
        later = _post(hook, 4)
        _free_spool_disk(hook)
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert spooled == ["spooled"] * 3
    assert later.status_code == 202, later.text
    assert [cost for cost, _, _ in _inbox(own_server)] == ["1", "2", "3", "4"]


def test_a_backlog_past_one_drain_batch_reaches_the_inbox_whole_while_the_spool_disk_is_full(
    own_server: Server, tmp_path: Path
) -> None:
    """The drain stores the whole spool, in order, even when it cannot delete what it stored.

    It stopped at the first batch whose delete the full disk refused and
    began again from the same batch: the records past it stayed out of the
    inbox, and deliveries stored meanwhile overtook them, until the disk had
    room again.
    """
    backlog = DRAIN_BATCH + 1
    hook = start_hook(
        own_server.url("test", user="sync_hook_login"), tmp_path, DB_TIMEOUT="1", LOG_LEVEL="error"
    )
    try:
        url = urlsplit(hook.url)
        assert url.hostname is not None and url.port is not None
        own_server.pg.terminate()
        delta = body({"fragrance_id": 7, "cost": 1})
        statuses = asyncio.run(post_at_once(url.hostname, url.port, delta, backlog))
        _fill_spool_disk(hook, tmp_path)
        own_server.pg.start()
        _wait_for_inbox(own_server, backlog)
        later = _post(hook, 2)
        _free_spool_disk(hook)
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert statuses == [202] * backlog
    assert later.status_code == 202, later.text
    assert [cost for cost, _, _ in _inbox(own_server)] == ["1"] * backlog + ["2"]


@pytest.mark.parametrize(
    "damage", ["not a database", "truncated"], ids=["overwritten", "truncated"]
)
def test_a_corrupt_spool_is_kept_aside_and_the_service_starts_on_a_new_one(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, damage: str
) -> None:
    """A spool file SQLite cannot read stopped the service from starting at all.

    Every delivery was then refused at the door, with the database up, and the
    error said to make SPOOL_DIR a writable directory. The file is renamed,
    kept byte for byte for whoever recovers what it held, and a new spool is
    used.
    """
    directory = tmp_path / "spool"
    spool = Spool(directory)
    spool.append([_spooled(n) for n in range(200)])
    spool.close()
    path = directory / "spool.sqlite3"
    if damage == "truncated":
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:
        path.write_bytes(b"garbage " * 1000)
    damaged = path.read_bytes()

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        answer = _post(hook, 1)
        health = wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert answer.status_code == 202, answer.text
    assert health["spool_depth"] == 0
    [kept] = directory.glob("spool.sqlite3.corrupt-*")
    assert kept.read_bytes() == damaged
    assert str(kept) in hook.output()
    assert db.execute("select payload->>'cost' from sync.inbox").fetchall() == [("1",)]


class _FreezingProxy:
    """A TCP proxy to PostgreSQL that freezes the first connection sending ``marker``.

    From then on that connection forwards nothing either way and stays open,
    as a server that hung (or a host that vanished) after it received a
    statement: no error ever comes. Every other connection goes through.
    """

    def __init__(self, port: int, marker: bytes) -> None:
        self._target = port
        self._marker = marker
        self.froze = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            frozen = threading.Event()
            for source, sink, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pipe, args=(source, sink, upstream, frozen), daemon=True
                ).start()

    def _pipe(
        self, source: socket.socket, sink: socket.socket, upstream: bool, frozen: threading.Event
    ) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if upstream and self._marker in data and not self.froze.is_set():
                    self.froze.set()
                    frozen.set()
                if not frozen.is_set():
                    sink.sendall(data)
        for each in (source, sink):
            with suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()


def test_a_drain_the_database_never_answers_is_given_up_and_tried_again(
    own_server: Server, tmp_path: Path
) -> None:
    """A drain cut off from a hung server ends at a deadline and drains on a new connection.

    The drain ran without any bound (a batch of large bodies must not time
    out): a server that hung after receiving its batch, or a primary that
    vanished behind a failover, left it waiting on that connection for as
    long as TCP kept it (hours, without keepalives tuned), holding the drain
    lock, while every delivery was spooled behind it and none reached the
    database that answered again.
    """
    spool = Spool(tmp_path / "spool")
    spool.append([_spooled(n) for n in (1, 2, 3)])
    spool.close()
    proxy = _FreezingProxy(own_server.pg.settings["port"], b"sync.store_spooled")
    url = f"postgresql://sync_hook_login@127.0.0.1:{proxy.port}/test"
    hook = start_hook(url, tmp_path, DB_TIMEOUT="1")
    try:
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
        proxy.close()
    assert proxy.froze.is_set()
    assert [cost for cost, _, _ in _inbox(own_server)] == ["1", "2", "3"]
