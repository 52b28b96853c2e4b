"""Nothing answered 2xx is ever lost: the hook killed mid-load, or stopped gracefully."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from conftest import Server
from helpers import body
from processes import Hook, hook_side, start_hook, stop_hook, wait_for_empty_spool


def test_every_delivery_answered_2xx_survives_a_sigkill_mid_load(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    answered: dict[int, bytes] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def post(n: int) -> None:
        data = body({"fragrance_id": n % 50, "cost": n, "description": f"load {n}"})
        try:
            answer = client.post("/notifications", content=data)
        except httpx.HTTPError:
            return  # no answer: the CMS would not count it as delivered either
        if answer.status_code == 202:
            with lock:
                answered[answer.json()["inbox_id"]] = data
                if len(answered) == 100:
                    hook.process.send_signal(signal.SIGKILL)
                    killed.set()

    client = httpx.Client(base_url=hook.url, timeout=10)
    with client, ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(post, range(300)))
    hook.process.wait(10)

    assert killed.is_set(), "the load ended before the hook was killed"
    stored = dict(
        db.execute(
            "select id, body from sync.inbox where id = any(%s)", [list(answered)]
        ).fetchall()
    )
    assert {k: bytes(v) for k, v in stored.items()} == answered


def test_sigterm_lets_an_in_flight_delivery_finish(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    url = urlsplit(hook.url)
    data = body({"fragrance_id": 7, "cost": 88})
    with socket.create_connection((url.hostname, url.port), timeout=15) as conn:
        head = (
            f"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + data[:10])  # the request is in flight
        hook.process.send_signal(signal.SIGTERM)
        conn.sendall(data[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    # uvicorn re-raises the SIGTERM once it has shut down gracefully.
    assert hook.process.wait(15) in (0, -signal.SIGTERM)
    assert "Finished server process" in hook.output()
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 202 " in status_line
    receipt = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert receipt["status"] == "pending"
    # Stopping applies what was stored before it: nothing is left pending behind.
    assert db.execute(
        "select status from sync.inbox where id = %s", [receipt["inbox_id"]]
    ).fetchone() == ("applied",)
    assert db.execute("select cost from public.fragrances where fragrance_id = 7").fetchone() == (
        88,
    )
    assert "Traceback" not in hook.output()


@contextmanager
def _hung(server: Server) -> Iterator[None]:
    """Every process of ``server`` stopped (SIGSTOP): it accepts, then never answers."""
    pid = server.pg.server_pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    stopped = [pid, *map(int, children)]
    for each in stopped:
        os.kill(each, signal.SIGSTOP)
    try:
        yield
    finally:
        for each in stopped:
            os.kill(each, signal.SIGCONT)


def _deliver(hook: Hook, data: bytes, timeout: float) -> httpx.Response:
    """One delivery, POSTed as the CMS does; the client waits ``timeout`` s for the answer."""
    return httpx.post(
        hook.url + "/notifications",
        content=data,
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )


def _copies_stored(server: Server, data: bytes) -> int:
    """How many rows of the inbox hold exactly these bytes."""
    with psycopg.connect(server.url("test")) as conn:
        row = conn.execute("select count(*) from sync.inbox where body = %s", [data]).fetchone()
    assert row is not None
    return row[0]


def test_sigterm_waits_for_a_delivery_the_hung_database_holds_until_it_is_spooled(
    own_server: Server, tmp_path: Path
) -> None:
    """``docker stop`` while the database hangs: the delivery in flight is spooled, not cut off.

    A store the server does not answer ends at the hook's deadline (2 x
    DB_TIMEOUT) and a second for its cancellation: 13 s here. uvicorn's
    graceful shutdown abandoned every request after 10 s, and the CMS, which
    never retries, lost the change the hook would have spooled.
    """
    url = own_server.url("test", user="sync_hook_login")
    hook = start_hook(url, tmp_path, DB_TIMEOUT="6")
    data = body({"fragrance_id": 7, "cost": 77, "marker": uuid.uuid4().hex})
    request = (
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(data), data)
    )
    hook_address = urlsplit(hook.url)
    answer = b""
    with (
        _hung(own_server),
        socket.create_connection((hook_address.hostname, hook_address.port), timeout=60) as cms,
    ):
        cms.sendall(request)
        # In flight, not a guess: the hook has read every byte of it (its body is read only
        # when the route asks for it), so it is storing it into the hung database.
        deadline = time.monotonic() + 60
        while hook_side(hook, [cms]).get(cms.getsockname()[1], (0, 1))[1] != 0:
            assert time.monotonic() < deadline, "the hook never read the delivery"
            time.sleep(0.05)
        hook.process.send_signal(signal.SIGTERM)
        while data_in := cms.recv(65536):
            answer += data_in
    assert hook.process.wait(60) in (0, -signal.SIGTERM), hook.output()

    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 "), f"{answer!r}:\n{hook.output()}"
    assert json.loads(payload)["status"] == "spooled"
    successor = start_hook(url, tmp_path, DB_TIMEOUT="1")
    try:
        wait_for_empty_spool(successor)
    finally:
        stop_hook(successor)
    assert _copies_stored(own_server, data) == 1


def test_a_store_the_hung_database_never_answers_is_spooled_at_its_deadline(
    own_server: Server, tmp_path: Path
) -> None:
    """Spooled at twice DB_TIMEOUT, and a second for the cancellation: not 10 s later.

    Cancelled at the deadline, psycopg asked the hung server to cancel the
    query and waited 5 s for that, then 5 s for the query: the delivery was
    answered 12 s after it arrived here (DB_TIMEOUT=1), holding one of the
    hook's bounded connections all along. The client below waits 6 s.
    """
    url = own_server.url("test", user="sync_hook_login")
    hook = start_hook(url, tmp_path, DB_TIMEOUT="1")
    data = body({"fragrance_id": 7, "cost": 78, "marker": uuid.uuid4().hex})
    try:
        with _hung(own_server):
            answer = _deliver(hook, data, timeout=2 * 1 + 1 + 3)
        assert answer.status_code == 202, f"{answer.status_code} {answer.text}:\n{hook.output()}"
        assert answer.json()["status"] == "spooled"
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert _copies_stored(own_server, data) == 1
