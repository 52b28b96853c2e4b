"""The batching store behind ``POST /notifications`` (the routes are in ``hook/notifications.py``).

Concurrent deliveries are gathered and stored with one call to
``sync.store_many`` in one transaction (group commit): a burst costs one
round trip and one WAL flush instead of one per request. Each caller is
answered only after the commit that holds its body, with its own receipt, so
a 2xx still means "stored durably" and a failed batch answers 503 to every
request in it. Each commit then pokes the merger (``hook/merger.py``), which
applies the stored deliveries right after the answers went out. There is no
timer: a batch is whatever arrived while the previous ones were being
stored, so a lone delivery waits for nothing.
``DatabaseState`` knows when the database is down, so an outage is answered
(or spooled) at once instead of after the pool's timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger("hook")

# Parameters in binary (%b): psycopg then sends the bodies as they are instead
# of hex-escaping them, and dumps a batch of 8 in 33 us instead of 92.
STORE_MANY = (
    "select inbox_id, status, reasons::text from sync.store_many("
    "%b::bytea[], %b::text[], %b::text[], %b::text[], %b::uuid[])"
)

UNAVAILABLE = "database unavailable; the delivery was not stored, send it again"
REFUSED = "the database refused the delivery; see the hook's log"

#: SQLSTATEs that say the database cannot take anything right now, whatever the record:
#: psycopg's OperationalError covers connections (08), rollbacks (40), resources (53),
#: locks (55), operator intervention (57) and system errors (58); a read-only
#: transaction (25006, a standby after a failover, or maintenance), a missing privilege,
#: function, table, schema or database (a deployment in progress, or a database not
#: migrated yet) are outages too, never the delivery's fault. So is an internal error
#: (XX000): a store that began on the old code and waited for a deploy's locks resumes,
#: after the code load commits, in functions compiled against the composite types it
#: dropped and made again ("cache lookup failed for type"); answered 500, every deploy
#: under load lost a few deliveries (hostile review). A store stores bytes: nothing a
#: body holds makes it fail so. A delivery refused with one of them is spooled, not lost.
OUTAGE_SQLSTATES = frozenset({"25006", "42501", "42883", "42P01", "3F000", "3D000", "XX000"})

#: Seconds a store past its deadline is given to be cancelled on the server before its
#: connection is closed instead. A live server answers a cancel request at once; a hung
#: one never does, and psycopg would wait for it 5 s and then 5 s more for the query.
CANCEL_GRACE = 1.0

#: SQLSTATEs that most often mean the database is not migrated (or not to this release).
NOT_MIGRATED_SQLSTATES = frozenset({"42883", "42P01", "3F000"})


def not_migrated_hint(exc: BaseException) -> str:
    """What to do when ``exc`` says an object of ours is missing; empty otherwise."""
    if getattr(exc, "sqlstate", None) not in NOT_MIGRATED_SQLSTATES:
        return ""
    return (
        " (is this database migrated to this release? As its owner: python -m hook.migrate"
        " apply --batch "
        '--database "postgresql+psycopg://owner@host/fragrancedb" migrations)'
    )


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
    #: When its body was complete: the receipt time it keeps if it is spooled.
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


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


class DatabaseDownError(Exception):
    """A connection attempt has failed and none has succeeded since: the database is down."""


#: The pool's own reconnection gives up after this many seconds (two attempts) instead of
#: backing off for minutes; from then on every request for a connection (a delivery, the
#: probe, the spool's drain) makes a fresh attempt, so a recovery is noticed at once.
RECONNECT_TIMEOUT = 1.0


class DatabaseState:
    """What this process knows about the database: down from a failed connection attempt on.

    The pool connects through ``connection_class()``, which reports every
    attempt here. Once one fails, ``connection()`` refuses at once instead of
    waiting ``DB_TIMEOUT`` for a pool that cannot fill, and a probe asks the
    pool for a connection every ``probe_every`` seconds; the first attempt
    that succeeds ends the outage. A pool that is merely busy (every
    connection in use, the database up) is still waited for.
    """

    def __init__(self, probe_every: float = 1.0) -> None:
        self.probe_every = probe_every
        self.down = False
        self._down = asyncio.Event()
        self._up = asyncio.Event()
        self._up.set()
        self._pool: AsyncConnectionPool | None = None
        self._probe: asyncio.Task[None] | None = None
        self._returning: set[asyncio.Future[None]] = set()
        self._verifying: asyncio.Task[None] | None = None
        self._verified_at = float("-inf")

    def connection_class(self) -> type[psycopg.AsyncConnection[Any]]:
        """A connection class for the pool that reports each connection attempt here."""
        state = self

        class ReportingConnection(psycopg.AsyncConnection[Any]):
            @classmethod
            async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # noqa: D102
                try:
                    conn = await super().connect(conninfo, **kwargs)
                except psycopg.OperationalError as exc:
                    state.connection_failed(exc)
                    raise
                state.connection_made()
                return conn

        return ReportingConnection

    def attach(self, pool: AsyncConnectionPool) -> None:
        """Probe through ``pool`` whenever the database is down (from now on)."""
        self._pool = pool
        self._start_probe()

    def _start_probe(self) -> None:
        if self.down and self._pool is not None and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_up(self._pool))

    def connection_failed(self, exc: BaseException) -> None:
        """A connection attempt failed (or a connection was lost): the database is down."""
        if not self.down:
            log.error("database unreachable, spooling (or 503) until it answers again: %s", exc)
        self.down = True
        self._up.clear()
        self._down.set()
        self._start_probe()

    def connection_made(self) -> None:
        """A connection attempt succeeded: the database is up."""
        if self.down:
            log.warning("database reachable again")
        self.down = False
        self._down.clear()
        self._up.set()

    def verify(self, every: float) -> None:
        """Check with one query that the database answers, at most once per ``every`` seconds.

        For a process that has not used the database for a while (its
        deliveries went to the spool behind others): a failed check marks it
        down at once, as a failed delivery would.
        """
        loop = asyncio.get_running_loop()
        if self._pool is None or self.down or loop.time() < self._verified_at + every:
            return
        if self._verifying is not None and not self._verifying.done():
            return
        self._verified_at = loop.time()
        self._verifying = loop.create_task(self._check(self._pool))

    async def _check(self, pool: AsyncConnectionPool) -> None:
        with suppress(psycopg.Error, PoolTimeout, DatabaseDownError):
            async with self.connection(pool) as conn:
                await conn.execute("select 1")

    async def wait_up(self, timeout: float) -> None:
        """Return once the database is up, or after ``timeout`` seconds."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout)

    def _give_back(self, pool: AsyncConnectionPool) -> Callable[[asyncio.Future[Any]], None]:
        """A callback returning a connection that arrived after its requester gave up on it."""

        def give_back(getting: asyncio.Future[Any]) -> None:
            if not getting.cancelled() and getting.exception() is None:
                task = asyncio.ensure_future(pool.putconn(getting.result()))
                self._returning.add(task)
                task.add_done_callback(self._returning.discard)

        return give_back

    async def close(self) -> None:
        """Stop probing (before the pool closes)."""
        self._pool = None
        tasks = [t for t in (self._probe, self._verifying) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _probe_until_up(self, pool: AsyncConnectionPool) -> None:
        while self.down and not pool.closed:
            try:
                async with pool.connection(timeout=self.probe_every) as conn:
                    await conn.execute("select 1")
            except (psycopg.Error, PoolTimeout):
                await asyncio.sleep(self.probe_every)
            else:
                self.connection_made()  # an idle pooled connection answered, not only a new one

    @asynccontextmanager
    async def connection(self, pool: AsyncConnectionPool) -> AsyncIterator[Any]:
        """A pooled connection; DatabaseDownError at once (not after the pool's timeout) when down.

        A query that finds its connection lost also marks the database down,
        so the probe checks it before the next delivery waits.
        """
        if self.down:
            raise DatabaseDownError("the database is down (a connection attempt failed)")
        getting = asyncio.ensure_future(pool.getconn())
        went_down = asyncio.ensure_future(self._down.wait())
        try:
            await asyncio.wait({getting, went_down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            went_down.cancel()
            gave_up = not getting.done()
            if gave_up:  # the database went down first, or we are cancelled
                getting.cancel()
                getting.add_done_callback(self._give_back(pool))
        if gave_up:
            raise DatabaseDownError("the database is down (a connection attempt failed)")
        conn = getting.result()  # PoolTimeout: a busy pool, waited for in full
        try:
            async with conn:
                yield conn
        except psycopg.OperationalError as exc:
            if conn.broken or conn.closed:
                self.connection_failed(exc)
            raise
        finally:
            await pool.putconn(conn)


async def let_go(task: asyncio.Future[Any]) -> None:
    """Cancel a store; after CANCEL_GRACE, again: psycopg then closes its connection."""
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_GRACE)
    if not task.done():
        task.cancel()
        await asyncio.wait({task})


T = TypeVar("T")


class DeadlineError(TimeoutError):
    """A database call outlasted its deadline and was let go (cancelled, its connection closed)."""


async def within(deadline: float, call: Awaitable[T]) -> T:
    """Await a database call at most ``deadline`` s, then let it go and raise DeadlineError.

    A caller cancelled meanwhile lets it go too. One that answered while it
    was being let go is returned after all (its key, or its transaction,
    says whether it committed).
    """
    task = asyncio.ensure_future(call)
    try:
        await asyncio.wait({task}, timeout=deadline)
    except asyncio.CancelledError:
        await let_go(task)
        raise
    if not task.done():
        await let_go(task)
        if task.cancelled() or task.exception() is not None:
            raise DeadlineError
    return task.result()


class BatchingStore:
    """Stores deliveries in batches, at most ``concurrency`` batches in flight at once."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        max_batch: int,
        concurrency: int,
        database: DatabaseState | None = None,
        on_stored: Callable[[], None] = lambda: None,
        deadline: float | None = None,
    ) -> None:
        self._pool = pool
        #: Seconds a store may take before it counts as an outage (None: no bound).
        self._deadline = deadline
        #: Called after each batch commits (the merger's poke).
        self._on_stored = on_stored
        #: Down or up, as this process's connection attempts found it (shared with the spool).
        self.database = database or DatabaseState()
        self.database.attach(pool)
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
            self._on_stored()
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

    async def _store_by_deadline(
        self, conn: psycopg.AsyncConnection[Any], params: tuple[list[Any], ...]
    ) -> list[Any]:
        """The store's rows; TimeoutError once it outlasts the deadline.

        The server's statement_timeout (hook/app.py) ends a slow store; the
        deadline is for a server that cannot even do that (stopped, hung,
        unreachable). Cancelled at the deadline, psycopg asks the server to
        cancel the query and waits up to 10 s for a server that never answers:
        the delivery was spooled 10 s after the deadline, not at it (hostile
        review). After CANCEL_GRACE a second cancellation makes psycopg close
        the connection instead (the pool replaces it). Had the store committed
        after all, the delivery's key keeps the spooled copy from being stored twice.
        """

        async def store() -> list[Any]:
            cursor = await conn.execute(STORE_MANY, params)
            return await cursor.fetchall()

        if self._deadline is None:
            return await store()
        # A request cancelled meanwhile (a shutdown) lets the store go with it, and
        # the connection goes back to the pool only once it let go.
        return await within(self._deadline, store())

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
            async with self.database.connection(self._pool) as conn:
                rows = await self._store_by_deadline(conn, params)
        except TimeoutError as exc:
            log.error(
                "the database did not answer within %s s, %d deliveries (%d bytes) were not "
                "stored (if it did commit, their keys keep a spooled copy from being stored twice)",
                self._deadline,
                len(deliveries),
                size,
            )
            raise StoreError(503, UNAVAILABLE) from exc
        except DatabaseDownError as exc:
            log.debug("database down, %d deliveries were not stored: %s", len(deliveries), exc)
            raise StoreError(503, UNAVAILABLE) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.error(
                "database unavailable, %d deliveries (%d bytes) were not stored: %s",
                len(deliveries),
                size,
                exc,
            )
            raise StoreError(503, UNAVAILABLE) from exc
        except psycopg.Error as exc:
            if exc.sqlstate in OUTAGE_SQLSTATES:
                log.error(
                    "database cannot take deliveries now (SQLSTATE %s), %d deliveries (%d bytes) "
                    "were not stored%s: %s",
                    exc.sqlstate,
                    len(deliveries),
                    size,
                    not_migrated_hint(exc),
                    exc,
                )
                raise StoreError(503, UNAVAILABLE) from exc
            log.error("database refused %d deliveries (%d bytes): %s", len(deliveries), size, exc)
            raise StoreError(500, REFUSED, rolled_back=True) from exc
        if len(rows) != len(deliveries):
            log.error("sync.store_many returned %d receipts for %d", len(rows), len(deliveries))
            raise StoreError(500, REFUSED)
        return [Receipt(*row) for row in rows]
