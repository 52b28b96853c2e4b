"""Who may deliver: a secret path token, not a web page, a network allowlist, a rate limit.

The CMS cannot sign or add headers, but its listener URL is ours to choose,
so a secret in the path (``/notifications/<token>``) is the one credential it
can carry. The ``/notifications`` routes ask the guard first, before they
read the body or touch the database.

Without the token, a web page in a browser that can reach the hook must not
deliver either: ``Sec-Fetch-Site`` and ``Origin`` say a request comes from
another site's page, and the ``Host`` header says when a page reached the
hook through a name it rebound to the hook's address (DNS rebinding), which
makes the page's requests same-origin in the browser's eyes (ADR 0009).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from hook.log_limit import LogLimit
from hook.settings import Network

log = logging.getLogger("hook.guard")


@dataclass
class TokenBuckets:
    """A token bucket per client address, bounded in how many clients it remembers."""

    rate: float
    burst: int
    max_clients: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def take(self, client: str, now: float | None = None) -> bool:
        """Take one token for ``client``; False when its bucket is empty."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a delivery is refused: the status, the detail to answer, extra headers."""

    status: int
    detail: str
    headers: tuple[tuple[str, str], ...] = ()


NOT_FOUND = Refusal(404, "Not Found")
FORBIDDEN = Refusal(403, "this client may not deliver here")
FROM_A_WEB_PAGE = Refusal(403, "a web page may not deliver here")
#: Sec-Fetch-Site values of a request a browser makes for its user, or for the hook's own
#: /docs page; absent from every request a program such as the CMS makes.
OWN_REQUESTS = frozenset({b"same-origin", b"none"})
TOO_MANY = Refusal(429, "too many deliveries; slow down", (("retry-after", "1"),))
NOT_THIS_HOST = Refusal(
    403, "this host name is not one the hook answers deliveries to (ALLOWED_HOSTS)"
)
#: Host names a page cannot rebind: a browser resolves these to loopback itself.
LOOPBACK_NAMES = frozenset({"localhost"})


def host_name(host: bytes) -> str:
    """The name in a Host header, without its port, in lower case, without a final dot."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):  # an IPv6 literal, [::1]:9098
        return text[1:].partition("]")[0]
    name, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or ":" in name:
        name = text
    return name.rstrip(".")


class HostCheck:
    """Which ``Host`` headers may come with a delivery when no token guards it.

    A page that rebinds its own name (``evil.example``) to the hook's address
    is same-origin with the hook in the browser, and its requests say so
    (``Sec-Fetch-Site: same-origin``). Only its ``Host`` header gives it away:
    the browser sends the page's name. So a delivery must name the hook by an
    IP address (which no one can rebind), ``localhost``, or a name it was
    told to answer to. The verdict per header value is kept (at most 256 of
    them), so a delivery pays a dictionary lookup.
    """

    def __init__(self, names: frozenset[str], remember: int = 256) -> None:
        """``names``: the host names besides IP addresses and localhost; ``*`` for any."""
        self.any = "*" in names
        self.names = LOOPBACK_NAMES | names
        self._remember = remember
        self._verdicts: dict[bytes, bool] = {}

    def allows(self, host: bytes | None) -> bool:
        """Whether a delivery with this Host header (None: none sent) may be stored."""
        if host is None or self.any:
            return True  # no browser sends a request without one
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = self._judge(host_name(host))
            if len(self._verdicts) < self._remember:
                self._verdicts[host] = verdict
        return verdict

    def _judge(self, name: str) -> bool:
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def same_origin(origin: bytes, host: bytes | None) -> bool:
    """Whether an Origin header names the site the request was sent to (its Host)."""
    _, sep, netloc = origin.partition(b"://")
    return bool(sep) and host is not None and netloc.lower() == host.strip().lower()


class DeliveryGuard:
    """The checks, in order: token (404), not a web page (403), allowlist (403), rate (429)."""

    def __init__(
        self,
        *,
        token: str,
        networks: tuple[Network, ...],
        rate: float,
        burst: int,
        hosts: frozenset[str] = frozenset(),
        log_every: float = 10.0,
    ) -> None:
        """A falsy token, no networks or a zero rate turns that check off.

        ``hosts`` are the names deliveries may be sent to without a token,
        besides IP addresses and localhost (``*``: any).
        """
        self.token = token.encode()
        self.hosts = HostCheck(hosts)
        self.networks = networks
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None
        # A flood of refused requests must not become a flood of log lines.
        self._log = LogLimit(log, log_every)

    def refuse(
        self,
        supplied: str | None,
        client: str | None,
        fetch_site: bytes | None = None,
        host: bytes | None = None,
        origin: bytes | None = None,
    ) -> Refusal | None:
        """The refusal for a delivery, or None when it may be stored.

        ``supplied`` is the token in the path (None for plain ``/notifications``);
        without NOTIFY_TOKEN only the plain path exists. ``fetch_site``,
        ``host`` and ``origin`` are the request's Sec-Fetch-Site, Host and
        Origin headers. The CMS is a program, never a web page: a page any
        browser on the hook's host (or allowed network) loads could
        otherwise POST a change, with no CORS preflight for a text/plain
        body. A browser sends Sec-Fetch-Site (none before 2019 to 2023, by
        browser), and Origin with any POST a page makes; no page can set
        either. Without a token, Origin and Host are checked too: a page
        does not know the token, so with one they would add nothing.
        """
        if self.token or supplied is not None:
            given = b"" if supplied is None else supplied.encode()
            if not self.token or not hmac.compare_digest(given, self.token):
                self._log.warning("refused a delivery with a missing or wrong token")
                return NOT_FOUND
        if fetch_site is not None and fetch_site not in OWN_REQUESTS:
            self._log.warning("refused a delivery a web page sent, from %s", client)
            return FROM_A_WEB_PAGE
        if not self.token:
            if origin is not None and not same_origin(origin, host):
                self._log.warning(
                    "refused a delivery a web page of another site sent, from %s", client
                )
                return FROM_A_WEB_PAGE
            if not self.hosts.allows(host):
                self._log.warning(
                    "refused a delivery sent to host %r, from %s: not in ALLOWED_HOSTS",
                    host_name(host or b""),
                    client,
                )
                return NOT_THIS_HOST
        if self.networks and not self._allowed(client):
            self._log.warning("refused a delivery from %s: not in ALLOWED_NETWORKS", client)
            return FORBIDDEN
        if self.buckets is not None and not self.buckets.take(bucket_key(client)):
            self._log.warning("refused a delivery from %s: over the rate limit", client)
            return TOO_MANY
        return None

    def _allowed(self, client: str | None) -> bool:
        return in_networks(client, self.networks)


def _bucket_key(client: str | None) -> str:
    """Whose bucket a client's request takes from: its IPv4 address, or its IPv6 /64.

    An IPv6 host is given a /64 (RFC 4291's subnet size; SLAAC and privacy
    addresses pick any of its 2^64 addresses): keyed by the address, a sender
    that took a new one per request had a full bucket each time, and the limit
    held nothing back (hostile review). Unknown addresses share one bucket.
    """
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


#: A hook hears from few addresses: the key is computed once per address (of 4,096).
bucket_key = functools.lru_cache(maxsize=4096)(_bucket_key)


def in_networks(client: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether a client address (``client_address``'s: None when unknown) is in ``networks``.

    ALLOWED_NETWORKS for a delivery, STATUS_DETAIL_FROM for the status page's detail.
    """
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return False
    return any(address in network for network in networks)
