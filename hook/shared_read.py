"""One database read shared by the requests of a worker that want it at the same time.

``/status`` and ``/metrics`` are served without a token, and each request ran
a report in the database on the pool that deliveries use: 30 clients
reloading ``/status`` (260 ms a report with 200,000 deliveries in the last
three hours) held the pool, and deliveries waited seconds for it or were
spooled (hostile review, measured). A ``SharedRead`` runs at most one read at
a time: a request that comes while one is in flight waits for its result, and
a result (or its failure) is reused for ``fresh_for`` seconds after it came.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from fastapi import FastAPI

T = TypeVar("T")


class SharedRead(Generic[T]):
    """At most one ``read()`` in flight per worker; its outcome serves every caller meanwhile."""

    def __init__(self, read: Callable[[], Awaitable[T]], fresh_for: float) -> None:
        """``read`` is the database call; its outcome is reused for ``fresh_for`` seconds."""
        self._read = read
        self.fresh_for = fresh_for
        self._in_flight: asyncio.Future[T] | None = None
        self._done: asyncio.Future[T] | None = None
        self._done_at = 0.0

    async def get(self) -> T:
        """The outcome of the read in flight, of a fresh enough one, or of a new one."""
        loop = asyncio.get_running_loop()
        if self._done is not None and loop.time() - self._done_at < self.fresh_for:
            return self._done.result()
        if self._in_flight is None:
            self._in_flight = asyncio.ensure_future(self._read())
            self._in_flight.add_done_callback(self._finished)
        # Shielded: a caller that goes away does not cancel the read the others await.
        return await asyncio.shield(self._in_flight)

    def _finished(self, future: asyncio.Future[T]) -> None:
        self._in_flight = None
        if not future.cancelled():
            future.exception()  # retrieved here, so a failure nobody awaited is not logged
            self._done, self._done_at = future, asyncio.get_running_loop().time()


async def read_row(app: FastAPI, query: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """One row of a public page's report.

    The hook's pool gives each statement DB_TIMEOUT (hook/app.py): a DBA's
    lock on a table the report reads held the page, and a pool connection,
    for as long as the lock lasted (hostile review); cancelled, the read
    fails like any database error and the page says 503. Through the
    database state: refused at once, not after the timeout, while the
    database is down.
    """
    async with app.state.database.connection(app.state.pool) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchone()
