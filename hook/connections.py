"""Bounds on the connections one worker serves: time to send headers, and how many at once.

uvicorn waits for a request's headers as long as the client likes, and
accepts connections until the process runs out of file descriptors; then
accepting stops, the database pool cannot connect, and real deliveries
time out behind half-open connections (issue 14, item 10). So the hook
serves HTTP with uvicorn's own protocol (h11, or httptools when it is
installed) plus three rules, per worker:

- a connection must send a request's complete headers within
  ``HEADER_TIMEOUT`` seconds of opening (or of its first byte after an idle
  keep-alive), or it is closed (one sweep per worker checks the deadlines),
  and in at most ``MAX_HEADER_BYTES``, or it is
  answered 431 and closed (httptools keeps whatever headers it is sent: 64
  MB of one header took 200 MB of a worker's memory, measured), and so is a
  request whose chunked body carries as much besides its bytes and their
  chunk lines (trailer fields, chunk extensions), on both parsers
  (``BoundedProtocol._body_received``);
- at most ``MAX_CONNECTIONS`` connections, and never more than the file
  limit leaves room for: past it, the connection that has waited longest
  for its headers (or idles between requests) is closed to make room, unless
  its request has arrived unread (then the next one is); when
  every connection is busy with a request, the newcomer waits unread until
  one finishes (as many as ``MAX_CONNECTIONS`` may wait, within the file
  limit), and only past those is it answered 503 at once (the CMS never
  retries: a 503 loses its change);
- the log lines these rules write are limited (``hook/log_limit.py``), and
  so are asyncio's "socket.accept() out of system resource" and uvicorn's
  own line for each request it refuses before the app sees it.

A connection that has sent its headers is never closed by these rules: a
real delivery in progress is finished (its body has ``BODY_TIMEOUT``).
Except one that does not read its answers: a client that sent requests
(30 pipelined page loads on each of 2,100 connections, hostile review) and
reads nothing kept its connections busy forever, each answer stuck behind
the last, and real deliveries waited unanswered. A connection whose writes
have been paused by a full send buffer for ``HEADER_TIMEOUT`` seconds is
closed, and one paused past its first moments makes room for a newcomer
like a connection awaiting headers.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import select
from collections import OrderedDict
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any
from urllib.parse import urlsplit

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol

from hook.log_limit import LogLimit, limit_logger

log = logging.getLogger("hook.connections")

#: What poll() says of a socket whose client has gone: it closed (or shut down its
#: sending side: uvicorn closes such a connection too) or reset the connection.
#: POLLRDHUP is Linux's; elsewhere only a reset is seen.
GONE = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR

#: Requests one connection may send ahead of their answers (HTTP pipelining); past
#: them it is closed. The CMS sends one at a time; each waiting one costs ~450 bytes.
MAX_PIPELINED = 64


class PipelinedTooFarError(Exception):
    """A client sent more than MAX_PIPELINED requests ahead of its answers."""


#: The most bytes of a body's framing past MAX_HEADER_BYTES parsed before it is refused: a
#: read during a body is parsed in pieces no longer than what is left of the bound (and
#: never shorter than this, so that a sender cannot make the hook parse a byte at a time),
#: each checked after it is parsed. A head's pieces have no such floor: the bound on a
#: head holds exactly, and an incomplete one past it is refused at once.
FRAMING_STEP = 4096


def chunk_lines(size: int) -> int:
    """The bytes of a chunk's own framing: its size in hex and two CRLFs (the last: ``0``)."""
    return len(b"%x" % size) + 4


#: File descriptors kept for everything but client connections, besides the pool's:
#: the listening socket, the spool, the log, the event loop, a burst of accepts.
RESERVED_FILES = 64


class HeadRefusedError(Exception):
    """A request head h11 refuses and httptools took, or a target with a fragment.

    See ``_head_refused``; a fragment both refuse here (``OneFramingH11Connection``).
    """


def _head_refused(headers: list[tuple[bytes, bytes]], version: str) -> str | None:
    """Why a head parsed by httptools is one h11 refuses with 400, as RFC 9112 asks; else None.

    - Host missing or said twice in HTTP/1.1 (3.2): a proxy in front that
      routed by one Host while the hook's guard reads another sends requests
      where it did not mean them to go.
    - A transfer coding other than a lone ``chunked`` (6.1): httptools
      de-chunks ``gzip, chunked`` and the hook stored the gzipped bytes as the
      delivery, answered 202; nothing here decodes a coding.
    """
    hosts = 0
    codings: list[bytes] = []
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"transfer-encoding":
            codings += (token.strip().lower() for token in value.split(b","))
    if hosts > 1 or hosts == 0 and version != "1.0":
        return "Host missing or said twice"
    if codings and codings != [b"chunked"]:
        return "a transfer coding other than a lone chunked"
    return None


def closing_answer(status: bytes, detail: bytes) -> bytes:
    """A whole HTTP answer written below uvicorn, before any request: JSON, then close."""
    body = b'{"detail":"%s"}' % detail
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(body), body)
    )


TOO_MANY_ANSWER = closing_answer(
    b"503 Service Unavailable", b"too many connections right now; send it again"
)
TOO_BIG_ANSWER = closing_answer(
    b"431 Request Header Fields Too Large", b"request headers too large; nothing was stored"
)


#: What ``observe_refusal`` is called with for each answer written below the app.
HEADERS_TOO_LARGE = "headers_too_large"
TOO_MANY_CONNECTIONS = "too_many_connections"
#: A request the HTTP parser refused with 400 (not HTTP/1.1 as RFC 9112 allows it).
BAD_REQUEST = "bad_request"


#: The scope key of a request answered below the app while the app read its body: the
#: label /metrics counts it by (the app's own answer, to a client gone, is not written).
REFUSED_BELOW = "hook.refused_below"


def _count_nowhere(label: str) -> None:
    """The default: no app has asked to count what is answered below it."""


#: Called with the label of each answer this process writes below the app (431,
#: ``HEADERS_TOO_LARGE``; 503 at the connection cap, ``TOO_MANY_CONNECTIONS``; the
#: parser's 400, ``BAD_REQUEST``), which
#: no middleware sees: the hook's /metrics sets it (hook/metrics.py) and counts the
#: answer beside the app's refusals. Each once showed only as a (limited) log line.
#: The 503 has a label of its own, not ``unavailable``: it says the hook was full,
#: not that the database was down, and calls for MAX_CONNECTIONS, not a DBA.
observe_refusal: Callable[[str], None] = _count_nowhere


def waiting_room(ceiling: int, reserved: int) -> int:
    """How many connections may wait unread for a busy one to finish: ``ceiling`` at most.

    They hold a file descriptor each, and nothing else of ours: what they send
    stays in the kernel until they are let in. Call after ``connection_ceiling``,
    which raises the soft limit.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return ceiling
    return max(0, min(ceiling, soft - reserved - ceiling))


def connection_ceiling(wanted: int, reserved: int) -> int:
    """The most connections the file limit allows, ``wanted`` at most.

    The soft limit is raised to the hard one first (as Go's runtime does): a
    default soft limit of 1,024 would otherwise cap a server that may hold more.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - reserved))


class ConnectionLimits:
    """One worker's rules, and its connections that wait for a request, oldest first.

    Deadlines are checked by one sweep every ``sweep_every`` seconds rather
    than by a timer per request: a kept-alive connection then pays a few
    dictionary operations per request, not a timer and its cancellation.
    """

    def __init__(
        self,
        header_timeout: float,
        max_connections: int,
        max_header_bytes: int,
        max_waiting: int = 0,
        log_every: float = 10.0,
    ):
        """Close header-less connections after ``header_timeout`` s; hold ``max_connections``.

        A request's headers may take ``max_header_bytes``; past them, 431.
        ``max_waiting`` connections may wait unread while every one is busy.
        """
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.max_header_bytes = max_header_bytes
        self.max_waiting = max_waiting
        self.log_every = log_every
        self.sweep_every = min(1.0, header_timeout / 4)
        #: Connections that may be closed to make room: waiting for headers, or idle.
        self._waiting: OrderedDict[Any, None] = OrderedDict()
        #: Connections receiving headers, with the moment their deadline passes.
        self._deadlines: OrderedDict[Any, float] = OrderedDict()
        self._sweeping: asyncio.TimerHandle | None = None
        self._log: LogLimit | None = None
        #: Connections accepted while every connection was busy, unread, oldest first.
        self._held: OrderedDict[Any, None] = OrderedDict()
        #: Connections whose client does not read its answers, with the moment writes paused.
        self._stalled: OrderedDict[Any, float] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        """Sent to each worker process (uvicorn pickles its config): the rules, no state."""
        rules = (
            "header_timeout",
            "max_connections",
            "max_header_bytes",
            "max_waiting",
            "log_every",
        )
        return {name: getattr(self, name) for name in rules}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A worker's own copy, with no connection waiting yet."""
        self.__init__(**state)  # type: ignore[misc]

    @property
    def log(self) -> LogLimit:
        """The limited log of this worker."""
        if self._log is None:
            self._log = LogLimit(log, self.log_every)
        return self._log

    def awaiting_headers(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        """``protocol`` waits for a request's headers, from now on (newest last)."""
        self._waiting.pop(protocol, None)
        self._waiting[protocol] = None
        self._deadlines[protocol] = loop.time() + self.header_timeout
        self._sweep_soon(loop)

    def writes_paused(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        """``protocol``'s client stopped reading: its answers wait in a full send buffer."""
        self._stalled.setdefault(protocol, loop.time())
        self._sweep_soon(loop)

    def writes_resumed(self, protocol: Any) -> None:
        """``protocol``'s client reads again (or is gone)."""
        self._stalled.pop(protocol, None)

    def _sweep_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeping is None:
            self._sweeping = loop.call_later(self.sweep_every, self._sweep, loop)

    def close_stalled(self) -> bool:
        """Close the connection stalled longest, if past its first moments; whether one was."""
        if not self._stalled:
            return False
        oldest, since = next(iter(self._stalled.items()))
        if asyncio.get_running_loop().time() < since + self.sweep_every:
            return False
        self._close_stalled(oldest, "to make room")
        return True

    def _close_stalled(self, protocol: Any, why: str) -> None:
        self._stalled.pop(protocol, None)
        self.log.warning(
            "closed a connection from %s that did not read its answers (%s)", _peer(protocol), why
        )
        cycle = getattr(protocol, "cycle", None)
        if cycle is not None:
            # uvloop closes the transport before it reports the loss: the app must not write.
            cycle.disconnected = True
        protocol.transport.abort()

    def idle(self, protocol: Any) -> None:
        """``protocol`` idles between requests: no deadline (uvicorn's keep-alive has one)."""
        self._deadlines.pop(protocol, None)
        self._waiting.pop(protocol, None)
        self._waiting[protocol] = None

    def busy(self, protocol: Any) -> None:
        """``protocol`` has a request's headers (or is gone): never closed by these rules."""
        self._deadlines.pop(protocol, None)
        self._waiting.pop(protocol, None)

    @property
    def held(self) -> int:
        """How many connections wait unread for a busy one to finish."""
        return len(self._held)

    def hold(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> bool:
        """Let ``protocol`` wait unread (newest last); False when the waiting room is full.

        The sweep runs while any connection is held, to see which clients left.
        """
        if len(self._held) >= self.max_waiting:
            return False
        self._held[protocol] = None
        self._sweep_soon(loop)
        return True

    def close_held_gone(self) -> None:
        """Close every held connection whose client has left; each frees its place.

        A held connection's reading is paused, so neither the event loop nor
        uvicorn sees its client close it: it kept its place in the waiting room
        until a busy connection finished, and the room full of clients that had
        given up answered the next real delivery 503 (hostile review). The
        socket is asked directly, without reading what waits in it.
        """
        for protocol in [held for held in self._held if _client_gone(held)]:
            self._held.pop(protocol, None)
            self.log.warning(
                "closed a connection from %s whose client left while it waited", _peer(protocol)
            )
            protocol.transport.abort()

    def let_go(self, protocol: Any) -> bool:
        """Forget ``protocol`` if it was held; whether it was."""
        return self._held.pop(protocol, False) is None

    def next_held(self) -> Any | None:
        """The connection held longest, no longer held; None when none waits."""
        if not self._held:
            return None
        return self._held.popitem(last=False)[0]

    def is_awaiting_headers(self, protocol: Any) -> bool:
        """Whether ``protocol``'s header deadline runs."""
        return protocol in self._deadlines

    def oldest_waiting_is_fresh(self) -> bool:
        """Whether the connection that has waited longest for headers opened only just now.

        Within its first ``sweep_every`` seconds its headers are likely on
        their way: in a burst of real deliveries, closing each newcomer to
        make room for the next lost them (review of step 24).
        """
        if not self._waiting:
            return False
        deadline = self._deadlines.get(next(iter(self._waiting)))
        if deadline is None:  # idle between requests: never fresh
            return False
        opened = deadline - self.header_timeout
        return asyncio.get_running_loop().time() < opened + self.sweep_every

    def make_room(self) -> bool:
        """Close the connection that has waited longest for headers; False when none may go.

        One whose client has sent bytes the loop has not read yet is passed
        over: its request has arrived. Under load the loop reads a socket some
        time after its bytes come in, and a connection closed in that moment
        lost the request in it (197 fresh connections in one run of 20,000
        changes at 4,000/s, measured). A kept-alive connection closed idle
        can still meet its client's next request on the way: the client
        reads a reset, as from any server that closes idle connections.
        """
        oldest = _first_without_unread_bytes(self._waiting)
        if oldest is None:
            return False
        del self._waiting[oldest]
        self._deadlines.pop(oldest, None)
        self.log.warning(
            "at MAX_CONNECTIONS (%d): closed the connection from %s that waited longest for "
            "its request headers",
            self.max_connections,
            _peer(oldest),
        )
        oldest.transport.abort()
        return True

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close every connection whose header deadline has passed (they are oldest first).

        Then, for each connection held unread, one that has waited for its
        headers past its first moments makes room (it was spared while fresh).
        """
        now = loop.time()
        self.close_held_gone()
        while self._deadlines:
            protocol, deadline = next(iter(self._deadlines.items()))
            if deadline > now:
                break
            self.busy(protocol)
            self.log.warning(
                "closed a connection from %s that sent no complete request headers within %s s",
                _peer(protocol),
                self.header_timeout,
            )
            protocol.transport.abort()
        while self._stalled:
            protocol, since = next(iter(self._stalled.items()))
            if since + self.header_timeout > now:
                break
            self._close_stalled(protocol, f"for {self.header_timeout} s")
        # Each close lets one held connection in when it is reported lost.
        for _ in range(len(self._held)):
            if self.oldest_waiting_is_fresh() or not (self.make_room() or self.close_stalled()):
                break
        self._sweeping = (
            loop.call_later(self.sweep_every, self._sweep, loop)
            if self._deadlines or self._stalled or self._held
            else None
        )


#: How many of the connections waiting longest ``make_room`` asks in one poll().
ROOM_CANDIDATES = 16


def _first_without_unread_bytes(waiting: OrderedDict[Any, None]) -> Any | None:
    """The connection waiting longest whose socket holds no unread bytes (or whose client left).

    One poll() asks the first ``ROOM_CANDIDATES``; None when each of them has
    bytes waiting (they will be read in a moment) or none waits at all.
    """
    candidates: dict[int, Any] = {}
    poller = select.poll()
    for protocol in waiting:
        if len(candidates) == ROOM_CANDIDATES:
            break
        sock = protocol.transport.get_extra_info("socket")
        if sock is None or protocol.transport.is_closing():
            return protocol
        candidates[sock.fileno()] = protocol
        poller.register(sock.fileno(), select.POLLIN | GONE)
    arrived = {fd for fd, events in poller.poll(0) if events & select.POLLIN and not events & GONE}
    return next((p for fd, p in candidates.items() if fd not in arrived), None)


def _client_gone(protocol: Any) -> bool:
    """Whether the client of ``protocol`` closed or reset its connection (nothing is read)."""
    sock = protocol.transport.get_extra_info("socket")
    if sock is None or protocol.transport.is_closing():
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | GONE)
    return any(events & GONE for _, events in poller.poll(0))


def _head_size(scope: Any) -> int:
    """The bytes of a request's head as a client writes it: request line, fields, blank line.

    Parsers keep no count of it; written with a bare LF, or folded, it took
    a little less or more: the bound on the body's framing is that close.
    """
    size = len(scope["method"]) + len(scope["raw_path"]) + 14  # spaces, version, CRLFs
    if scope["query_string"]:
        size += len(scope["query_string"]) + 1
    return size + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def _peer(protocol: Any) -> str:
    client = getattr(protocol, "client", None)
    return client[0] if client else "an unknown peer"


class BoundedProtocol:
    """Mixed into uvicorn's HTTP protocol classes: the header deadline and the connection cap."""

    # From uvicorn's protocol classes.
    config: HookConfig
    connections: set[Any]
    cycle: Any
    flow: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    #: Bytes received since the request now awaited began, until its headers are complete.
    header_bytes = 0
    #: While the connection is held: what arrived before reading paused (one read at most).
    held_data: bytearray | None = None
    #: This connection's requests not answered yet, pipelined ones included, oldest first.
    open_cycles: tuple[Any, ...] = ()
    #: Bytes of the body now in progress that were neither its bytes nor its chunks' own
    #: lines (``chunk_lines``): trailer fields, chunk extensions, padding.
    framing = 0
    #: Bytes of bodies, and of their chunks' own lines, parsed on this connection (kept
    #: by each parser's protocol).
    progress: int

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; past the cap make room, hold or refuse it; start its deadline."""
        super().connection_made(transport)  # type: ignore[misc]
        limits = self.config.limits
        if len(self.connections) - limits.held > limits.max_connections and not self._make_way():
            return
        self._await_headers()

    def _make_way(self) -> bool:
        """Past the cap: True when this connection may be served now, else held or refused."""
        limits = self.config.limits
        # A newcomer of a burst waits rather than close one whose headers are on their way.
        if limits.oldest_waiting_is_fresh() and self._hold():
            return False
        if limits.make_room() or limits.close_stalled():
            return True
        if self._hold():
            return False
        limits.log.warning(
            "at MAX_CONNECTIONS (%d) with every connection busy and as many waiting: "
            "answered 503 to %s",
            limits.max_connections,
            _peer(self),
        )
        self.transport.write(TOO_MANY_ANSWER)
        self.transport.close()
        observe_refusal(TOO_MANY_CONNECTIONS)
        return False

    def _hold(self) -> bool:
        limits = self.config.limits
        if not limits.hold(self, self.loop):
            return False
        # Its bytes stay in the kernel until a connection makes room. uvloop starts
        # reading after connection_made returns: its first read is kept aside.
        self.held_data = bytearray()
        self.transport.pause_reading()
        limits.log.warning(
            "at MAX_CONNECTIONS (%d) with no connection to close: the connection from %s "
            "waits, unread, for one to finish",
            limits.max_connections,
            _peer(self),
        )
        return True

    def data_received(self, data: bytes) -> None:
        """Start the deadline when a request begins; stop it once its headers are complete.

        Headers that pass ``MAX_HEADER_BYTES`` before they are complete get 431.
        A read is parsed in pieces no longer than what is left of the bound (a
        body's at least ``FRAMING_STEP``): a piece that completes the headers may carry the
        start of the body too, and what follows them is parsed as the state of
        the connection then asks (``_body_received`` while a body is read).
        """
        if self.held_data is not None:
            self.held_data += data
            self.transport.pause_reading()
            return
        if self.refused_ahead is not None:
            return  # refused: answered once the request before it is
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            # A request's head (the usual read: a whole delivery).
            data = self._head_received(data)
        while data and not self.transport.is_closing():
            cycle = self.cycle
            if cycle is not None and cycle.more_body and not cycle.response_complete:
                data = self._body_received(data, cycle)
            else:
                data = self._head_received(data)

    def _head_received(self, data: bytes) -> bytes:
        """Parse a read, or its start, outside a body; what is left once a request begins.

        The piece parsed is no longer than what is left of MAX_HEADER_BYTES, so a
        head that is not complete within it has passed the bound: 431, exactly
        at the bound (pieces of at least 4 KiB let a head of 4 KiB through under
        a bound of 1 KiB). A head httptools parses ahead of the answer to the
        request before it is counted too (it was not: 200 KB of headers were
        served, and nothing bounded it while the request before waited); h11 parses
        such a head from its buffer once the one before is answered (``on_response_complete``).
        """
        limits = self.config.limits
        if (
            not limits.is_awaiting_headers(self)
            and not self._in_request()
            and not self.transport.is_closing()
        ):
            self._await_headers()
        awaiting = limits.is_awaiting_headers(self)
        counting = awaiting or self.parses_ahead and self._in_request()
        before = self.cycle
        if counting and self.header_bytes >= limits.max_header_bytes:
            self._refuse_head(ahead=not awaiting)  # h11 held that much of it unparsed
            return b""
        if counting:
            end = limits.max_header_bytes - self.header_bytes
        else:
            end = max(limits.max_header_bytes - self.header_bytes + 1, FRAMING_STEP)
        piece, rest = (data[:end], data[end:]) if end < len(data) else (data, b"")
        progress, heads, counted = self.progress, self.heads_parsed, self.header_bytes
        super().data_received(piece)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not before:
            self._headers_complete()
            # What of the piece was neither heads nor bodies (nor chunk lines): the framing
            # of the body in progress, or the start of a head parsed ahead.
            other = max(0, counted + len(piece) - self._parsed_since(progress, heads))
            if counting and cycle.more_body and not cycle.response_complete:
                self.framing = other
                if self.framing > limits.max_header_bytes:
                    self._refuse_framing(cycle)
                    return b""
            elif self.head_open:
                self.header_bytes = other
                if other >= limits.max_header_bytes:
                    self._refuse_head(ahead=True)
                    return b""
            return rest
        if counting and not self.transport.is_closing():
            self.header_bytes += len(piece)
            if self.header_bytes >= limits.max_header_bytes:
                self._refuse_head(ahead=not awaiting)
                return b""
        return rest

    #: Whether the parser reads a request's head while the one before waits for its
    #: answer (httptools); h11 keeps it in its buffer until then.
    parses_ahead = False
    #: The bytes of the heads parsed on this connection (``_head_size``), where counted.
    heads_parsed = 0
    #: Whether the parser is inside a head it parses ahead (httptools).
    head_open = False

    def _parsed_since(self, progress: int, heads: int) -> int:
        """Bytes of heads, bodies and chunk lines parsed since ``progress`` and ``heads``."""
        if self.heads_parsed == heads:  # h11 counts no heads: the one just parsed
            heads += -_head_size(self.cycle.scope)
        return self.heads_parsed - heads + self.progress - progress

    def _refuse_head(self, *, ahead: bool) -> None:
        """431 for a head past MAX_HEADER_BYTES; after the answers owed, for one sent ahead."""
        limits = self.config.limits
        limits.log.warning(
            "request headers from %s passed MAX_HEADER_BYTES (%d): answered 431",
            _peer(self),
            limits.max_header_bytes,
        )
        limits.busy(self)
        if ahead:
            self._refuse_when_answered(TOO_BIG_ANSWER, HEADERS_TOO_LARGE)
            return
        self.transport.write(TOO_BIG_ANSWER)
        self.transport.close()
        observe_refusal(HEADERS_TOO_LARGE)

    #: An answer owed to a request refused while the one before waits for its own.
    refused_ahead: tuple[bytes, str] | None = None

    def _refuse_when_answered(self, answer: bytes, label: str) -> None:
        """Stop reading; write ``answer`` (counted as ``label``) once the request before is."""
        self.refused_ahead = (answer, label)
        self.transport.pause_reading()

    def _answer_refused_ahead(self) -> None:
        if self.refused_ahead is None or self._in_request() or self.transport.is_closing():
            return
        answer, label = self.refused_ahead
        self.refused_ahead = None
        self.transport.write(answer)
        self.transport.close()
        observe_refusal(label)

    def _body_received(self, data: bytes, cycle: Any) -> bytes:
        """Parse a read of ``cycle``'s body; past MAX_HEADER_BYTES of other framing, 431.

        What is left once the body is over is returned, to be parsed as the next request's.

        httptools keeps a chunked body's trailer fields in memory whole, bounded
        by no limit: a delivery with a 50 MB trailer took a worker from 68 to 170
        MB and 13 s, then was stored and answered 202 (hostile review); h11 read
        chunk extensions without end. What a body section carries besides the
        body's bytes and each chunk's size line and CRLFs counts against
        ``MAX_HEADER_BYTES``: the chunk lines of a body a proxy re-chunked into
        single bytes are framing the body needs (they counted, and 100 KB in
        1-byte chunks was refused), trailer fields and extensions are not.

        A chunk's lines are credited once the chunk is over, at what its size
        needs: a chunk framed more tightly (a bare LF) banks nothing for later.
        Checked after each read, a trailer up to a read's size (256 KiB) past
        the bound was kept, and stored when it ended within that read: the read
        is parsed in pieces no longer than what is left of the bound (at least
        ``FRAMING_STEP``), so at most that much is held past it. The piece where
        the body ends is checked too: a trailer (or an extension) that ended in
        it was never checked, and 3 KB of it were stored under a bound of 1 KiB.
        """
        limits = self.config.limits
        while data:
            end = max(limits.max_header_bytes - self.framing + 1, FRAMING_STEP)
            piece, data = (data[:end], data[end:]) if end < len(data) else (data, b"")
            progress, heads = self.progress, self.heads_parsed
            super().data_received(piece)  # type: ignore[misc]
            if self.transport.is_closing():
                return data
            over = self.cycle is not cycle or not cycle.more_body
            # Once the body is over, h11 keeps the rest of the piece unparsed: not this
            # body's; httptools parses it (heads ahead, counted in heads_parsed), and
            # what of it no head counts is counted as this body's framing, to be safe.
            unparsed = self._unparsed() if over else 0
            parsed = self.heads_parsed - heads + self.progress - progress
            self.framing = max(0, self.framing + len(piece) - unparsed - parsed)
            if self.framing > limits.max_header_bytes and not cycle.response_complete:
                # Checked when the body ended within the piece too: a trailer (or an
                # extension) that ended with it was never checked, and was stored.
                self._refuse_framing(cycle)
                return b""
            if over:
                other = self.framing
                if self.cycle is not cycle:
                    self._headers_complete()  # httptools: a pipelined request began
                if self.head_open:
                    # What no head counts may be the start of the one parsed ahead.
                    self.header_bytes = other
                return data  # the rest is the next request's
        return b""

    def _unparsed(self) -> int:
        """Bytes the parser holds unparsed (h11's buffer); httptools parses all it is fed."""
        return 0

    def _refuse_framing(self, cycle: Any, *, head: bool = False) -> None:
        limits = self.config.limits
        if head:
            limits.log.warning(
                "request headers from %s passed MAX_HEADER_BYTES (%d): answered 431",
                _peer(self),
                limits.max_header_bytes,
            )
        else:
            limits.log.warning(
                "a request body from %s carried more than MAX_HEADER_BYTES (%d) besides "
                "its bytes and chunk lines (trailer fields, chunk extensions): answered 431",
                _peer(self),
                limits.max_header_bytes,
            )
        # The app, reading the body, is told the client is gone: its own answer
        # is not written, and /metrics counts this one by the scope's mark.
        cycle.scope[REFUSED_BELOW] = HEADERS_TOO_LARGE
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.write(TOO_BIG_ANSWER)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """The parser's 400 (uvicorn's), counted and logged like a 431.

        Only uvicorn's line ("Invalid HTTP request received.") said so, and
        /metrics counted it nowhere (a fragment, two framings, two Hosts), or,
        refused mid-body, as a sender that left (``cut_short``).
        """
        limits = self.config.limits
        limits.log.warning(
            "answered 400 to a request from %s that HTTP/1.1 does not allow (%s)",
            _peer(self),
            self._refused_why(),
        )
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            # Its app, reading the body, is told the client is gone: counted by the mark.
            cycle.scope[REFUSED_BELOW] = BAD_REQUEST
        else:
            observe_refusal(BAD_REQUEST)
        super().send_400_response(msg)  # type: ignore[misc]

    def _refused_why(self) -> str:
        """What the parser found wrong, as it said it."""
        return "unreadable"

    def _unsupported_upgrade_warning(self) -> None:
        """One line: the offer was ignored (ADR 0020), where uvicorn's two advised a library.

        uvicorn says "Unsupported upgrade request." and, without a websocket
        package, to install one: for an ``Upgrade: h2c`` offer, which Java's
        HTTP client makes on every connection, that sends an operator after
        something nobody needs.
        """
        upgrade = (self._get_upgrade() or b"?").decode("latin-1")  # type: ignore[attr-defined]
        self.logger.warning(  # type: ignore[attr-defined]
            "ignored an offer to switch to %s from %s: served in HTTP/1.1", upgrade, _peer(self)
        )

    def on_response_complete(self) -> None:
        """Between requests the connection idles: it may be closed to make room.

        Not while a request it sent ahead (pipelined) waits its turn: h11 parses
        it only now, but httptools parsed it with the first, so its connection has
        a request in progress though no new one starts here. Counted idle, it was
        closed to make room while that request waited for its body (hostile review).

        A request answered before its body was all received (a wrong token, another
        method) has its connection closed: uvicorn kept it open to read and drop the
        rest, and the hook read that rest as the next request's head. Past
        MAX_HEADER_BYTES of it came a second answer, 431, to a request answered
        already, counted as headers_too_large (hostile review). Closing is what the
        413 and the 408 do; a body of any declared size is never read for nothing.
        """
        before = self.cycle
        # The newest request read is the only one whose body may still be arriving; with
        # httptools it may not be the one answered now (pipelined): then it is left be.
        answered_unread = before is not None and before.response_complete and before.more_body
        if answered_unread and not self.transport.is_closing():
            self.config.limits.busy(self)
            self.transport.close()
        super().on_response_complete()  # type: ignore[misc]
        if self.cycle is not before:  # h11: a pipelined request started
            self._headers_complete()
            if _head_size(self.cycle.scope) > self.config.limits.max_header_bytes:
                # Parsed from h11's buffer, where nothing counted it.
                self._refuse_framing(self.cycle, head=True)
        elif self.refused_ahead is not None:
            self._answer_refused_ahead()
        elif self._in_request():  # httptools: one parsed earlier is now answered
            self.config.limits.busy(self)
        elif not self.transport.is_closing():
            limits = self.config.limits
            limits.idle(self)
            if limits.held:
                # A connection waits unread: the idle one longest waiting makes room.
                limits.make_room()

    def pause_writing(self) -> None:
        """The client reads no more for now: from this moment its connection may be closed."""
        super().pause_writing()  # type: ignore[misc]
        self.config.limits.writes_paused(self, self.loop)

    def resume_writing(self) -> None:
        """The client reads again."""
        super().resume_writing()  # type: ignore[misc]
        self.config.limits.writes_resumed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; its place goes to the connection held longest."""
        limits = self.config.limits
        was_held = limits.let_go(self)
        limits.busy(self)
        limits.writes_resumed(self)
        super().connection_lost(exc)  # type: ignore[misc]
        # uvicorn tells only the newest request: with pipelined ones, the request
        # being answered went on writing to the closed transport (uvloop raises;
        # a traceback per answer, hostile review). h11 parses one request at a
        # time, so there the newest is the only one.
        for cycle in self.open_cycles:
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self.open_cycles = ()
        if not was_held:
            self._admit_held()

    def _admit_held(self) -> None:
        limits = self.config.limits
        while limits.held and len(self.connections) - limits.held < limits.max_connections:
            waiting = limits.next_held()
            if waiting.transport.is_closing():
                continue
            waiting._let_in()

    def _let_in(self) -> None:
        data, self.held_data = self.held_data, None
        self.transport.resume_reading()
        self._await_headers()
        if data:
            self.data_received(bytes(data))

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _await_headers(self) -> None:
        # A head's start may have been read already: parsed ahead (httptools, counted),
        # or kept in the parser's buffer (h11).
        self.header_bytes = self.header_bytes if self.parses_ahead else self._unparsed()
        self.config.limits.awaiting_headers(self, self.loop)

    def _headers_complete(self) -> None:
        self.config.limits.busy(self)
        self.framing = 0
        self.header_bytes = 0
        if self.cycle.more_body:
            # Leave the rest of the body in the kernel until the app asks for it: a
            # request waiting for the worker's body budget then holds no more than what
            # came with its headers. uvicorn resumes reading on the app's first receive().
            self.flow.pause_reading()


class OneFramingH11Connection(h11.Connection):
    """h11's server side, refusing a request framed both by Content-Length and by chunks.

    h11 reads such a request by its chunks and keeps the connection open; a
    proxy in front that frames it by its length then sends, as the body, what
    the hook reads as the next request (request smuggling). RFC 9112 (6.3)
    says a server MUST close the connection after such a request; httptools
    refuses it. So does this: uvicorn answers 400 and closes.

    It also serves an absolute-form target (``POST http://host/notifications``,
    RFC 9112 3.2.2: a server MUST accept it) by its path, as httptools does: h11
    handed the whole URL to the routes, which answered 404. And it refuses a
    target with a ``#fragment``, as the hook's httptools protocol does: a client
    never sends one (RFC 9110 4.2.4), h11 answered 404 (or took ``#x`` into the
    query) and httptools dropped it and stored the delivery.

    And it counts the bytes of bodies and their chunk lines it has parsed
    (``progress``), which bound the rest of a body's framing
    (``BoundedProtocol._body_received``).
    """

    #: Bytes of bodies, and of their chunks' own lines, parsed on this connection.
    progress = 0
    #: Bytes of the chunk now in progress, and whether the body now read is chunked.
    chunk = 0
    chunked = False

    #: What the last RemoteProtocolError said, for the log line of its 400.
    refused_why = "unreadable"

    def next_event(self) -> Any:
        """h11's next event; RemoteProtocolError for a request with both framings."""
        try:
            return self._next_event()
        except h11.RemoteProtocolError as exc:
            self.refused_why = str(exc) or type(exc).__name__
            raise

    def _next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Data):
            self.progress += len(event.data)
            if self.chunked:
                self.chunk = len(event.data) if event.chunk_start else self.chunk + len(event.data)
                if event.chunk_end:
                    self.progress += chunk_lines(self.chunk)
        elif isinstance(event, h11.EndOfMessage):
            if self.chunked:
                self.progress += chunk_lines(0)
        elif isinstance(event, h11.Request):
            names = [name for name, _ in event.headers]
            self.chunked = b"transfer-encoding" in names
            if self.chunked and b"content-length" in names:
                raise h11.RemoteProtocolError(
                    "both Content-Length and Transfer-Encoding", error_status_hint=400
                )
            if b"#" in event.target:
                raise h11.RemoteProtocolError("a fragment in the target", error_status_hint=400)
            if not event.target.startswith(b"/") and b"://" in event.target:
                url = urlsplit(event.target)
                event = h11.Request(
                    method=event.method,
                    target=(url.path or b"/") + (b"?" + url.query if url.query else b""),
                    headers=event.headers,
                    http_version=event.http_version,
                )
        return event


class BoundedH11Protocol(BoundedProtocol, H11Protocol):
    """uvicorn's h11 protocol with the hook's bounds."""

    conn: OneFramingH11Connection

    @property
    def progress(self) -> int:
        """Bytes of bodies, and of their chunks' own lines, parsed on this connection."""
        return self.conn.progress

    def _refused_why(self) -> str:
        return self.conn.refused_why

    def _unparsed(self) -> int:
        return len(self.conn.trailing_data[0])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """uvicorn's, with h11's connection refusing requests with two framings."""
        super().__init__(*args, **kwargs)
        self.conn = OneFramingH11Connection(
            h11.SERVER,
            self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE,
        )


try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional, as in uvicorn: h11 serves then
    BoundedHttpToolsProtocol: type[asyncio.Protocol] | None = None
else:

    class HttpToolsIgnoringUpgrades(HttpToolsProtocol):
        """uvicorn's httptools protocol, serving a request that offers another protocol as sent.

        httptools hands everything after the headers of a request with
        ``Connection: upgrade`` and ``Upgrade`` to the new protocol: its body is
        skipped (the request completes empty) and every later byte of the
        connection goes unread. uvicorn performs no upgrade but a websocket one
        (and the hook has no websocket library), so it stored an empty body and
        answered 202, or 400 when the body came in a later read: Java's HTTP
        clients offer ``Upgrade: h2c`` on every new connection (uvicorn issue 2722).
        RFC 9110 lets a server ignore the offer: the request's body is read
        again by a fresh parser, given the request's own framing, and the
        connection goes on in HTTP/1.1. h11 does so already.
        """

        def data_received(self, data: bytes) -> None:
            """uvicorn's, but an upgrade it does not perform is ignored rather than half-done."""
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self.refused_why = str(exc.__context__ or exc) or type(exc).__name__
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            except httptools.HttpParserUpgrade as upgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()  # as h11 says it (limited)
                    self._go_on_in_http11(data[upgrade.args[0] :])

        def _go_on_in_http11(self, rest: bytes) -> None:
            """A fresh parser reads the body of the request just parsed, then what follows."""
            headers = dict(self.headers)
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                framing = b"transfer-encoding: chunked\r\n"
            else:
                framing = b"content-length: %s\r\n" % headers.get(b"content-length", b"0")
            self.parser = httptools.HttpRequestParser(_AfterMadeUpHead(self))
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
            if not self.cycle.response_complete:
                # Not answered yet (its app task has not run): its body is still to come.
                self.cycle.more_body = True
            self.parser.feed_data(b"POST / HTTP/1.1\r\n" + framing + b"\r\n")
            if rest:
                self.data_received(rest)

    class _AfterMadeUpHead:
        """A fresh parser's callbacks: a made-up head's are dropped, all others go to the protocol.

        The head gives the parser the framing of a request already parsed, so
        that it reads (and de-chunks) that request's body; only connections that
        offered an upgrade pay for this extra call per callback.
        """

        def __init__(self, protocol: HttpToolsIgnoringUpgrades) -> None:
            """Forward to ``protocol`` once the made-up head is over."""
            self.protocol = protocol
            self.head_over = False

        def on_message_begin(self) -> None:  # noqa: D102
            if self.head_over:
                self.protocol.on_message_begin()

        def on_url(self, url: bytes) -> None:  # noqa: D102
            if self.head_over:
                self.protocol.on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:  # noqa: D102
            if self.head_over:
                self.protocol.on_header(name, value)

        def on_headers_complete(self) -> None:  # noqa: D102
            if self.head_over:
                self.protocol.on_headers_complete()
            self.head_over = True

        def on_body(self, body: bytes) -> None:  # noqa: D102
            self.protocol.on_body(body)

        def on_chunk_complete(self) -> None:  # noqa: D102
            self.protocol.on_chunk_complete()

        def on_message_complete(self) -> None:  # noqa: D102
            self.protocol.on_message_complete()

    class BoundedHttpToolsProtocol(BoundedProtocol, HttpToolsIgnoringUpgrades):  # type: ignore[no-redef]
        """uvicorn's httptools protocol with the hook's bounds."""

        #: Set when the client sent more than MAX_PIPELINED requests ahead of its answers.
        too_many_ahead = False
        parses_ahead = True

        #: Bytes of bodies, and of their chunks' own lines, parsed on this connection.
        progress = 0
        #: ``progress`` when the chunk now in progress began.
        chunk_began = 0

        def on_body(self, body: bytes) -> None:
            """uvicorn's, counting the body's bytes (the rest of a body section is framing)."""
            self.progress += len(body)
            super().on_body(body)

        def on_chunk_complete(self) -> None:
            """A chunk (the last one: its trailer fields too) is over: its own lines are due."""
            self.progress += chunk_lines(self.progress - self.chunk_began)
            self.chunk_began = self.progress

        def on_headers_complete(self) -> None:
            """Keep every request of the connection until answered (one read may hold many).

            httptools parses all that one read brings (up to 256 KiB): 7,710 GETs
            became 7,710 requests in memory (about 3.5 MB), and keeping this list
            cost a step per request for each one (30 million: the worker answered
            nothing for minutes). Past MAX_PIPELINED waiting, the parse stops here
            and the connection is closed (``send_400_response`` below).
            """
            if len(self.pipeline) >= MAX_PIPELINED:
                self.too_many_ahead = True
                raise PipelinedTooFarError
            why = _head_refused(self.headers, self.parser.get_http_version())
            if why is None and b"#" in self.url:
                why = "a fragment in the target"
            if why is not None:
                raise HeadRefusedError(why)
            self.chunk_began = self.progress
            super().on_headers_complete()
            self.open_cycles = (
                *(cycle for cycle in self.open_cycles if not cycle.response_complete),
                self.cycle,
            )
            self.heads_parsed += _head_size(self.scope)
            self.head_open = False

        def on_message_begin(self) -> None:
            """uvicorn's; a head is open until its fields are complete."""
            self.head_open = True
            super().on_message_begin()

        #: The 400 owed to an unreadable request, written once the requests read before it
        #: are answered.
        refusal: str | None = None
        #: What httptools (or the hook's check of a head) found wrong, for the 400's log line.
        refused_why = "unreadable"

        def _refused_why(self) -> str:
            return self.refused_why

        def send_400_response(self, msg: str) -> None:
            """Close a connection that pipelined too far; uvicorn's 400 to any other request.

            Raised from a parser callback, the error reaches uvicorn as an invalid
            request: its line (limited) says so, then this one says why. No answer is
            written: the client reads none (its queued requests are dropped).

            uvicorn wrote its 400 and closed at once, though requests read whole
            before the unreadable one were still being served: a delivery
            stored, then garbage in the same read, was answered 400 (hostile
            review). Those are answered first now, in order, and the 400 after
            them (``on_response_complete``); a request cut off mid-body by the
            error is the one refused, at once, as before.
            """
            if not self.too_many_ahead:
                if self._answers_owed():
                    self.refusal = msg
                    self.transport.pause_reading()
                else:
                    super().send_400_response(msg)
                return
            limits = self.config.limits
            limits.log.warning(
                "closed a connection from %s that sent more than %d requests ahead of its answers",
                _peer(self),
                MAX_PIPELINED,
            )
            limits.busy(self)
            self.pipeline.clear()
            self.transport.abort()

        def on_response_complete(self) -> None:
            """Start the next request; after the last one read whole, the 400 owed."""
            super().on_response_complete()
            if (
                self.refusal is not None
                and not self._answers_owed()
                and not self.transport.is_closing()
            ):
                BoundedProtocol.send_400_response(self, self.refusal)

        def _answers_owed(self) -> bool:
            """Whether requests read whole wait for answers, and none is cut off mid-body."""
            waiting = [cycle for cycle in self.open_cycles if not cycle.response_complete]
            return bool(waiting) and not any(cycle.more_body for cycle in waiting)


PROTOCOLS: dict[str, type[asyncio.Protocol] | None] = {
    "h11": BoundedH11Protocol,
    "httptools": BoundedHttpToolsProtocol,
}


def protocol_class(parser: str) -> type[asyncio.Protocol]:
    """The bounded protocol for ``parser`` (auto: httptools when installed, as uvicorn picks)."""
    if parser == "auto":
        return BoundedHttpToolsProtocol or BoundedH11Protocol
    chosen = PROTOCOLS[parser]
    if chosen is None:
        raise RuntimeError("HTTP_PARSER=httptools needs the httptools package (uvicorn[standard])")
    return chosen


class LimitedLogConfig(uvicorn.Config):
    """uvicorn's configuration, with the lines a client makes uvicorn write limited.

    uvicorn writes a line for each request its parser refuses and two for
    each upgrade it does not support, however fast they come. It configures
    its logging in the parent and again in each worker process: the limit
    goes on each time.
    """

    #: Seconds between two lines of one kind.
    log_every = 10.0

    def configure_logging(self) -> None:
        """Configure uvicorn's logging, then limit its logger of server lines."""
        super().configure_logging()
        limit_logger("uvicorn.error", self.log_every)


class HookConfig(LimitedLogConfig):
    """uvicorn's configuration plus the hook's connection limits (one copy per worker)."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        """Everything uvicorn takes, and the limits its protocols apply."""
        self.limits = limits
        self.log_every = limits.log_every
        super().__init__(*args, **kwargs)


class AcceptOneAtATime(asyncio.SelectorEventLoop):
    """asyncio's selector loop, accepting one connection per turn of the loop.

    When accept() fails for want of file descriptors, CPython 3.11 goes on
    calling it for the rest of its burst (up to uvicorn's backlog, 2,048) and
    schedules a retry for each failure; each retry re-arms the listener for
    another burst. Under half-open connections that storm took the CPU and
    wrote 166,000 errors in 10 s (tests/test_overload.py). Accepting one
    connection per turn schedules at most one retry per failure; the turns
    are short, so this costs nothing at the CMS's rate or under wrk.
    """

    def _accept_connection(  # type: ignore[override]
        self,
        protocol_factory: Any,
        sock: Any,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super()._accept_connection(  # type: ignore[misc]
            protocol_factory, sock, sslcontext, server, 1, *args, **kwargs
        )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop for the hook (``loop="hook.connections:new_event_loop"``)."""
    return AcceptOneAtATime()


def new_uvloop() -> asyncio.AbstractEventLoop:
    """The uvloop loop for the hook (``loop="hook.connections:new_uvloop"``).

    libuv accepts in C and, out of file descriptors, sheds the waiting
    connections itself (its reserved-descriptor trick) instead of retrying
    in a storm, so the asyncio workaround above is not needed here.
    """
    import uvloop

    return uvloop.new_event_loop()


def loop_factory(choice: str) -> str:
    """The loop factory for ``EVENT_LOOP`` (auto: uvloop when installed, as uvicorn picks)."""
    installed = find_spec("uvloop") is not None
    if choice == "auto":
        choice = "uvloop" if installed else "asyncio"
    if choice == "asyncio":
        return "hook.connections:new_event_loop"
    if not installed:
        raise RuntimeError("EVENT_LOOP=uvloop needs the uvloop package (uvicorn[standard])")
    return "hook.connections:new_uvloop"


def limit_accept_errors(loop: asyncio.AbstractEventLoop, every: float = 10.0) -> None:
    """Write asyncio's "out of system resource" on accept at most once every ``every`` s.

    asyncio pauses accepting for a second when the file limit is reached and
    reports it each time, with a traceback.
    """
    limited = LogLimit(logging.getLogger("asyncio"), every)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = context.get("message", "")
        if message.startswith("socket.accept() out of system resource"):
            limited.log(logging.ERROR, "%s: %s", message, context.get("exception"))
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
