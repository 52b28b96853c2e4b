"""A record of the spool damaged on disk is moved aside; the drain goes on behind it.

Damage that opening the file does not read (a page inside a body, a key or a
time that is not what the hook wrote) was found only by the drain, which then
retried that record for ever: nothing behind it reached the inbox, and every
later delivery, answered 202, queued behind it until a person stopped the
service and renamed the file. Each test damages a real spool file with the
hook stopped, then starts the hook as production runs it.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import ROOT, Server
from helpers import body
from processes import Hook, start_hook, stop_hook, wait_for_empty_spool

from hook.spool import Spool, SpooledDelivery

PAGE = 4096


def _spooled(cost: int, description: str = "") -> SpooledDelivery:
    delta = {"fragrance_id": 7, "cost": cost, "description": description or f"change {cost}"}
    return SpooledDelivery(
        uuid.uuid4(), datetime.now(UTC), body(delta), "application/json", "10.0.0.9", "cms/1"
    )


def _spool(tmp_path: Path, records: list[SpooledDelivery]) -> Path:
    """A spool file holding ``records`` (seq 1, 2, ...), closed: all of it in the main file."""
    spool = Spool(tmp_path / "spool")
    spool.append(records)
    spool.close()
    path = tmp_path / "spool" / "spool.sqlite3"
    assert not Path(f"{path}-wal").exists()
    return path


def _costs(db: psycopg.Connection) -> list[str]:
    return [c for (c,) in db.execute("select payload->>'cost' from sync.inbox order by id")]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hook.spool", "--spool-dir", str(tmp_path / "spool"), *args],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )


def _damaged(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _cli(tmp_path, "damaged").stdout.splitlines()]


def _post(hook: Hook, cost: int) -> httpx.Response:
    delta = {"fragrance_id": 7, "cost": cost, "description": f"change {cost}"}
    return httpx.post(hook.url + "/notifications", content=body(delta), timeout=30)


def _middle_overflow_page(data: bytearray) -> int:
    """The number of the middle overflow page of the body of "Q"s in a spool file's bytes."""
    # An overflow page: 4 bytes of the next page's number, then 4,092 of the body.
    pages = [
        n for n in range(len(data) // PAGE) if data[n * PAGE + 4 : n * PAGE + 104] == b"Q" * 100
    ]
    return pages[len(pages) // 2]


def test_a_record_with_a_damaged_body_page_is_moved_aside_and_everything_behind_it_drains(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """Garbage over one page in the middle of a body: SQLite cannot read it, nor delete it."""
    large = _spooled(2, "Q" * 40_000)
    path = _spool(tmp_path, [_spooled(1), large, _spooled(3)])
    data = bytearray(path.read_bytes())
    middle = _middle_overflow_page(data)
    data[middle * PAGE : (middle + 1) * PAGE] = os.urandom(PAGE)
    path.write_bytes(data)

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        wait_for_empty_spool(hook)
        later = _post(hook, 4)
        health = wait_for_empty_spool(hook)
        metrics = httpx.get(hook.url + "/metrics", timeout=30).text
        status = httpx.get(hook.url + "/status", timeout=30).text
    finally:
        stop_hook(hook)
    assert later.status_code == 202, later.text
    assert _costs(db) == ["1", "3", "4"]
    assert (health["status"], health["spool_depth"], health["spool_damaged"]) == ("degraded", 0, 1)
    assert "fragrance_sync_spool_damaged 1.0" in metrics
    assert "1 spooled record was damaged" in status
    assert "spooled record 2 is damaged" in hook.output()
    [damaged] = _damaged(tmp_path)
    assert (damaged["id"], damaged["key"]) == (2, str(large.key))
    assert damaged["received_at"] == large.received_at.isoformat()
    assert damaged["body_length"] == len(large.body)
    kept = _cli(tmp_path, "damaged", "2", "--body").stdout
    assert 0 < len(kept) < len(large.body) and large.body.startswith(kept)
    assert damaged["still_in_queue_file"] is True  # SQLite cannot free the broken chain
    with pytest.raises(subprocess.CalledProcessError) as refused:
        _cli(tmp_path, "drop", "2")
    assert b"cannot be deleted from the spool's file" in refused.value.stderr
    assert [d["id"] for d in _damaged(tmp_path)] == [2]  # still marked: never drained again


def test_a_body_page_overwritten_with_its_link_intact_is_moved_aside_not_stored(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """SQLite reads the wrong bytes without a word: the body's checksum says they are not its own.

    SQLite's pages carry no checksum: a page of a body overwritten past its
    4-byte link to the next page was drained as the body, and the inbox held
    a delivery nobody sent (hostile review).
    """
    large = _spooled(2, "Q" * 40_000)
    path = _spool(tmp_path, [_spooled(1), large, _spooled(3)])
    data = bytearray(path.read_bytes())
    middle = _middle_overflow_page(data)
    data[middle * PAGE + 4 : (middle + 1) * PAGE] = b"R" * (PAGE - 4)  # same length, link kept
    path.write_bytes(data)
    with sqlite3.connect(path) as raw:  # SQLite itself reads it as a body
        [(read,)] = raw.execute("select body from queue where seq = 2")
    raw.close()
    assert len(read) == len(large.body) and read != large.body

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        health = wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert _costs(db) == ["1", "3"]
    assert health["spool_damaged"] == 1
    assert "spooled record 2 is damaged (the body is not the one spooled" in hook.output()
    [damaged] = _damaged(tmp_path)
    assert (damaged["id"], damaged["key"]) == (2, str(large.key))
    assert damaged["error"].startswith("the body is not the one spooled")
    assert damaged["still_in_queue_file"] is False  # its pages are whole: deleted


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("key", "'not a key'"),
        ("key", "cast(x'c3' as text)"),  # half a UTF-8 character
        ("received_at", "'yesterday'"),
        ("received_at", "'2026-12-04T08:00:00'"),  # no time zone: not what the hook wrote
        ("user_agent", "cast(x'ff' as text)"),
    ],
    ids=["key-text", "key-not-utf8", "time-text", "time-without-zone", "agent-not-utf8"],
)
def test_a_record_whose_text_was_damaged_is_moved_aside_byte_for_byte(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    tmp_path: Path,
    column: str,
    value: str,
) -> None:
    damaged_record = _spooled(2)
    path = _spool(tmp_path, [_spooled(1), damaged_record, _spooled(3)])
    with sqlite3.connect(path) as spool:
        spool.execute(f"update queue set {column} = {value} where seq = 2")
        [stored] = spool.execute(f"select cast({column} as blob) from queue where seq = 2")
    spool.close()

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        health = wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert _costs(db) == ["1", "3"]
    assert health["spool_damaged"] == 1
    [damaged] = _damaged(tmp_path)
    shown = damaged[column]
    assert (shown.encode() if isinstance(shown, str) else base64.b64decode(shown["base64"])) == (
        stored[0]
    )
    assert _cli(tmp_path, "damaged", "2", "--body").stdout == damaged_record.body
    assert damaged["still_in_queue_file"] is False


def test_a_spool_disk_that_cannot_be_written_moves_no_damaged_record_until_it_can(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """A write error (a full disk) is the disk's, not the record's: it stays, whole, and waits.

    Moving a damaged record aside is a write; one that fails must leave the
    record in the queue for the next attempt, never half moved or deleted.
    """
    damaged_record = _spooled(2, "Q" * 200_000)  # its copy needs more room than there is
    path = _spool(tmp_path, [_spooled(1), damaged_record, _spooled(3)])
    with sqlite3.connect(path) as spool:
        spool.execute("update queue set key = 'not a key' where seq = 2")
    spool.close()
    limit = 64 * 1024

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    hook = start_hook(
        server.url(dbname, user="sync_hook_login"),
        tmp_path,
        preexec_fn=full_disk,
        SPOOL_RETRY_EVERY="0.1",
    )
    try:
        for _ in range(1200):
            if "draining the spool failed" in hook.output():
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the drain never met the full disk:\n{hook.output()}")
        with sqlite3.connect(path) as spool:
            waiting = spool.execute("select seq, key, body from queue order by seq").fetchall()
        spool.close()
        resource.prlimit(hook.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert "disk I/O error" in hook.output() or "disk is full" in hook.output()
    assert [seq for seq, _, _ in waiting] == [1, 2, 3]  # none stored, none moved
    assert waiting[1][1:] == ("not a key", damaged_record.body)
    assert _costs(db) == ["1", "3"]
    [damaged] = _damaged(tmp_path)
    assert damaged["key"] == "not a key" and damaged["error"].startswith("not a delivery")
    assert _cli(tmp_path, "damaged", "2", "--body").stdout == damaged_record.body
