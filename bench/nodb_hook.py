"""Benchmark only: the hook with a store that answers without any database work.

``python -m bench.nodb_hook`` serves the hook's own app (same routes, guard,
body reading and answers) with ``NoDatabaseStore`` instead of the database:
the framework's limit, which ``bench/run.py`` sets beside the real hook.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

from hook.app import create_app
from hook.ingest import Delivery, Receipt
from hook.serve import hook_options, serve
from hook.settings import Settings


class NoDatabaseStore:
    """Answers like a store without touching the database: a fixed receipt."""

    async def store(self, delivery: Delivery) -> Receipt:
        """A fixed receipt."""
        return Receipt(0, "pending", "[]")


def app_from_env() -> FastAPI:
    """Factory for uvicorn: the hook configured from the environment, without a database."""
    return create_app(Settings.from_env(), store=lambda pool: NoDatabaseStore())


if __name__ == "__main__":
    sys.exit(serve("nodb_hook", Settings.from_env, "bench.nodb_hook:app_from_env", hook_options))
