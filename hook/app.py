"""Routes and lifespan of the hook.

The hook does one thing: hand each raw body to ``sync.receive`` in one
parameterised call and answer with the receipt. It never parses the body;
every rule lives in the database.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel

from hook import metrics
from hook import status as status_page
from hook.guard import DeliveryGuard, GuardCounts
from hook.listener import keep_registered
from hook.settings import Settings

log = logging.getLogger("hook")

RECEIVE = "select inbox_id, status, reasons from sync.receive(%s, %s, %s, %s)"


class Reason(BaseModel):
    """One rule violation or warning, as the database wrote it."""

    code: str
    severity: str
    field: str | None
    message: str


class Receipt(BaseModel):
    """What the hook answers for a stored delivery."""

    inbox_id: int
    status: str
    reasons: list[Reason]


class Problem(BaseModel):
    """An error answer: what happened and what to do."""

    detail: str


class BodyTooLargeError(Exception):
    """The body is larger than the configured limit."""


def _client_address(request: Request) -> str | None:
    """The peer's IP address, or None when it is not one (a unix socket, a test client)."""
    if request.client is None:
        return None
    try:
        return str(ipaddress.ip_address(request.client.host))
    except ValueError:
        return None


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise BodyTooLargeError
    return bytes(chunks)


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def create_app(settings: Settings) -> FastAPI:
    """Build the hook's app for one set of settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.database_timeout,
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "application_name": "fragrance-sync-hook"},
            name="hook",
            open=False,
        )
        # Do not wait for the database: the hook must start (and say 503) while it is down.
        await pool.open(wait=False)
        app.state.pool = pool
        registration = None
        if settings.cms_url:
            registration = asyncio.create_task(
                keep_registered(settings.cms_url, settings.public_url, settings.register_every)
            )
        try:
            yield
        finally:
            if registration is not None:
                registration.cancel()
            await pool.close()

    app = FastAPI(
        title="fragrance sync hook",
        summary="Receives the CMS's fragrance webhooks and stores each one in sync.inbox.",
        lifespan=lifespan,
    )
    app.state.guard_counts = GuardCounts()
    app.add_middleware(
        DeliveryGuard,
        token=settings.notify_token,
        networks=settings.allowed_networks,
        rate=settings.rate_limit,
        burst=settings.rate_burst,
        counts=app.state.guard_counts,
    )
    metrics.install(app)
    status_page.install(app)

    @app.post(
        "/notifications",
        status_code=202,
        response_model=Receipt,
        responses={413: {"model": Problem}, 503: {"model": Problem}},
    )
    async def notifications(request: Request) -> Any:
        """Store one delivery exactly as received and answer with its receipt.

        A body that breaks the data rules is still a delivery: it is stored
        and answered 202 with status ``rejected`` and the reasons.
        """
        try:
            data = await _read_body(request, settings.max_body_bytes)
        except BodyTooLargeError:
            log.warning(
                "refused a body over %d bytes from %s",
                settings.max_body_bytes,
                _client_address(request),
            )
            return _problem(
                413,
                f"body is larger than {settings.max_body_bytes} bytes; it was not stored",
            )
        params = (
            data,
            request.headers.get("content-type"),
            _client_address(request),
            request.headers.get("user-agent"),
        )
        try:
            async with request.app.state.pool.connection() as conn:
                cursor = await conn.execute(RECEIVE, params)
                inbox_id, status, reasons = await cursor.fetchone()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.error(
                "database unavailable, a delivery of %d bytes was not stored: %s", len(data), exc
            )
            return _problem(503, "database unavailable; the delivery was not stored, send it again")
        except psycopg.Error as exc:
            log.error("database refused a delivery of %d bytes: %s", len(data), exc)
            return _problem(500, "the database refused the delivery; see the hook's log")
        metrics.observe_receipt(request, len(data), status, reasons)
        return {"inbox_id": inbox_id, "status": status, "reasons": reasons}

    @app.get("/healthz", responses={503: {"model": Problem}})
    async def healthz(request: Request) -> Any:
        """Liveness and database reachability."""
        try:
            async with request.app.state.pool.connection() as conn:
                await conn.execute("select 1")
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("health check: database unreachable: %s", exc)
            return JSONResponse(
                status_code=503, content={"status": "degraded", "database": "unreachable"}
            )
        return {"status": "ok", "database": "ok"}

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: the app configured from the environment."""
    return create_app(Settings.from_env())
