"""Benchmark only: the naive hook, one INSERT per request, for ``make bench`` to set beside ours.

What a first version would be: a FastAPI route that reads the body and
inserts it into a plain table (``bench.naive_inbox``), one transaction per
request, on the same server stack as the hook (uvicorn with httptools and
uvloop). No batching, no rules, no merge: the issue's "naive FastAPI hook".

    DATABASE_URL=postgresql://... PORT=9300 python -m bench.naive_hook
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from psycopg_pool import AsyncConnectionPool

from bench.minimal_route import serve

#: The table it writes, created by ``bench/run.py`` (``NAIVE_TABLE``).
INSERT = "insert into bench.naive_inbox (body, content_type) values (%b, %s)"
STORED = b'{"status":"stored"}'


def create_app(database_url: str, pool_size: int) -> FastAPI:
    """The naive hook: POST /notifications inserts the body; GET /healthz answers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncConnectionPool(
            database_url, min_size=pool_size, max_size=pool_size, kwargs={"autocommit": True}
        ) as pool:
            app.state.pool = pool
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/notifications", status_code=202)
    async def notify(request: Request) -> Response:
        body = await request.body()
        async with request.app.state.pool.connection() as conn:
            await conn.execute(INSERT, [body, request.headers.get("content-type")])
        return Response(STORED, status_code=202, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> int:
    """Serve it on PORT with DB_POOL_MAX_SIZE connections, on the minimal route's stack."""
    return serve(
        create_app(os.environ["DATABASE_URL"], int(os.environ.get("DB_POOL_MAX_SIZE", "10")))
    )


if __name__ == "__main__":
    sys.exit(main())
