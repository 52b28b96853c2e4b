"""Who may deliver: a secret path token, a network allowlist, a per-client rate limit.

The CMS cannot sign or add headers, but its listener URL is ours to choose,
so a secret in the path (``/notifications/<token>``) is the one credential it
can carry. The ``/notifications`` routes ask the guard first, before they
read the body or touch the database.
"""

from __future__ import annotations

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


class DeliveryGuard:
    """The checks, in order: token (404), not a web page (403), allowlist (403), rate (429)."""

    def __init__(
        self,
        *,
        token: str,
        networks: tuple[Network, ...],
        rate: float,
        burst: int,
        log_every: float = 10.0,
    ) -> None:
        """A falsy token, no networks or a zero rate turns that check off."""
        self.token = token.encode()
        self.networks = networks
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None
        # A flood of refused requests must not become a flood of log lines.
        self._log = LogLimit(log, log_every)

    def refuse(
        self, supplied: str | None, client: str | None, fetch_site: bytes | None = None
    ) -> Refusal | None:
        """The refusal for a delivery, or None when it may be stored.

        ``supplied`` is the token in the path (None for plain ``/notifications``);
        without NOTIFY_TOKEN only the plain path exists. ``fetch_site`` is the
        request's Sec-Fetch-Site header: a browser sends it, and no browser
        lets a page set it. The CMS is a program, never a web page: a page
        any browser on the hook's host (or allowed network) loads could
        otherwise POST a change, with no CORS preflight for a text/plain body.
        """
        if self.token or supplied is not None:
            given = b"" if supplied is None else supplied.encode()
            if not self.token or not hmac.compare_digest(given, self.token):
                self._log.warning("refused a delivery with a missing or wrong token")
                return NOT_FOUND
        if fetch_site is not None and fetch_site not in OWN_REQUESTS:
            self._log.warning("refused a delivery a web page sent, from %s", client)
            return FROM_A_WEB_PAGE
        if self.networks and not self._allowed(client):
            self._log.warning("refused a delivery from %s: not in ALLOWED_NETWORKS", client)
            return FORBIDDEN
        if self.buckets is not None and not self.buckets.take(client or ""):
            self._log.warning("refused a delivery from %s: over the rate limit", client)
            return TOO_MANY
        return None

    def _allowed(self, client: str | None) -> bool:
        try:
            address = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)
