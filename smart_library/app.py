"""Routes of the smart library stand-in: the real service's API, read-only.

The real smart library (Flask and SQLAlchemy, ours, the platform's core)
serves ``public.fragrances`` to the application and the data scientists.
This stand-in answers the same routes with the same shapes, so the demo and
the tests see the catalog exactly as the application does:

- ``GET /``: the text ``I'm the smart library!`` (as Flask sends a str:
  ``text/html; charset=utf-8``).
- ``GET /fragrances``: ``{"data": [<row>, ...]}``, every row (ordered by
  ``fragrance_id``, which the real one does not promise).
- ``GET /fragrance/<id>``: one ``<row>``, or ``null`` when there is none
  (``{}`` for an id the database cannot read as an integer).
- ``POST /curation``: the text ``my curation!``.

A ``<row>`` is ``{"fragrance_id", "name", "description", "cost",
"forbidden"}`` with ``cost`` served as ``int(cost)``: a fractional cost is
truncated toward zero, as Python's ``int()`` does to a ``Decimal``. The real
service fails on a cost ``int()`` cannot take (null, NaN, infinity), and so
does this one, on purpose: it answers 500 naming the fragrance, so a test
looking through the application's eyes sees the failure the application
would. The sync's rules never write such a cost; only a hand edit can.

It connects as ``smart_library_login`` (migration 0019), which may only
select the catalog, and every transaction is read-only besides.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.exceptions import HTTPException

from smart_library.settings import Settings

log = logging.getLogger("smart_library")

COLUMNS = "fragrance_id, name, description, cost, forbidden"
EVERY_ROW = f"select {COLUMNS} from public.fragrances order by fragrance_id"
#: The id as the path gave it, read by PostgreSQL as the real service's query has it read.
ONE_ROW = f"select {COLUMNS} from public.fragrances where fragrance_id = %s::integer"

Row = dict[str, Any]

#: What Flask (Werkzeug) says under the title of the error pages a client can reach.
FLASK_ERRORS = {
    404: (
        "Not Found",
        "The requested URL was not found on the server. If you entered the URL manually "
        "please check your spelling and try again.",
    ),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
}


def flask_error_page(status: int) -> str:
    """The HTML page Flask answers a path it does not route (404) or a method it does not (405)."""
    title, text = FLASK_ERRORS.get(status, ("Error", "The request could not be served."))
    return (
        f"<!doctype html>\n<html lang=en>\n<title>{status} {title}</title>\n"
        f"<h1>{title}</h1>\n<p>{text}</p>\n"
    )


class UnservableCostError(Exception):
    """A row's cost is one the real smart library's ``int(cost)`` cannot convert."""

    def __init__(self, fragrance_id: int, cost: Decimal | None) -> None:
        """Name the fragrance and its cost."""
        super().__init__(
            f"fragrance {fragrance_id} has cost {cost}, which the smart library cannot serve "
            "as int(cost) (the real one fails here too); give it a numeric cost, e.g. with "
            "a delivery or a DBA's update of public.fragrances"
        )


def served(row: Row) -> Row:
    """A row as the smart library serves it: ``cost`` as ``int(cost)``, truncated."""
    try:
        cost = int(row["cost"])
    except (TypeError, ValueError, OverflowError):
        raise UnservableCostError(row["fragrance_id"], row["cost"]) from None
    return {**row, "cost": cost}


async def _read_only(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every transaction of a pooled connection is read-only (the grants already say so)."""
    await conn.set_read_only(True)


def create_app(settings: Settings) -> FastAPI:
    """Build the stand-in's app for one set of settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.database_timeout,
            configure=_read_only,
            check=AsyncConnectionPool.check_connection,
            kwargs={"application_name": "smart-library-stand-in"},
            name="smart_library",
            open=False,
        )
        # Start without the database, as the real service does: routes that need it say 503.
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    # The real service has no OpenAPI pages: neither has its stand-in. Nor does it
    # redirect a path with a slash added (Flask answers 404 to /fragrances/): a client
    # that follows the stand-in's redirect would find data the real service never serves.
    app = FastAPI(
        title="smart library stand-in",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )

    async def rows(request: Request, query: str, params: list[Any]) -> list[Row]:
        async with (
            request.app.state.pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(query, params)
            return [served(row) for row in await cur.fetchall()]

    @app.exception_handler(HTTPException)
    async def not_routed(request: Request, exc: HTTPException) -> HTMLResponse:
        """A path or method the service does not route, answered as Flask does: an HTML page.

        FastAPI's own answer is ``{"detail": ...}`` in JSON: a client written against
        the stand-in's errors would misread the real service's.
        """
        return HTMLResponse(
            flask_error_page(exc.status_code), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(UnservableCostError)
    async def unservable(request: Request, exc: UnservableCostError) -> PlainTextResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return PlainTextResponse(str(exc), status_code=500)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def unreachable(request: Request, exc: Exception) -> PlainTextResponse:
        reason = " ".join(str(exc).split())
        log.warning("%s %s: database unreachable: %s", request.method, request.url.path, reason)
        return PlainTextResponse(
            f"the smart library's database does not answer ({reason}); "
            "start it, or point DATABASE_URL at it",
            status_code=503,
        )

    @app.exception_handler(psycopg.Error)
    async def refused(request: Request, exc: psycopg.Error) -> PlainTextResponse:
        reason = " ".join(str(exc).split())
        log.error("%s %s: %s", request.method, request.url.path, reason)
        return PlainTextResponse(
            f"the smart library cannot read public.fragrances ({reason}); apply the "
            "migrations (0019 lets smart_library_login select it) and check DATABASE_URL",
            status_code=500,
        )

    # Flask answers HEAD on every GET route (the headers of the GET, no body), so a
    # probe that sends HEAD finds the real service up; FastAPI's routes need it named.
    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def root() -> str:
        """Liveness, as the real service answers it."""
        return "I'm the smart library!"

    @app.api_route("/fragrances", methods=["GET", "HEAD"])
    async def fragrances(request: Request) -> JSONResponse:
        """Every fragrance, as ``{"data": [<row>, ...]}``."""
        return JSONResponse({"data": await rows(request, EVERY_ROW, [])})

    @app.api_route("/fragrance/{fragrance_id}", methods=["GET", "HEAD"])
    async def fragrance(request: Request, fragrance_id: str) -> JSONResponse:
        """One fragrance, ``null`` when there is none, ``{}`` for an id that is no integer.

        The real route takes any text and lets the database read it as the
        integer column's value (``-1``, ``007``, ``+7``); where the database
        cannot (``abc``, ``1.5``, past 2^31 - 1), the real service swallows the
        error and answers the empty object it started from.
        """
        try:
            found = await rows(request, ONE_ROW, [fragrance_id])
        except psycopg.DataError:
            return JSONResponse({})
        return JSONResponse(found[0] if found else None)

    @app.post("/curation", response_class=HTMLResponse)
    async def curation() -> str:
        """The real service's curation endpoint answers with this text."""
        return "my curation!"

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: the app configured from the environment."""
    return create_app(Settings.from_env())
