"""Hostile load on a real hook, for tests and for ``make bench``: many bodies, half-open sockets.

Plain sockets and asyncio streams, so the load itself stays light: the
numbers measured are the hook's.
"""

from __future__ import annotations

import asyncio
import re
import selectors
import socket
import threading
import time
from pathlib import Path

HALF_REQUEST = (
    b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
)


async def post_at_once(
    host: str, port: int, body: bytes, count: int, timeout: float = 120.0
) -> list[int | str]:
    """POST ``body`` on ``count`` connections at once; each answer's status (or the error)."""

    async def one() -> int | str:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.write(
                b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            writer.write(body)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            writer.close()
            return int(head.split(b" ", 2)[1])
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            return type(exc).__name__

    return list(await asyncio.gather(*(one() for _ in range(count))))


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of one process (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, f"no VmHWM for {pid}"
    return int(match.group(1)) / 1024


class HalfOpenConnections:
    """Keeps ``count`` connections open that send the start of a request and never finish it.

    A background thread opens them, and opens a new one whenever the server
    closes one, until ``stop()`` (or ``limit`` seconds). ``opened`` and
    ``closed_by_server`` count what happened.
    """

    def __init__(self, host: str, port: int, count: int, limit: float = 300.0) -> None:
        self.host, self.port, self.count, self.limit = host, port, count, limit
        self.opened = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HalfOpenConnections:
        self._thread.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _open(self, selector: selectors.BaseSelector) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
            sock.sendall(HALF_REQUEST)
        except OSError:
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        self.opened += 1

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        with selectors.DefaultSelector() as selector:
            for _ in range(self.count):
                self._open(selector)
            self._ready.set()
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj
                    try:
                        data = sock.recv(4096)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:  # closed by the server: open another one
                        selector.unregister(sock)
                        sock.close()  # type: ignore[union-attr]
                        self.closed_by_server += 1
                        self._open(selector)
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
