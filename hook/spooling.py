"""Keep deliveries when the database is down: spool them, then drain them in order.

A delivery goes to the database as usual. When the database cannot be
reached, it is appended to the local spool and fsynced, and only then
answered 202 with status ``spooled``. While anything is spooled, new
deliveries are spooled behind it, so receipt order survives the outage. A
background task drains the spool into the inbox through
``sync.receive_spooled`` (idempotent on each record's key) as soon as the
database answers, oldest first: first spools left by dead hook processes,
then this process's own.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hook.ingest import BatchingStore, Delivery, Receipt, StoreError
from hook.spool import Spool, SpooledDelivery, read_records

log = logging.getLogger("hook.spool")

RECEIVE_SPOOLED = (
    "select inbox_id, status, reasons::text from sync.receive_spooled(%s, %s, %s, %s, %s, %s)"
)


class SpoolingStore:
    """A store that falls back to the spool file when the database is unreachable."""

    def __init__(
        self, inner: BatchingStore, pool: AsyncConnectionPool, spool: Spool, retry_every: float
    ) -> None:
        """Wrap ``inner``; drain ``spool`` through ``pool`` every ``retry_every`` s when needed."""
        self._inner = inner
        self._pool = pool
        self.spool = spool
        self._retry_every = retry_every
        self._lock = asyncio.Lock()  # orders appends against the drain's final clear
        self._wake = asyncio.Event()
        self._drained = 0  # records of our own file already in the inbox
        self._orphan_depth = 0  # records left by dead processes we claimed, not yet stored
        self._claimed: list[tuple[Path, int]] = []  # their files, locked until drained
        self._reserved = 0  # deliveries decided for the spool whose append is under way
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Deliveries answered (or about to be) from the spool, not yet in the inbox."""
        return self.spool.depth + self._orphan_depth + self._reserved

    def start(self) -> None:
        """Claim what dead processes left (other workers skip it), and start draining."""
        self._claimed = self.spool.claim_orphans()
        self._orphan_depth = sum(len(read_records(path)) for path, _ in self._claimed)
        self._task = asyncio.create_task(self._drain_forever())
        self._wake.set()

    async def close(self) -> None:
        """Stop draining; what is still spooled stays on disk for the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, fd in self._claimed:
            os.close(fd)  # unlocked: the next hook to start claims them
        self.spool.close()

    async def store(self, delivery: Delivery) -> Receipt:
        """Store in the database, or spool when it is down or older deliveries are spooled."""
        if self.depth == 0:  # nothing older waits in a spool
            try:
                return await self._inner.store(delivery)
            except StoreError as exc:
                if exc.status != 503:
                    raise
        record = SpooledDelivery(
            delivery.key,
            datetime.now(UTC),
            delivery.body,
            delivery.content_type,
            delivery.client_addr,
            delivery.user_agent,
        )
        # Counted before the first await, so a delivery arriving meanwhile
        # queues behind this one instead of overtaking it into the database.
        self._reserved += 1
        try:
            async with self._lock:
                await asyncio.to_thread(self.spool.append, record)
        except OSError as exc:
            log.error("could not spool a delivery of %d bytes: %s", len(delivery.body), exc)
            raise StoreError(503, "database unavailable and the spool cannot be written") from exc
        finally:
            self._reserved -= 1
        self._wake.set()
        return Receipt(None, "spooled", "[]")

    async def _drain_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain_orphans()
                await self._drain_own()
            except StoreError:
                await asyncio.sleep(self._retry_every)
                self._wake.set()
            except Exception:
                # The drain must outlive any surprise: what is spooled stays on disk.
                log.exception("draining the spool failed; retrying")
                await asyncio.sleep(self._retry_every)
                self._wake.set()

    async def _drain_orphans(self) -> None:
        while self._claimed:
            path, fd = self._claimed[0]
            records = read_records(path)
            for record in records:
                await self._store(record)
            os.unlink(path)
            os.close(fd)
            self._claimed.pop(0)
            self._orphan_depth = max(0, self._orphan_depth - len(records))
            log.info("drained %d deliveries left in %s by a stopped hook", len(records), path)

    async def _drain_own(self) -> None:
        while True:
            async with self._lock:
                records = self.spool.records()
                if self._drained >= len(records):
                    if records or self.spool.depth:
                        await asyncio.to_thread(self.spool.clear)
                        log.info("spool drained: %d deliveries stored", self._drained)
                    self._drained = 0
                    return
            for record in records[self._drained :]:
                await self._store(record)
                self._drained += 1

    async def _store(self, record: SpooledDelivery) -> None:
        params = (
            record.key,
            record.received_at,
            record.body,
            record.content_type,
            record.client_addr,
            record.user_agent,
        )
        try:
            async with self._pool.connection() as conn:
                await conn.execute(RECEIVE_SPOOLED, params)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreError(503, "database still unavailable") from exc
        except psycopg.Error as exc:
            log.error("the database refused spooled delivery %s: %s", record.key, exc)
            raise StoreError(500, "the database refused a spooled delivery") from exc


def open_spool(directory: str) -> Spool:
    """The spool of this process in ``directory``, or a clear error saying what to fix."""
    try:
        return Spool(Path(directory))
    except OSError as exc:
        raise RuntimeError(
            f"cannot use SPOOL_DIR={directory!r} ({exc}); make it a writable directory on a "
            "durable disk, or set SPOOL_DIR= (empty) to answer 503 instead of spooling"
        ) from exc
