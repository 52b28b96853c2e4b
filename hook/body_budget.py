"""A byte budget for request bodies held in memory by one worker.

Each delivery reserves the bytes of its body (its Content-Length, or the
largest body allowed when it does not say) before it reads it, and gives
them back once it is answered. Past the budget a delivery waits its turn,
first come first served: the budget never refuses it, so memory stays
bounded while every delivery is still stored (its ``BODY_TIMEOUT``, counted
from its headers, may end the wait: ``hook/notifications.py``).

A small body (``SMALL_BODY_BYTES`` at most, as every CMS delta is) never
waits: senders that declared megabytes and trickled them held the whole
budget, and real deliveries queued behind them for minutes (hostile
review). Small bodies are bounded by the connections instead: at most
``MAX_CONNECTIONS`` x 16 KiB.
"""

from __future__ import annotations

import asyncio
from collections import deque

#: Bodies of at most this many bytes are taken past the budget, never queued.
SMALL_BODY_BYTES = 16 * 1024


class BodyBudget:
    """Bytes of bodies in flight, at most ``total``; past it, reservations wait in order."""

    def __init__(self, total: int, small: int = 0) -> None:
        """A budget of ``total`` bytes (at least the largest body, or that body waits forever).

        Reservations of at most ``small`` bytes are taken at once, even past it.
        """
        self.total = total
        self.small = small
        self.available = total
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Deliveries waiting for bytes right now."""
        return sum(1 for _, future in self._waiting if not future.done())

    def try_reserve(self, size: int) -> bool:
        """Take ``size`` bytes if that needs no wait (a small body, or room and no queue)."""
        if size <= self.small or (not self._waiting and size <= self.available):
            self.available -= size
            return True
        return False

    async def reserve(self, size: int) -> None:
        """Take ``size`` bytes, waiting behind earlier reservations until they fit."""
        if self.try_reserve(size):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((size, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(size)  # granted just before the cancellation arrived
            else:
                future.cancel()
                self._grant()  # the ones behind it may fit now
            raise

    def release(self, size: int) -> None:
        """Give ``size`` bytes back and let waiting reservations that now fit go on."""
        self.available += size
        self._grant()

    def _grant(self) -> None:
        while self._waiting:
            size, future = self._waiting[0]
            if future.done():  # cancelled while waiting
                self._waiting.popleft()
                continue
            if size > self.available:
                return
            self._waiting.popleft()
            self.available -= size
            future.set_result(None)
