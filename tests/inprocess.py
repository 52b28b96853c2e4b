"""The hook's app in this process, over ASGI: its lifespan, its routes, a real database.

For tests that need to choose the peer's address (the allowlist) or to look
at one behaviour of the app quickly; what uvicorn adds (proxy headers,
connection limits) is tested on real processes (``processes.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from psycopg_pool import AsyncConnectionPool

from hook.app import create_app
from hook.ingest import Store
from hook.settings import Settings


@asynccontextmanager
async def hook_client(
    database_url: str,
    tmp_path: Path,
    client: str = "127.0.0.1",
    store: Callable[[AsyncConnectionPool], Store] | None = None,
    **env: str,
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the hook's app, as if from ``client``, with these settings."""
    settings = Settings.from_env(
        {"DATABASE_URL": database_url, "SPOOL_DIR": str(tmp_path / "spool"), **env}
    )
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app, client=(client, 5000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        yield http
