"""Nothing answered 2xx is ever lost: the hook killed mid-load, or stopped gracefully."""

from __future__ import annotations

import json
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from conftest import Server
from helpers import body
from processes import start_hook


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
