"""How a delivery's body is framed on the wire, as deployed: stored whole or not at all.

Real processes (``tests/processes.py``) on every HTTP stack the hook supports,
raw sockets, a real database. A body stored as something other than what was
sent, answered 202, is a change lost without a word (the CMS never retries).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import Server
from helpers import body
from processes import Hook, start_hook, stop_hook

#: HTTP parser and event loop: production's (requirements.txt), and uvicorn's pure-Python ones.
STACKS = [
    pytest.param("httptools", "uvloop", id="httptools+uvloop"),
    pytest.param("httptools", "asyncio", id="httptools+asyncio"),
    pytest.param("h11", "asyncio", id="h11+asyncio"),
]

DELIVERY = body({"fragrance_id": 8, "cost": 21})
NEXT = body({"fragrance_id": 9, "cost": 22})

#: An offer to switch to cleartext HTTP/2, which a server may ignore (RFC 9110 7.8): Java's
#: built-in HTTP client makes it by default on http:// URLs (uvicorn issue 2722, Spring's
#: RestClient).
H2C_OFFER = (
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


#: The head of a delivery offering h2c, and its body as framed.
FRAMINGS = {
    "content-length": (b"Content-Length: %d\r\n" % len(DELIVERY), DELIVERY),
    "chunked": (b"Transfer-Encoding: chunked\r\n", _chunked(DELIVERY)),
}


@contextmanager
def running_hook(server: Server, dbname: str, tmp_path: Path, **env: str) -> Iterator[Hook]:
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, **env)
    try:
        yield hook
    finally:
        stop_hook(hook)


def _connect(hook: Hook) -> socket.socket:
    url = urlsplit(hook.url)
    assert url.hostname is not None and url.port is not None
    return socket.create_connection((url.hostname, url.port), timeout=10)


def _status_lines(sock: socket.socket) -> list[bytes]:
    """Every answer's status line until the hook closes the connection."""
    data = b""
    with suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", data)


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "body-later"])
@pytest.mark.parametrize("framing", list(FRAMINGS))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_delivery_offering_to_switch_protocols_is_stored_whole(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    tmp_path: Path,
    parser: str,
    loop: str,
    framing: str,
    split: bool,
) -> None:
    """The hook speaks HTTP/1.1 only: an upgrade offer is ignored, the request served as sent.

    httptools treats everything after such a request's headers as the new
    protocol: the body was skipped, an empty body stored and answered 202 (or,
    when the body came in a later read, 400), and every later request on the
    connection went unread (uvicorn issue 2722).
    """
    head, framed = FRAMINGS[framing]
    first = b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n" + H2C_OFFER + head + b"\r\n"
    # The next request on the connection offers it again, and asks to close after.
    then = b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(NEXT),
        H2C_OFFER.replace(b"Upgrade, ", b"close, Upgrade, "),
        NEXT,
    )
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        if split:
            sock.sendall(first)
            sock.sendall(framed + then)
        else:
            sock.sendall(first + framed + then)
        answers = _status_lines(sock)
    assert answers == [b"HTTP/1.1 202 Accepted"] * 2
    stored = [row[0] for row in db.execute("select body from sync.inbox order by id")]
    assert stored == [DELIVERY, NEXT]
