"""The spool's file over time: a file written by the version before still drains.

A file written by the version before this one (no checksum column) must
still drain, upgraded in place. Each test writes a real spool file, then
runs the hook.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from conftest import Server
from helpers import body
from processes import start_hook, stop_hook, wait_for_empty_spool

from hook.spool import DATABASE_FILE, SpooledDelivery

#: The tables of the version before 0032, as it created them (no body_crc32).
PREVIOUS_SCHEMA = (
    """
    create table queue (
        seq integer primary key autoincrement,
        key text not null unique,
        received_at text not null,
        body blob not null,
        content_type text,
        client_addr text,
        user_agent text,
        spooled_by integer not null
    )
    """,
    """
    create table set_aside (
        seq integer primary key,
        key text not null unique,
        received_at text not null,
        body blob not null,
        content_type text,
        client_addr text,
        user_agent text,
        spooled_by integer not null,
        set_aside_at text not null,
        error text not null
    )
    """,
    """
    create table damaged (
        seq integer primary key, key, received_at, body, body_length, content_type,
        client_addr, user_agent, spooled_by, found_at text not null, error text not null,
        in_queue integer not null
    )
    """,
)


def _spooled(cost: int, description: str = "") -> SpooledDelivery:
    delta = {"fragrance_id": 7, "cost": cost, "description": description or f"change {cost}"}
    return SpooledDelivery(
        uuid.uuid4(), datetime.now(UTC), body(delta), "application/json", "10.0.0.9", "cms/1"
    )


def _previous_version_spool(directory: Path, records: list[SpooledDelivery]) -> Path:
    """A spool file as the version before wrote it, holding ``records``, closed."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DATABASE_FILE
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("pragma journal_mode = wal")
    for statement in PREVIOUS_SCHEMA:
        raw.execute(statement)
    raw.executemany(
        "insert into queue (key, received_at, body, content_type, client_addr, user_agent,"
        " spooled_by) values (?, ?, ?, ?, ?, ?, 1)",
        [
            (
                str(r.key),
                r.received_at.isoformat(),
                r.body,
                r.content_type,
                r.client_addr,
                r.user_agent,
            )
            for r in records
        ],
    )
    raw.close()
    (directory / "spool.waiting").touch()
    return path


def _costs(db: psycopg.Connection) -> list[str]:
    return [c for (c,) in db.execute("select payload->>'cost' from sync.inbox order by id")]


def test_records_spooled_by_the_version_before_drain_unchecked_in_order(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """A file without the checksum column gains it when opened; its records carry none."""
    _previous_version_spool(tmp_path / "spool", [_spooled(1), _spooled(2), _spooled(3)])

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        health = wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert _costs(db) == ["1", "2", "3"]
    assert health["spool_damaged"] == 0
    with sqlite3.connect(tmp_path / "spool" / DATABASE_FILE) as raw:
        columns = [row[1] for row in raw.execute("pragma table_info(queue)")]
    raw.close()
    assert "body_crc32" in columns
