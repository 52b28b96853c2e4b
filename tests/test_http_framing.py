"""How a delivery's body is framed on the wire, as deployed: stored whole or not at all.

Real processes (``tests/processes.py``) on every HTTP stack the hook supports,
raw sockets, a real database. A body stored as something other than what was
sent, answered 202, is a change lost without a word (the CMS never retries).
"""

from __future__ import annotations

import gzip
import re
import socket
import struct
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import Server
from helpers import body
from processes import STACKS, Hook, running_hook

DELIVERY = body({"fragrance_id": 8, "cost": 21})
TOKEN = b"s3cret-token-0123456789"
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


def _answers(
    server: Server, dbname: str, tmp_path: Path, parser: str, loop: str, request: bytes
) -> list[bytes]:
    """Send ``request`` on one connection to a hook on that stack: every answer's status line."""
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        sock.sendall(request)
        return _status_lines(sock)


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


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_an_ignored_upgrade_offer_is_logged_as_ignored_without_advice_to_install_anything(
    server: Server, dbname: str, tmp_path: Path, parser: str, loop: str
) -> None:
    """The offer is ignored: one line says so, not uvicorn's advice to install a library."""
    head, framed = FRAMINGS["content-length"]
    offer = H2C_OFFER.replace(b"Upgrade, ", b"close, Upgrade, ")
    request = b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n" + offer + head + b"\r\n"
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        sock.sendall(request + framed)
        assert _status_lines(sock) == [b"HTTP/1.1 202 Accepted"]
        output = hook.output()
    assert "ignored an offer to switch to h2c from 127.0.0.1" in output
    assert "WebSocket" not in output and "Unsupported upgrade" not in output


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_request_framed_both_by_length_and_by_chunks_is_refused_and_its_connection_closed(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, parser: str, loop: str
) -> None:
    """Content-Length with Transfer-Encoding is how requests are smuggled past a proxy.

    A proxy that frames by the length and the hook by the chunks read different
    requests from one stream. RFC 9112 (6.3) lets a server refuse it or serve it
    by the chunks, and either way it MUST close the connection. httptools
    refuses; h11 served it by the chunks and read on: what the proxy sent next
    (here, a request it did not see) was stored.
    """
    hidden = body({"fragrance_id": 9, "cost": 23})
    smuggled = (
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"
        % (len(hidden), hidden)
    )
    request = (
        (
            b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" % (len(_chunked(DELIVERY)) + len(smuggled))
        )
        + _chunked(DELIVERY)
        + smuggled
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert answers == [b"HTTP/1.1 400 Bad Request"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


HELLO = b'{"fragrance_id": 1}'
RAW = b"\xff\x00\xfe{\x00}"

#: Framings a hostile or odd client sends: the head's framing lines, the body as framed,
#: and the body a stack that takes the request must store (every one of its bytes).
ODD_FRAMINGS = {
    "two equal lengths": (b"Content-Length: 19\r\nContent-Length: 19\r\n", HELLO, HELLO),
    "two lengths": (b"Content-Length: 19\r\nContent-Length: 3\r\n", HELLO, HELLO),
    "a length list": (b"Content-Length: 19, 19\r\n", HELLO, HELLO),
    "a signed length": (b"Content-Length: +19\r\n", HELLO, HELLO),
    "a length with a space": (b"Content-Length: 1 9\r\n", HELLO, HELLO),
    "identity coding": (b"Transfer-Encoding: identity\r\n", HELLO, HELLO),
    "chunked then identity": (b"Transfer-Encoding: chunked, identity\r\n", _chunked(HELLO), HELLO),
    "xchunked": (b"Transfer-Encoding: xchunked\r\n", _chunked(HELLO), HELLO),
    "chunked twice": (
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        _chunked(HELLO),
        HELLO,
    ),
    "a space before the colon": (b"Transfer-Encoding : chunked\r\n", _chunked(HELLO), HELLO),
    "a folded coding": (b"X-A: b\r\nTransfer-Encoding:\r\n chunked\r\n", _chunked(HELLO), HELLO),
    "a folded header": (b"Content-Length: 19\r\nX-A: b\r\n c\r\n", HELLO, HELLO),
    "chunk extensions": (
        b"Transfer-Encoding: chunked\r\n",
        b'13;a=b;c="d"\r\n' + HELLO + b"\r\n0;z\r\n\r\n",
        HELLO,
    ),
    "a chunk extension ending in a bare LF": (
        b"Transfer-Encoding: chunked\r\n",
        b"13;a\n" + HELLO + b"\r\n0\r\n\r\n",
        HELLO,
    ),
    "chunks ending in bare LFs": (
        b"Transfer-Encoding: chunked\r\n",
        b"13\n" + HELLO + b"\n0\n\n",
        HELLO,
    ),
    "a space after a chunk size": (
        b"Transfer-Encoding: chunked\r\n",
        b"13 \r\n" + HELLO + b"\r\n0\r\n\r\n",
        HELLO,
    ),
    "a trailer": (
        b"Transfer-Encoding: chunked\r\n",
        _chunked(HELLO)[:-2] + b"X-T: 1\r\n\r\n",
        HELLO,
    ),
    "a chunk size past 64 bits": (
        b"Transfer-Encoding: chunked\r\n",
        b"10000000000000013\r\n" + HELLO + b"\r\n0\r\n\r\n",
        HELLO,
    ),
    "a bare CR in the head": (b"X: y\rZ: w\r\nContent-Length: 19\r\n", HELLO, HELLO),
    "a NUL in a header": (b"Content-Length: 19\r\nX-A: a\x00b\r\n", HELLO, HELLO),
    # Within MAX_HEADER_BYTES (64 KiB): 12,000 one-letter headers are still a delivery.
    "12,000 headers": (b"Content-Length: 19\r\n" + b"a:b\r\n" * 12_000, HELLO, HELLO),
    "invalid UTF-8 and NULs": (b"Content-Length: 6\r\n", RAW, RAW),
    "invalid UTF-8 and NULs, chunked": (b"Transfer-Encoding: chunked\r\n", _chunked(RAW), RAW),
}


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_an_oddly_framed_delivery_is_stored_whole_or_refused_with_nothing_stored(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, parser: str, loop: str
) -> None:
    """Whatever a parser makes of a framing, a 202 means the body as sent, every byte.

    A stack may take a lenient framing (h11 takes equal lengths, a folded
    header, a bare LF) or refuse it (httptools refuses most): never store part
    of a body, or more than it, and answer 202.
    """
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop, "BODY_TIMEOUT": "1"}
    wrong = {}
    with running_hook(server, dbname, tmp_path, **env) as hook:
        for name, (framing, framed, meant) in ODD_FRAMINGS.items():
            before = db.execute("select coalesce(max(id), 0) from sync.inbox").fetchone()
            head = b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            with _connect(hook) as sock:
                sock.sendall(head + framing + b"\r\n" + framed)
                answers = _status_lines(sock)
            stored = [
                bytes(row[0])
                for row in db.execute("select body from sync.inbox where id > %s", before)
            ]
            status = answers[0].split()[1] if answers else b"none"
            if not (stored == [meant] and status == b"202" or not stored and status[:1] == b"4"):
                wrong[name] = (answers, stored)
    assert wrong == {}


#: HTTP/1.1 heads whose Host is missing or said twice: RFC 9112 (3.2) says a server MUST
#: answer 400, and a proxy in front may have routed by one Host while the hook saw another.
HOSTS_NOT_ONE = {
    "no Host": b"",
    "two Hosts": b"Host: 127.0.0.1\r\nHost: attacker.example\r\n",
    "two equal Hosts": b"Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n",
}


@pytest.mark.parametrize("hosts", list(HOSTS_NOT_ONE))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_an_http11_request_without_exactly_one_host_is_refused_with_nothing_stored(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    tmp_path: Path,
    parser: str,
    loop: str,
    hosts: str,
) -> None:
    """Both stacks refuse what h11 refuses: an HTTP/1.1 request names its host once."""
    request = (
        b"POST /notifications HTTP/1.1\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (HOSTS_NOT_ONE[hosts], len(DELIVERY), DELIVERY)
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert answers == [b"HTTP/1.1 400 Bad Request"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_an_http10_request_without_host_is_stored(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, parser: str, loop: str
) -> None:
    """HTTP/1.0 had no Host header: such a delivery is still a delivery."""
    request = b"POST /notifications HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (
        len(DELIVERY),
        DELIVERY,
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert [line.split()[1] for line in answers] == [b"202"]
    stored = [bytes(row[0]) for row in db.execute("select body from sync.inbox")]
    assert stored == [DELIVERY]


#: Transfer codings the hook does not decode, before the final chunked: what came is not
#: the body that was sent. RFC 9112 (6.1) suggests 501; both stacks answer h11's 400.
CODINGS_NOT_DECODED = {
    "gzip": b"gzip, chunked",
    "deflate": b"deflate, chunked",
    "compress": b"compress, chunked",
    "gzip, in two lines": b"gzip\r\nTransfer-Encoding: chunked",
}


@pytest.mark.parametrize("coding", list(CODINGS_NOT_DECODED))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_delivery_in_a_transfer_coding_the_hook_does_not_decode_is_refused_with_nothing_stored(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    tmp_path: Path,
    parser: str,
    loop: str,
    coding: str,
) -> None:
    """Stored as it came, a gzipped body was a delivery nobody can read (httptools: 202)."""
    coded = gzip.compress(DELIVERY)
    request = (
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Transfer-Encoding: %s\r\n\r\n%s" % (CODINGS_NOT_DECODED[coding], _chunked(coded))
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert answers == [b"HTTP/1.1 400 Bad Request"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


#: How the garbage follows deliveries on one connection: how many deliveries go first,
#: and whether the garbage waits for the first answer.
GARBAGE_AFTER = {
    "in the delivery's write": (1, True),
    "behind two pipelined deliveries": (2, True),
    "after the answer": (1, False),
}


@pytest.mark.parametrize("when", list(GARBAGE_AFTER))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_stored_delivery_is_answered_202_though_garbage_follows_it_on_its_connection(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    tmp_path: Path,
    parser: str,
    loop: str,
    when: str,
) -> None:
    """An answer belongs to its request: what comes after a delivery does not undo its 202.

    A 400 for a request the parser cannot read must not stand in for the
    answers to the deliveries read whole before it, which were stored (httptools
    wrote its 400 at once and closed): the sender would count changes the smart
    library has as lost.
    """
    deliveries, together = GARBAGE_AFTER[when]
    head = b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
    delivery = head % len(DELIVERY) + DELIVERY
    garbage = b"\x16\x03\x01 not HTTP at all\r\n\r\n"
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        if together:
            sock.sendall(delivery * deliveries + garbage)
        else:
            sock.sendall(delivery)
            assert sock.recv(12) == b"HTTP/1.1 202"
            sock.sendall(garbage)
        answers = _status_lines(sock)
    stored = [bytes(row[0]) for row in db.execute("select body from sync.inbox")]
    assert stored == [DELIVERY] * deliveries
    # Read apart, the 202's status line was read before the garbage went out.
    owed = deliveries if together else 0
    assert answers == [b"HTTP/1.1 202 Accepted"] * owed + [b"HTTP/1.1 400 Bad Request"]


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_delivery_with_an_absolute_form_target_is_stored(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, parser: str, loop: str
) -> None:
    """RFC 9112 (3.2.2): a server MUST accept ``POST http://host/path``, as proxies send it.

    httptools serves the path; h11 handed the whole URL to the routes, which
    answered 404 and the delivery was lost.
    """
    request = (
        b"POST http://127.0.0.1/notifications?from=cms HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(DELIVERY), DELIVERY)
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert answers == [b"HTTP/1.1 202 Accepted"]
    stored = [bytes(row[0]) for row in db.execute("select body from sync.inbox")]
    assert stored == [DELIVERY]


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_headers_past_max_header_bytes_in_one_read_are_refused_431_with_nothing_stored(
    server: Server, db: psycopg.Connection, dbname: str, tmp_path: Path, parser: str, loop: str
) -> None:
    """Checked per socket read, 100 KB of headers that came whole in one read were let through.

    Both stored the delivery (202; h11 has a bound of its own, at twice
    MAX_HEADER_BYTES): a read is parsed in pieces no longer than what is left
    of MAX_HEADER_BYTES.
    """
    request = (
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (b"a" * 100_000, len(DELIVERY), DELIVERY)
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert answers == [b"HTTP/1.1 431 Request Header Fields Too Large"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


#: Targets with a fragment, which no client sends (RFC 9110 4.2.4: it is the client's alone).
FRAGMENT_TARGETS = {
    "origin form": b"/notifications#x",
    "with a query": b"/notifications?from=cms#x",
    "absolute form": b"http://127.0.0.1/notifications#x",
}


@pytest.mark.parametrize("target", list(FRAGMENT_TARGETS))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_delivery_whose_target_has_a_fragment_is_refused_400_with_nothing_stored(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    tmp_path: Path,
    parser: str,
    loop: str,
    target: str,
) -> None:
    """Both stacks refuse a fragment: httptools dropped it and stored, h11 answered 404.

    A sender that puts one in its target is broken or probing: the delivery it
    meant is not known, so it is refused as a bad request (400), the same on
    both stacks, rather than stored on one and lost as a 404 on the other.
    """
    request = (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (FRAGMENT_TARGETS[target], len(DELIVERY), DELIVERY)
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert answers == [b"HTTP/1.1 400 Bad Request"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


def _reset(sock: socket.socket) -> None:
    """Close with a reset (RST) instead of a FIN, as a client killed mid-call does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


#: How a sender that does not wait for its answer leaves, right after its request.
LEAVING = {
    "close": socket.socket.close,
    "half-close": lambda sock: sock.shutdown(socket.SHUT_WR),
    "reset": _reset,
}


@pytest.mark.parametrize("leaving", list(LEAVING))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_sender_that_leaves_without_waiting_for_its_answer_still_has_its_change_stored(
    server: Server,
    db: psycopg.Connection,
    dbname: str,
    tmp_path: Path,
    parser: str,
    loop: str,
    leaving: str,
) -> None:
    """Fire and forget: a CMS may close its connection the moment its request is written.

    The request was whole, so it is the change its sender meant; nobody reads
    the 202, but the change is stored all the same.
    """
    deltas = [body({"fragrance_id": 8, "cost": cost}) for cost in range(5)]
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop}
    with running_hook(server, dbname, tmp_path, **env) as hook:
        sent = []
        for data in deltas:
            sock = _connect(hook)
            sock.sendall(
                b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(data), data)
            )
            LEAVING[leaving](sock)
            sent.append(sock)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stored = [bytes(r[0]) for r in db.execute("select body from sync.inbox").fetchall()]
            if len(stored) == len(deltas):
                break
            time.sleep(0.05)
        for sock in sent:
            sock.close()
    assert sorted(stored) == sorted(deltas), hook.output()[-2000:]


#: Requests the app answers without reading their bodies: a wrong token, another method.
ANSWERED_UNREAD = {
    "wrong token": (b"POST /notifications/wrong-token-0123456789", b"HTTP/1.1 404 Not Found"),
    "another method": (b"PUT /notifications/%s" % TOKEN, b"HTTP/1.1 405 Method Not Allowed"),
}


@pytest.mark.parametrize("refused", list(ANSWERED_UNREAD))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_request_answered_before_its_body_is_read_gets_one_answer_and_its_connection_closed(
    server: Server,
    db: psycopg.Connection,
    dbname: str,
    tmp_path: Path,
    parser: str,
    loop: str,
    refused: str,
) -> None:
    """The rest of an unread body is not the next request's headers.

    The connection was kept open and what followed the refusal was read as
    the head of a next request: past MAX_HEADER_BYTES of body, a second answer,
    431, to a request answered already, counted as headers_too_large though
    no header was large (and a body under it started a header deadline).
    """
    target, answer = ANSWERED_UNREAD[refused]
    head = target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
    unread = b"x" * 200_000
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop, "NOTIFY_TOKEN": TOKEN.decode()}
    with running_hook(server, dbname, tmp_path, **env) as hook:
        with _connect(hook) as sock:
            sock.sendall(head % len(unread))
            first = sock.recv(65536)  # answered from the head alone
            with suppress(OSError):
                sock.sendall(unread)
            answers = re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", first) + _status_lines(sock)
        log = hook.output()
    assert answers == [answer]
    assert "MAX_HEADER_BYTES" not in log
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


#: A delivery of about 100 KB, each of whose bytes a proxy may send as a chunk of its own:
#: 500 KB on the wire, more than one socket read (256 KiB).
LARGE_DELIVERY = body({"fragrance_id": 8, "cost": 21, "name": "n" * 100_000})


def _in_chunks_of_one(data: bytes, extension: bytes = b"") -> bytes:
    return b"".join(b"1%s\r\n%s\r\n" % (extension, data[i : i + 1]) for i in range(len(data))) + (
        b"0\r\n\r\n"
    )


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_delivery_in_one_byte_chunks_is_stored_whole(
    server: Server, db: psycopg.Connection, dbname: str, tmp_path: Path, parser: str, loop: str
) -> None:
    """A proxy may re-chunk a body: its chunk lines are framing, not trailers or extensions.

    Every chunk line counted against MAX_HEADER_BYTES, a body of 100 KB in
    chunks of one byte (400 KB of chunk lines) was answered 431 under httptools
    and the change lost.
    """
    request = (
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + _in_chunks_of_one(LARGE_DELIVERY)
    )
    answers = _answers(server, dbname, tmp_path, parser, loop, request)
    assert answers == [b"HTTP/1.1 202 Accepted"]
    stored = [bytes(row[0]) for row in db.execute("select body from sync.inbox")]
    assert stored == [LARGE_DELIVERY]


#: Framing past MAX_HEADER_BYTES (64 KiB) that is not the body's own chunk lines: each
#: answered 431 on both stacks, whether it comes in one write or across many reads.
FRAMING_TOO_LARGE = {
    # Past the bound but within one socket read (256 KiB): httptools checked per read,
    # and the delivery was whole by the end of the read, so it was stored (h11: 202 too,
    # within its own buffer of 128 KiB).
    "a trailer of 100 KB": _chunked(DELIVERY)[:-2] + b"X-T: " + b"t" * 100_000 + b"\r\n\r\n",
    # Past every read: httptools answered 431, h11 400 at its own bound.
    "a trailer of 1 MB": _chunked(DELIVERY)[:-2] + b"X-T: " + b"t" * 1_000_000 + b"\r\n\r\n",
    # 100 KB of chunk extensions on small chunks: h11 kept reading them (202).
    "chunk extensions of 100 KB": _in_chunks_of_one(DELIVERY, b";e=" + b"e" * 5_000),
    "a chunk extension of 1 MB": b"%x;e=%s\r\n%s\r\n0\r\n\r\n"
    % (len(DELIVERY), b"e" * 1_000_000, DELIVERY),
}


@pytest.mark.parametrize("framing", list(FRAMING_TOO_LARGE))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_delivery_with_framing_past_max_header_bytes_is_refused_431_with_nothing_stored(
    server: Server,
    db: psycopg.Connection,
    dbname: str,
    tmp_path: Path,
    parser: str,
    loop: str,
    framing: str,
) -> None:
    """Trailer fields and chunk extensions are as bounded as the headers: 431 on both stacks.

    httptools kept trailers whole in memory, bounded by nothing (not MAX_HEADER_BYTES,
    not MAX_BODY_BYTES, not the byte budget): a delivery with a 50 MB trailer took
    a worker to 170 MB and was stored, 202. h11 refused at its own bound with 400.
    """
    head = b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        with suppress(OSError):
            sock.sendall(head + FRAMING_TOO_LARGE[framing])
        answers = _status_lines(sock)
    assert answers == [b"HTTP/1.1 431 Request Header Fields Too Large"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


#: The smallest MAX_HEADER_BYTES: a read is parsed in pieces of at least 4 KiB, so each
#: bound held to within 4 KiB (four times looser than configured).
SMALLEST = 1024


def _head_of(size: int, rest: bytes = b"") -> bytes:
    """A delivery's head of exactly ``size`` bytes (CRLFs and blank line included)."""
    head = b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % len(
        DELIVERY
    )
    head += rest + b"X-Pad: "
    pad = size - len(head) - len(b"\r\nConnection: close\r\n\r\n")
    return head + b"p" * pad + b"\r\nConnection: close\r\n\r\n"


#: Sizes of a head, and its answer, at MAX_HEADER_BYTES=1024.
AT_THE_BOUND = {
    "1024 bytes": (SMALLEST, b"HTTP/1.1 202 Accepted"),
    "1025 bytes": (SMALLEST + 1, b"HTTP/1.1 431 Request Header Fields Too Large"),
    "4000 bytes": (4000, b"HTTP/1.1 431 Request Header Fields Too Large"),
}


@pytest.mark.parametrize("size", list(AT_THE_BOUND))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_head_is_bound_to_max_header_bytes_exactly(
    server: Server,
    db: psycopg.Connection,
    dbname: str,
    tmp_path: Path,
    parser: str,
    loop: str,
    size: str,
) -> None:
    """A head of 4,000 bytes sent with its body was stored under MAX_HEADER_BYTES=1024."""
    length, answer = AT_THE_BOUND[size]
    head = _head_of(length)
    assert len(head) == length
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop, "MAX_HEADER_BYTES": str(SMALLEST)}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        with suppress(OSError):
            sock.sendall(head + DELIVERY)
        answers = _status_lines(sock)
    assert answers == [answer]
    stored = db.execute("select count(*) from sync.inbox").fetchone()
    assert stored == ((1,) if answer.endswith(b"Accepted") else (0,))


@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_head_sent_ahead_of_an_answer_is_bound_to_max_header_bytes(
    server: Server, db: psycopg.Connection, dbname: str, tmp_path: Path, parser: str, loop: str
) -> None:
    """A request sent before the last one was answered had no bound on its head but h11's own.

    httptools parses it at once, while the first is in progress, and it was
    not counted: 200 KB of headers were served (without end while the first
    request waited, on httptools); h11 parses it from its buffer once the
    first is answered, which nothing counted either.
    """
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + _head_of(4000) + DELIVERY
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop, "MAX_HEADER_BYTES": str(SMALLEST)}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        with suppress(OSError):
            sock.sendall(request)
        answers = _status_lines(sock)
    assert answers[1:] == [b"HTTP/1.1 431 Request Header Fields Too Large"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


#: A chunked delivery's framing besides its chunk lines, at MAX_HEADER_BYTES=1024, whole in
#: one write (within one 4 KiB piece), and its answer.
FRAMING_AT_THE_BOUND = {
    "a trailer of 1024 bytes": (
        _chunked(DELIVERY)[:-2] + b"X-T: " + b"t" * 1017 + b"\r\n\r\n",
        b"HTTP/1.1 202 Accepted",
    ),
    "a trailer of 1025 bytes": (
        _chunked(DELIVERY)[:-2] + b"X-T: " + b"t" * 1018 + b"\r\n\r\n",
        b"HTTP/1.1 431 Request Header Fields Too Large",
    ),
    "a trailer of 3000 bytes": (
        _chunked(DELIVERY)[:-2] + b"X-T: " + b"t" * 2993 + b"\r\n\r\n",
        b"HTTP/1.1 431 Request Header Fields Too Large",
    ),
    "a chunk extension of 3000 bytes": (
        b"%x;e=%s\r\n%s\r\n0\r\n\r\n" % (len(DELIVERY), b"e" * 2997, DELIVERY),
        b"HTTP/1.1 431 Request Header Fields Too Large",
    ),
}


@pytest.mark.parametrize("framing", list(FRAMING_AT_THE_BOUND))
@pytest.mark.parametrize(("parser", "loop"), STACKS)
def test_a_bodys_framing_is_bound_to_max_header_bytes_exactly(
    server: Server,
    db: psycopg.Connection,
    dbname: str,
    tmp_path: Path,
    parser: str,
    loop: str,
    framing: str,
) -> None:
    """Framing that ended with its body within a 4 KiB piece was never checked: stored, 202."""
    chunked, answer = FRAMING_AT_THE_BOUND[framing]
    head = (
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    env = {"HTTP_PARSER": parser, "EVENT_LOOP": loop, "MAX_HEADER_BYTES": str(SMALLEST)}
    with running_hook(server, dbname, tmp_path, **env) as hook, _connect(hook) as sock:
        with suppress(OSError):
            sock.sendall(head + chunked)
        answers = _status_lines(sock)
    assert answers == [answer]
    stored = db.execute("select count(*) from sync.inbox").fetchone()
    assert stored == ((1,) if answer.endswith(b"Accepted") else (0,))
