"""The hook's merger against a real database: what it applies, and that it never stops."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from conftest import Server
from helpers import body, fragrance, settled
from psycopg_pool import AsyncConnectionPool

from hook.ingest import DatabaseState, Receipt
from hook.merger import BUSY, Merger


def _store(db: psycopg.Connection, cost: int) -> int:
    [(inbox_id,)] = db.execute(
        "select inbox_id from sync.store_many(%s, %s, %s, %s, %s)",
        [[body({"fragrance_id": 7, "cost": cost})], [None], [None], [None], [uuid.uuid4()]],
    ).fetchall()
    return inbox_id


async def _open_pool(server: Server, dbname: str) -> AsyncConnectionPool:
    """An open pool of the hook's login, as the hook's merger has."""
    pool = AsyncConnectionPool(
        server.url(dbname, user="sync_hook_login"), kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    return pool


def test_the_merger_keeps_merging_after_an_unexpected_error(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    observed: list[Receipt] = []

    def observe(receipt: Receipt) -> None:
        observed.append(receipt)
        if len(observed) == 1:
            raise RuntimeError("a bug in what counts the outcomes")

    async def run() -> None:
        pool = await _open_pool(server, dbname)
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


class RecordingMerger(Merger):
    """The hook's merger, keeping how many deliveries each of its merges applied."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.merges: list[int] = []

    async def merge_once(self) -> int | None:
        applied = await super().merge_once()
        if applied:
            self.merges.append(applied)
        return applied


async def _first_merge(merger: RecordingMerger, db: psycopg.Connection, count: int) -> None:
    """Store ``count`` deliveries, start the merger and wait until it has merged them."""
    for n in range(count):
        _store(db, n)
    merger.start()

    async def merged() -> None:
        while not merger.merges:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(merged(), 30)


def _pending(db: psycopg.Connection, ids: list[int]) -> int:
    return db.execute(
        "select count(*) from sync.inbox where id = any(%s) and status = 'pending'", [ids]
    ).fetchone()[0]  # type: ignore[index]


def test_after_a_busy_merge_the_merger_waits_and_applies_what_arrived_in_one_merge(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """A merge call costs the same whatever it holds: under a stream, fewer and larger ones."""

    async def run() -> tuple[list[int], int]:
        pool = await _open_pool(server, dbname)
        merger = RecordingMerger(pool, DatabaseState(), limit=1000, every=60, linger=10.0)
        try:
            await _first_merge(merger, db, BUSY)
            first = [_store(db, 100 + n) for n in range(3)]
            merger.poke()
            await asyncio.sleep(1.0)  # a merger that did not wait would have applied them
            waiting = _pending(db, first)
            second = [_store(db, 200 + n) for n in range(3)]
            merger.poke()
            await asyncio.wait_for(asyncio.to_thread(settled, db, second[-1]), 30)
            return merger.merges, waiting
        finally:
            await merger.close()
            await pool.close()

    merges, waiting = asyncio.run(run())
    assert waiting == 3
    assert merges == [BUSY, 6]


def test_after_a_merge_of_a_few_the_merger_applies_the_next_delivery_at_once(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The CMS's pace (one change every 20 s) never waits for the linger."""

    async def run() -> list[int]:
        pool = await _open_pool(server, dbname)
        merger = RecordingMerger(pool, DatabaseState(), limit=1000, every=60, linger=60.0)
        try:
            await _first_merge(merger, db, BUSY - 1)
            last = _store(db, 100)
            merger.poke()
            await asyncio.wait_for(asyncio.to_thread(settled, db, last), 10)
            return merger.merges
        finally:
            await merger.close()
            await pool.close()

    assert asyncio.run(run()) == [BUSY - 1, 1]
