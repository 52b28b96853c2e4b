"""The merger: applies what the hook stored, right after the answers went out.

``POST /notifications`` waits only for its body to be committed
(``sync.store_many``). Each committed batch pokes the merger, which calls
``sync.apply_received`` (the rules and the merge, in the database) until
nothing is pending; batches that commit while a merge runs are applied
together by the next one, so a burst costs a few large merges instead of
many small ones (ADR 0022). Under a steady stream a merge would still start
as soon as the previous one ends, with a dozen deliveries; a merge call
costs the database about 2 ms whatever it holds, so after a merge of at
least ``BUSY`` deliveries the merger waits ``linger`` seconds for more
(ADR 0025). The CMS's own pace never reaches ``BUSY``: its changes are
applied at once. A sweep every ``every`` seconds also takes what
another process stored, or what a crash left pending. Every guarantee of
the order lives in the database: several workers and replicas merge at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hook.ingest import DatabaseDownError, DatabaseState, Receipt, not_migrated_hint
from hook.log_limit import LogLimit

log = logging.getLogger("hook.merger")

APPLY_RECEIVED = "select inbox_id, status, reasons::text from sync.apply_received(%s)"

#: A merge that applied at least this many deliveries found them arriving faster than it merges.
BUSY = 4

#: Seconds a stopping merger may spend applying what was stored before the stop.
CLOSE_WAIT = 5.0


class Merger:
    """One task per worker that applies pending deliveries when poked, and on a timer."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        database: DatabaseState,
        limit: int,
        every: float,
        observe: Callable[[Receipt], None] = lambda receipt: None,
        linger: float = 0.0,
    ) -> None:
        """Merge up to ``limit`` per call, sweep every ``every`` s, wait ``linger`` s when busy."""
        self._pool = pool
        self._database = database
        self._limit = limit
        self._every = every
        self._linger = linger
        self._observe = observe
        #: A database that refuses every merge must not write a line per commit.
        self._log = LogLimit(log, 10.0)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start merging (a sweep at once takes what an earlier process left pending)."""
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def poke(self) -> None:
        """Deliveries were committed: merge them as soon as the current merge ends."""
        self._wake.set()

    async def close(self, wait: float = CLOSE_WAIT) -> None:
        """Apply what is pending, then stop; after ``wait`` s, stop anyway (it stays pending)."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), wait)
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._every)
            self._wake.clear()
            stopping = self._stopping  # the last pass applies what was committed before close()
            while (applied := await self._merge_or_log()) == self._limit:
                pass  # a full batch: more may be pending
            if stopping:
                return
            if applied is None:
                # Refused or unreachable: not again at every commit, only at the next sweep.
                await asyncio.sleep(self._every)
            elif applied >= BUSY and self._linger:
                # Let the stream gather: the next merge takes what arrives meanwhile at once.
                await asyncio.sleep(self._linger)

    async def _merge_or_log(self) -> int | None:
        """``merge_once``, and whatever else goes wrong is logged: the merger never stops."""
        try:
            return await self.merge_once()
        except Exception as exc:
            self._log.log(
                logging.ERROR, "the merger failed unexpectedly; the next sweep tries again: %r", exc
            )
            return None

    async def merge_once(self) -> int | None:
        """One ``sync.apply_received`` call: how many deliveries it applied, None if it failed.

        What it could not apply stays pending for the next sweep.
        """
        try:
            async with self._database.connection(self._pool) as conn:
                cursor = await conn.execute(APPLY_RECEIVED, [self._limit])
                rows = await cursor.fetchall()
        except DatabaseDownError:
            return None  # the spool and the probe deal with the outage
        except (psycopg.Error, PoolTimeout) as exc:
            self._log.log(
                logging.ERROR,
                "applying the stored deliveries failed%s; they stay pending and the next sweep "
                "tries again: %s",
                not_migrated_hint(exc),
                exc,
            )
            return None
        for row in rows:
            self._observe(Receipt(*row))
        return len(rows)
