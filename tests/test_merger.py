"""The hook's merger against a real database: what it applies, and that it never stops."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from conftest import Server
from helpers import body, fragrance, settled
from psycopg_pool import AsyncConnectionPool

from hook.ingest import DatabaseState, Receipt
from hook.merger import Merger


def _store(db: psycopg.Connection, cost: int) -> int:
    [(inbox_id,)] = db.execute(
        "select inbox_id from sync.store_many(%s, %s, %s, %s, %s)",
        [[body({"fragrance_id": 7, "cost": cost})], [None], [None], [None], [uuid.uuid4()]],
    ).fetchall()
    return inbox_id


def test_the_merger_keeps_merging_after_an_unexpected_error(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    observed: list[Receipt] = []

    def observe(receipt: Receipt) -> None:
        observed.append(receipt)
        if len(observed) == 1:
            raise RuntimeError("a bug in what counts the outcomes")

    async def run() -> None:
        pool = AsyncConnectionPool(
            server.url(dbname, user="sync_hook_login"), kwargs={"autocommit": True}, open=False
        )
        await pool.open()
        merger = Merger(pool, DatabaseState(), limit=1000, every=0.1, observe=observe)
        merger.start()
        try:
            first = _store(db, 1)
            await asyncio.to_thread(settled, db, first)
            second = _store(db, 2)
            merger.poke()
            await asyncio.to_thread(settled, db, second)
        finally:
            await merger.close()
            await pool.close()

    asyncio.run(run())
    assert [r.status for r in observed] == ["applied", "applied"]
    assert fragrance(db, 7)["cost"] == 2
