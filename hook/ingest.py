"""The batching store behind ``POST /notifications`` (the routes are in ``hook/notifications.py``).

Concurrent deliveries are gathered and stored with one call to
``sync.receive_many`` in one transaction (group commit): a burst costs one
round trip and one WAL flush instead of one per request. Each caller is
answered only after the commit that holds its body, with its own receipt, so
a 2xx still means "stored durably" and a failed batch answers 503 to every
request in it. There is no timer: a batch is whatever arrived while the
previous ones were being stored, so a lone delivery waits for nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger("hook")

# Parameters in binary (%b): psycopg then sends the bodies as they are instead
# of hex-escaping them, and dumps a batch of 8 in 33 us instead of 92.
RECEIVE_MANY = (
    "select inbox_id, status, reasons::text from sync.receive_many("
    "%b::bytea[], %b::text[], %b::text[]::inet[], %b::text[], %b::uuid[])"
)

UNAVAILABLE = "database unavailable; the delivery was not stored, send it again"
REFUSED = "the database refused the delivery; see the hook's log"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request to store: the raw body, the request's metadata, and its key.

    The key goes with the delivery wherever it is stored (inbox or spool), so
    a delivery whose commit succeeded but whose reply was lost, and which was
    therefore spooled too, is stored only once.
    """

    body: bytes
    content_type: str | None
    client_addr: str | None
    user_agent: str | None
    key: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the database answered for one delivery; reasons stay JSON text."""

    inbox_id: int | None  # None while a delivery waits in the spool
    status: str
    reasons_json: str

    def reasons(self) -> list[dict[str, Any]]:
        """The reasons as Python objects (parsed on demand: the hot path never needs them)."""
        return json.loads(self.reasons_json)

    def to_json(self) -> bytes:
        """The 202 answer. status is one of a few plain words and reasons is JSON already."""
        return (
            f'{{"inbox_id":{"null" if self.inbox_id is None else self.inbox_id},'
            f'"status":"{self.status}",'
            f'"reasons":{self.reasons_json}}}'.encode()
        )


class Store(Protocol):
    """Anything that stores a delivery and returns its receipt, or raises StoreError."""

    async def store(self, delivery: Delivery) -> Receipt:  # noqa: D102
        ...


class StoreError(Exception):
    """The delivery was not stored; ``status`` and ``detail`` are the answer to give."""

    def __init__(self, status: int, detail: str, rolled_back: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        #: The database refused the call, so none of the batch was stored.
        self.rolled_back = rolled_back


class BatchingStore:
    """Stores deliveries in batches, at most ``concurrency`` batches in flight at once."""

    def __init__(self, pool: AsyncConnectionPool, max_batch: int, concurrency: int) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._queue: list[tuple[Delivery, asyncio.Future[Receipt]]] = []
        self._in_flight = 0
        # The loop keeps only weak references to tasks: hold them until they finish.
        self._drainers: set[asyncio.Task[None]] = set()

    async def store(self, delivery: Delivery) -> Receipt:
        """Store one delivery durably and return its receipt, or raise StoreError."""
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._queue.append((delivery, future))
        if self._in_flight < self._concurrency:
            self._in_flight += 1
            self._drainers.add(asyncio.create_task(self._drain()))
        return await future

    async def _drain(self) -> None:
        """Store what is queued, batch after batch, until the queue is empty."""
        try:
            # Let the requests already read in this turn of the loop join the batch.
            await asyncio.sleep(0)
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._store_batch(batch)
        finally:
            self._in_flight -= 1
            task = asyncio.current_task()
            if task is not None:
                self._drainers.discard(task)

    async def _store_batch(self, batch: list[tuple[Delivery, asyncio.Future[Receipt]]]) -> None:
        deliveries = [d for d, _ in batch]
        try:
            receipts = await self._call(deliveries)
        except StoreError as exc:
            failure = exc
        except Exception:
            # Whether it committed is unknown: answer 500, never 2xx, and do not store again.
            log.exception("storing %d deliveries failed unexpectedly", len(batch))
            failure = StoreError(500, REFUSED)
        else:
            for (_, future), receipt in zip(batch, receipts, strict=True):
                if not future.done():
                    future.set_result(receipt)
            return
        if failure.rolled_back and failure.status == 500 and len(batch) > 1:
            # One delivery the database refuses must not cost the others theirs.
            for item in batch:
                await self._store_batch([item])
            return
        if failure.status == 503:
            # Deliveries queued behind a batch the database could not take must not
            # overtake it into the database: they fail with it, in order (and are
            # spooled in that order when there is a spool).
            batch = batch + self._queue
            self._queue.clear()
        for _, future in batch:
            if not future.done():
                future.set_exception(StoreError(failure.status, failure.detail))

    async def _call(self, deliveries: list[Delivery]) -> list[Receipt]:
        """One call, one transaction: returns only after the commit."""
        params = (
            [d.body for d in deliveries],
            [d.content_type for d in deliveries],
            [d.client_addr for d in deliveries],
            [d.user_agent for d in deliveries],
            [d.key for d in deliveries],
        )
        size = sum(len(d.body) for d in deliveries)
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(RECEIVE_MANY, params)
                rows = await cursor.fetchall()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.error(
                "database unavailable, %d deliveries (%d bytes) were not stored: %s",
                len(deliveries),
                size,
                exc,
            )
            raise StoreError(503, UNAVAILABLE) from exc
        except psycopg.Error as exc:
            log.error("database refused %d deliveries (%d bytes): %s", len(deliveries), size, exc)
            raise StoreError(500, REFUSED, rolled_back=True) from exc
        if len(rows) != len(deliveries):
            log.error("sync.receive_many returned %d receipts for %d", len(rows), len(deliveries))
            raise StoreError(500, REFUSED)
        return [Receipt(*row) for row in rows]
