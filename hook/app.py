"""The hook's app: its routes and its lifespan.

The hook does one thing: hand each raw body to the database and answer with
the receipt (``hook/notifications.py``, batched by ``hook/ingest.py`` through
``sync.store_many``), then have the database apply what it stored
(``hook/merger.py``, ``sync.apply_received``). It never parses the body;
every rule lives in the database. Around that hot path: listener
registration, health, metrics and the status page.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, Field

from hook import docs as api_docs
from hook import metrics, notifications
from hook import status as status_page
from hook.body_budget import SMALL_BODY_BYTES, BodyBudget
from hook.connections import limit_accept_errors
from hook.guard import DeliveryGuard
from hook.ingest import (
    NOT_MIGRATED_SQLSTATES,
    RECONNECT_TIMEOUT,
    BatchingStore,
    DatabaseDownError,
    DatabaseState,
    Receipt,
    Store,
    not_migrated_hint,
)
from hook.listener import keep_registered
from hook.log_limit import LogLimit, limit_logger
from hook.merger import Merger
from hook.notifications import Deliveries
from hook.settings import Settings
from hook.shared_read import SharedRead, read_row
from hook.spool import DRAIN_DEADLINE_FACTOR, SpoolCounts, SpoolingStore, open_spool

log = logging.getLogger("hook")


class Health(BaseModel):
    """What ``GET /healthz`` answers, with 200 or 503."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded while deliveries wait in the spool, some are set aside or "
        "damaged, or the database cannot store them"
    )
    database: Literal["ok", "unreachable", "not_migrated", "read_only", "not_permitted"] = Field(
        description="ok: this login can store deliveries. unreachable: no answer. "
        "not_migrated: no schema sync, or not this release's functions (run the migrations). "
        "read_only: a standby or a read-only database. not_permitted: this login may not "
        "call sync.store_many (or use schema sync). Anything but ok: deliveries go to the "
        "spool (503 without one)."
    )
    spool_depth: int = Field(description="Deliveries waiting in this host's spool.")
    spool_set_aside: int = Field(description="Spooled deliveries the database refused.")
    spool_damaged: int = Field(
        description="Spooled records the spool could not read or decode, moved aside."
    )


#: FastAPI's OpenTelemetry spans, metrics and logs, all off (``FastAPI(telemetry=...)``).
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

#: What ``/healthz`` asks the database: can this login store a delivery now? ``select 1``
#: said ok of a database not migrated yet (no schema sync, SQLSTATE 3F000), where every
#: delivery is an outage and spooled, while /metrics said database_up 0 (hostile review).
#: Still one round trip, on the pool, with no table read.
HEALTH_PROBE = (
    "select pg_catalog.current_setting('transaction_read_only') = 'off',"
    " pg_catalog.has_function_privilege("
    "'sync.store_many(bytea[], text[], text[], text[], uuid[])', 'execute')"
)


def database_health(row: tuple[Any, ...] | None) -> str:
    """The ``database`` of a health answer, from the probe's row."""
    writable, permitted = row if row is not None else (False, False)
    if not writable:
        return "read_only"
    return "ok" if permitted else "not_permitted"


async def check_pooled_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make sure a pooled connection is alive before a batch uses it; raise if not.

    An idle connection receives nothing unless the server is dropping it (a
    restart, ``pg_terminate_backend``, an idle timeout): then its socket turns
    readable with the server's last message. Only such a connection pays the
    round trip of psycopg's own check, which fails and makes the pool replace
    it. Anything else readable (a rare asynchronous notice) also takes the full
    check, which passes. Skipping the round trip made a lone delivery about 8%
    faster (bench/README.md, step 10).
    """
    if conn.pgconn.status == psycopg.pq.ConnStatus.OK:
        # poll, not select: select() fails on descriptors past 1023.
        waiting = select.poll()
        waiting.register(conn.pgconn.socket, select.POLLIN)
        if not waiting.poll(0):
            return
    await AsyncConnectionPool.check_connection(conn)


# What every connection of the hook sets for its session, over whatever the
# login, the database or PGOPTIONS set (ALTER ROLE/DATABASE ... SET, which a
# shared database keeps for its other applications), so that the hook reads
# and stores alike on every site (hostile review, tests/test_session_settings.py):
# extra_float_digits -15 made /metrics read an age of 1,234.5 s as 1,000, and
# client_encoding LATIN1 made /status fail (503) on a reason that quotes a
# character LATIN1 lacks. Under default_transaction_isolation serializable,
# concurrent sync.store_many calls beside running merges failed with SQLSTATE
# 40001 or 53200 (out of predicate locks), each a 500 to a CMS that never
# sends again. synchronous_commit is the login's own, pinned in the database
# (migration 0013).
PINNED_SESSION = """
select pg_catalog.set_config('statement_timeout', %s, false),
       pg_catalog.set_config('default_transaction_isolation', 'read committed', false),
       pg_catalog.set_config('extra_float_digits', '1', false),
       pg_catalog.set_config('client_encoding', 'UTF8', false)
"""


async def pin_session(conn: psycopg.AsyncConnection[Any], statement_timeout: str) -> None:
    """Set what the hook's sessions rely on, whatever the site's defaults (one round trip)."""
    await conn.execute(PINNED_SESSION, [statement_timeout])


def create_app(
    settings: Settings, store: Callable[[AsyncConnectionPool], Store] | None = None
) -> FastAPI:
    """Build the hook's app for one set of settings.

    The deliveries go to the database (batched, spooled while it is down),
    unless ``store`` builds another store from the pool (the benchmark's
    no-database hook, ``bench/nodb_hook.py``).
    """

    def observe(size: int, receipt: Receipt) -> None:
        app.state.metrics.observe_receipt(size, receipt.status)

    def observe_outcome(receipt: Receipt) -> None:
        rejected = receipt.status == "rejected"
        app.state.metrics.observe_outcome(receipt.status, receipt.reasons() if rejected else ())

    guard = DeliveryGuard(
        token=settings.notify_token,
        networks=settings.allowed_networks,
        rate=settings.rate_limit,
        burst=settings.rate_burst,
        hosts=settings.delivery_hosts,
    )
    deliveries = Deliveries(
        guard,
        settings.max_body_bytes,
        settings.body_timeout,
        BodyBudget(settings.max_inflight_body_bytes, small=SMALL_BODY_BYTES),
        observe=observe,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_accept_errors(asyncio.get_running_loop())
        # psycopg_pool warns at every reconnection attempt of every pool (about 3 lines a
        # second while the database is down): one line of each kind per 10 s, with a count.
        limit_logger("psycopg.pool", 10.0)
        # Told of every connection attempt: once one fails, deliveries stop waiting for the pool.
        database = DatabaseState(probe_every=settings.spool_retry_every)

        async def open_pool(
            name: str,
            min_size: int,
            max_size: int,
            configure: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]] | None = None,
        ) -> AsyncConnectionPool:
            pool = AsyncConnectionPool(
                settings.database_url,
                connection_class=database.connection_class(),
                min_size=min_size,
                max_size=max_size,
                timeout=settings.database_timeout,
                reconnect_timeout=RECONNECT_TIMEOUT,
                check=check_pooled_connection,
                configure=configure,
                kwargs={"autocommit": True, "application_name": f"fragrance-sync-{name}"},
                name=name,
                open=False,
            )
            # Do not wait for the database: the hook must start (and say 503) while it is down.
            await pool.open(wait=False)
            return pool

        async def bounded(conn: psycopg.AsyncConnection[Any]) -> None:
            # A store or a page read that the database does not finish within
            # DB_TIMEOUT (a lock held, a server that hangs) is cancelled and
            # rolled back by the server: the delivery is then spooled, not left
            # waiting with every delivery queued behind it (hostile review).
            await pin_session(conn, f"{max(1, round(settings.database_timeout * 1000))}ms")

        async def unbounded(conn: psycopg.AsyncConnection[Any]) -> None:
            # The merger claims the oldest pending deliveries first: a merge that a
            # site's statement_timeout (on the login or the database) cancels is the
            # same merge at every sweep, and nothing stored after it was ever applied
            # (hostile review). As the spool's drain, it runs without a bound; a merge
            # that waits on a lock holds only the merger's own connection.
            await pin_session(conn, "0")

        # Whatever fails below (a spool that cannot be opened) closes what was
        # opened before it: a process left running with nothing listening is
        # never restarted by its supervisor (hostile review).
        async with AsyncExitStack() as opened:
            pool = await open_pool(
                "hook", settings.pool_min_size, settings.pool_max_size, configure=bounded
            )
            opened.push_async_callback(pool.close)
            app.state.pool = pool
            spooling = None
            if store is not None:
                deliveries.store = store(pool)
                opened.push_async_callback(database.close)
            else:
                # A connection of its own: a merge that waits (a DBA's lock, a long batch)
                # never holds one a delivery needs.
                merging = await open_pool("merger", 1, 1, configure=unbounded)
                opened.push_async_callback(merging.close)
                opened.push_async_callback(database.close)
                merger = Merger(
                    merging,
                    database,
                    settings.merge_batch_size,
                    settings.merge_every,
                    observe_outcome,
                    settings.merge_linger,
                )
                merger.start()
                opened.push_async_callback(merger.close)
                batching = BatchingStore(
                    pool,
                    settings.batch_max_size,
                    settings.batch_concurrency,
                    database,
                    merger.poke,
                    # Past the server's own statement timeout, with room for it to say so.
                    deadline=2 * settings.database_timeout,
                )
                if settings.spool_dir:
                    spooling = SpoolingStore(
                        batching,
                        pool,
                        open_spool(settings.spool_dir),
                        settings.spool_retry_every,
                        on_stored=merger.poke,
                        deadline=DRAIN_DEADLINE_FACTOR * settings.database_timeout,
                        hold_after_days=settings.spool_hold_after_days,
                    )
                    spooling.start()
                    opened.push_async_callback(spooling.close)
                deliveries.store = spooling or batching
            app.state.spooling = spooling
            app.state.database = database
            if settings.cms_url:
                registration = asyncio.create_task(
                    keep_registered(
                        settings.cms_url,
                        settings.public_url,
                        settings.register_every,
                        observe=app.state.metrics.observe_registration,
                    )
                )
                opened.callback(registration.cancel)
            yield

    app = FastAPI(
        title="fragrance sync hook",
        summary="Receives the CMS's fragrance webhooks and stores each one in sync.inbox.",
        lifespan=lifespan,
        # Served by hook/docs.py, after every other route, from files on this host.
        docs_url=None,
        redoc_url=None,
        # Starlette answered /status/ with a 307 to http://<the request's Host>/status: any
        # Host a client sent, evil.example included. The CMS's trailing slash has routes.
        redirect_slashes=False,
        # The hook's metrics are Prometheus's (/metrics). FastAPI's OpenTelemetry
        # support asked OpenTelemetry for its providers on every request, about
        # 2% of the hook's CPU per delivery (py-spy), to find none configured.
        telemetry=NO_TELEMETRY,
    )
    notifications.install(app, deliveries)
    metrics.install(app)
    status_page.install(app, settings.status_detail_from, bool(settings.trusted_proxies))

    # Anyone may ask, as often as they like: one line per 10 s while the database is down,
    # and one probe at a time per worker, its answer shared by the requests that came
    # meanwhile and never reused after (hook/shared_read.py). A probe per request took a
    # pool connection each: 200 clients asking at once held the whole pool, and deliveries
    # waited behind them (p50 90 ms instead of 7, hostile review).
    unhealthy = LogLimit(log, 10.0)
    probes = SharedRead(lambda: read_row(app, HEALTH_PROBE, ()), 0.0)

    # HEAD too: uptime monitors ask with it, and got 405 from a healthy hook.
    @app.api_route(
        "/healthz",
        methods=["GET", "HEAD"],
        response_model=Health,
        responses={
            503: {
                "model": Health,
                "description": "The database cannot store deliveries, and there is no spool.",
            }
        },
    )
    async def healthz(request: Request) -> Any:
        """Liveness, whether the database can store deliveries, and what the host's spool holds.

        200 while deliveries can be kept (``degraded`` when they go to the
        spool, or when deliveries the database refused, or records it could
        not read, are set aside in it),
        503 when they cannot: the database cannot store them and there is no spool.
        """
        spooling = request.app.state.spooling
        counts = SpoolCounts(0, 0, 0) if spooling is None else await spooling.counts()
        try:
            database = database_health(await probes.get())
        except psycopg.Error as exc:
            if exc.sqlstate in NOT_MIGRATED_SQLSTATES:
                unhealthy.warning("health check: %s%s", exc, not_migrated_hint(exc))
                database = "not_migrated"
            elif exc.sqlstate == "42501":  # no USAGE on schema sync: no function of it can run
                unhealthy.warning("health check: %s", exc)
                database = "not_permitted"
            else:
                unhealthy.warning("health check: database unreachable: %s", exc)
                database = "unreachable"
        except (PoolTimeout, DatabaseDownError) as exc:
            unhealthy.warning("health check: database unreachable: %s", exc)
            database = "unreachable"
        if database in ("read_only", "not_permitted"):
            unhealthy.warning("health check: the database cannot store deliveries: %s", database)
        healthy = database == "ok" and counts == (0, 0, 0)
        answer = {
            "status": "ok" if healthy else "degraded",
            "database": database,
            "spool_depth": counts.depth,
            "spool_set_aside": counts.set_aside,
            "spool_damaged": counts.damaged,
        }
        return JSONResponse(
            status_code=503 if database != "ok" and spooling is None else 200, content=answer
        )

    api_docs.install(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: the app configured from the environment."""
    return create_app(Settings.from_env())
