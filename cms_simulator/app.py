"""Routes and lifespan of the CMS simulator.

The routes are the real CMS's: liveness on ``/healthcheck`` and ``/``, and the
one listener on ``/listener``. ``GET /`` additionally reports the
simulator's counters, a simulator-only extra that tests read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from cms_simulator.settings import Settings
from cms_simulator.simulator import Simulator
from hook import docs as api_docs


class Listener(BaseModel):
    """Where to POST every change: ``host + ":" + port + endpoint``, concatenated as is."""

    host: str
    port: int | str
    endpoint: str

    def url(self) -> str:
        """The listener's URL by plain string concatenation, as the real CMS builds it."""
        return self.host + ":" + str(self.port) + self.endpoint


def create_app(settings: Settings) -> FastAPI:
    """Build the simulator's app for one set of settings."""
    simulator = Simulator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            # The first change is made here, before the server accepts any request.
            await simulator.start()
            yield
        finally:
            await simulator.stop()

    app = FastAPI(
        title="CMS simulator",
        summary="Changes one fragrance per tick and POSTs each change to its one listener.",
        lifespan=lifespan,
        docs_url=None,  # hook/docs.py serves them from files on this host, not a CDN
        redoc_url=None,
    )
    app.state.simulator = simulator

    @app.get("/healthcheck")
    async def healthcheck() -> dict[str, str]:
        """Liveness, as the real CMS answers it."""
        return {"status": "ok"}

    @app.get("/")
    async def root() -> dict[str, Any]:
        """Liveness, plus the simulator's counters (simulator-only: the real CMS has none)."""
        return {"status": "ok", "simulator": simulator.status()}

    @app.post("/listener")
    async def register_listener(listener: Listener) -> dict[str, str | None]:
        """Send every later change to this listener, replacing any earlier one."""
        simulator.register(listener.url())
        return {"listener": simulator.listener}

    @app.delete("/listener")
    async def delete_listener() -> dict[str, str | None]:
        """Send changes to nobody from now on."""
        simulator.register(None)
        return {"listener": None}

    api_docs.install(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: the app configured from the environment."""
    return create_app(Settings.from_env())
