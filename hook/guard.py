"""Who may deliver: a secret path token, a network allowlist, a per-client rate limit.

The CMS cannot sign or add headers, but its listener URL is ours to choose,
so a secret in the path (``/notifications/<token>``) is the one credential it
can carry. All three checks answer before the database is touched.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from hook.ingest import send_json

log = logging.getLogger("hook.guard")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ASGIApp = Any
NOTIFICATIONS = "/notifications"


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


async def _refuse(send: Any, status: int, detail: str, headers: tuple = ()) -> None:
    await send_json(send, status, json.dumps({"detail": detail}).encode(), headers)


class DeliveryGuard:
    """ASGI middleware guarding ``POST /notifications``; every other path passes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        networks: tuple[Network, ...],
        rate: float,
        burst: int,
    ) -> None:
        """Wrap ``app``; a falsy token, no networks or a zero rate turns that check off."""
        self.app = app
        self.token = token.encode()
        self.networks = networks
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Refuse what the checks refuse; hand the rest to the app."""
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(NOTIFICATIONS):
            await self.app(scope, receive, send)
            return
        if self.token:
            supplied = (
                path[len(NOTIFICATIONS) + 1 :].encode()
                if path.startswith(NOTIFICATIONS + "/")
                else b""
            )
            if not hmac.compare_digest(supplied, self.token):
                log.warning("refused a delivery with a missing or wrong token")
                await _refuse(send, 404, "Not Found")
                return
            scope = {**scope, "path": NOTIFICATIONS, "raw_path": NOTIFICATIONS.encode()}
        client = (scope.get("client") or ("", 0))[0]
        if self.networks and not self._allowed(client):
            log.warning("refused a delivery from %s: not in ALLOWED_NETWORKS", client)
            await _refuse(send, 403, "this client may not deliver here")
            return
        if self.buckets is not None and not self.buckets.take(client):
            log.warning("refused a delivery from %s: over the rate limit", client)
            await _refuse(send, 429, "too many deliveries; slow down", ((b"retry-after", b"1"),))
            return
        await self.app(scope, receive, send)

    def _allowed(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.networks)
