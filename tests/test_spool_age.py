"""A spooled delivery older than the inbox keeps its keys is held, not drained.

The drain is idempotent on the delivery key only while the inbox holds it:
the purge deletes applied deliveries after ``sync.settings.purge_after`` (90
days). A record stored by a drain that could not delete it (killed between
the database's commit and the spool's delete), drained again past that age,
was stored twice, and its old values merged again (hostile review).
"""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from conftest import ROOT, Server
from helpers import body
from processes import start_hook, stop_hook, wait_for_empty_spool

from hook.spool import HELD, RECORD_CHANGED, Spool, SpooledDelivery, Unreadable


def _spooled(cost: int, received_at: datetime) -> SpooledDelivery:
    delta = {"fragrance_id": 7, "cost": cost, "description": f"change {cost}"}
    return SpooledDelivery(
        uuid.uuid4(), received_at, body(delta), "application/json", "10.0.0.1", "cms/1"
    )


def _cli(spool_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hook.spool", "--spool-dir", str(spool_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_delivery_older_than_the_inbox_keeps_keys_is_held_until_forced(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    old, recent = _spooled(1, now - timedelta(days=100)), _spooled(2, now - timedelta(hours=1))
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    spool.append([old, recent])
    spool.close()

    url = server.url(dbname, user="sync_hook_login")
    hook = start_hook(url, tmp_path, SPOOL_RETRY_EVERY="0.1")
    try:
        health = wait_for_empty_spool(hook)
        keys = [k for (k,) in db.execute("select spool_key from sync.inbox order by id")]
        assert keys == [recent.key]  # the one behind it is not held back
        assert health["spool_set_aside"] == 1
        assert "spooled delivery" in hook.output() and "--store-old" in hook.output()
        listed = _cli(spool_dir, "list")
        assert listed.returncode == 0, listed.stderr
        assert f'"error": "{HELD}' in listed.stdout, listed.stdout

        # Replayed as it is, it is held again: only the operator's word stores it.
        assert _cli(spool_dir, "replay", "1").returncode == 0
        health = wait_for_empty_spool(hook)
        [listed_again] = [json.loads(line) for line in _cli(spool_dir, "list").stdout.splitlines()]
        assert listed_again["error"].startswith(HELD)
        replayed = _cli(spool_dir, "replay", str(listed_again["id"]), "--store-old")
        assert replayed.returncode == 0, replayed.stderr
        for _ in range(600):
            health = wait_for_empty_spool(hook)
            if health["spool_set_aside"] == 0:
                break
            time.sleep(0.05)
    finally:
        stop_hook(hook)
    assert health["spool_set_aside"] == 0
    keys = [k for (k,) in db.execute("select spool_key from sync.inbox order by id")]
    assert keys == [recent.key, old.key]


def test_a_store_old_flag_the_record_checksum_does_not_cover_is_not_obeyed(
    tmp_path: Path,
) -> None:
    """``store_old`` stores a held record: a flipped bit must not (hostile review).

    In SQLite's record a null and the integer 1 differ by one type byte
    (serial types 0 and 9, no payload): one flipped byte stored a record the
    drain holds, and the record checksum did not cover it.
    """
    now = datetime.now(UTC)
    old, replayed = _spooled(1, now - timedelta(days=100)), _spooled(2, now - timedelta(days=100))
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    try:
        spool.append([old, replayed])
        spool.set_aside(2, "held: by hand")
        spool.replay(2, store_old=True)  # at place 3, stored however old
        # The flag of record 1 set (damage, a hand edit, or a version that did not cover it)
        # and the operator's cleared: neither is what the hook wrote.
        spool._db.execute("update queue set store_old = 1 where seq = 1")
        read = spool.oldest(10, hold_before=now - timedelta(days=80))
        assert [type(r).__name__ for r in read] == ["Held", "Queued"], read
        assert read[0].unchecked_store_old
        spool._db.execute("update queue set store_old = null where seq = 3")
        [_, changed] = spool.oldest(10, hold_before=now - timedelta(days=80))
        assert isinstance(changed, Unreadable) and changed.reason.startswith(RECORD_CHANGED)
    finally:
        spool.close()


def test_many_held_records_write_a_few_lines_with_their_count(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """One line per held record, 1,200 of them, flooded the log (hostile review)."""
    now = datetime.now(UTC)
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    spool.append([_spooled(n, now - timedelta(days=100)) for n in range(1200)])
    spool.close()

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        health = wait_for_empty_spool(hook)
        for _ in range(600):
            if "held in the spool in all" in hook.output():
                break
            time.sleep(0.05)
    finally:
        stop_hook(hook)
    assert health["spool_set_aside"] == 1200
    lines = [line for line in hook.output().splitlines() if "--store-old" in line]
    # At most one per batch of DRAIN_BATCH records, and one when the drain ends.
    assert 1 <= len(lines) <= 4, lines
    assert "1200 held in the spool in all" in lines[-1], lines[-1]


def test_a_held_record_on_a_full_spool_disk_waits_whole_and_says_why(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """Holding a record is a write: a full disk must keep it, and say so, not a traceback.

    The drain logged ``draining the spool failed`` with a traceback every 10 s
    while the records behind the held one waited (hostile review): nothing
    said the spool's disk was the cause, nor that nothing was lost.
    """
    now = datetime.now(UTC)
    first, recent = _spooled(1, now - timedelta(hours=2)), _spooled(3, now - timedelta(hours=1))
    old = SpooledDelivery(
        uuid.uuid4(), now - timedelta(days=100), b"Q" * 200_000, "application/json", None, None
    )  # its copy into set_aside needs more room than the disk has
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    spool.append([first, old, recent])
    spool.close()

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

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
        with sqlite3.connect(spool_dir / "spool.sqlite3") as raw:
            waiting = [seq for (seq,) in raw.execute("select seq from queue order by seq")]
        raw.close()
        resource.prlimit(hook.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        health = wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    assert waiting == [1, 2, 3]  # none moved, none lost
    output = hook.output()
    assert "nothing is lost" in output and "SPOOL_DIR" in output, output
    assert "Traceback" not in output, output
    keys = [k for (k,) in db.execute("select spool_key from sync.inbox order by id")]
    assert keys == [first.key, recent.key]
    assert health["spool_set_aside"] == 1


def test_the_command_line_counts_what_is_held_and_what_stays_in_the_file(tmp_path: Path) -> None:
    """``list`` said how many were set aside, not how many wait for ``--store-old``."""
    now = datetime.now(UTC)
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    try:
        spool.append([_spooled(n, now - timedelta(days=100)) for n in range(3)])
        spool.set_aside_all([(1, f"{HELD}: by the drain"), (2, "IntegrityError: refused")])
        # One a version before could not delete from the queue's file (marked there).
        spool._db.execute(
            "insert into damaged (seq, found_at, error, in_queue) values (3, 'then', 'x', 1)"
        )
    finally:
        spool.close()
    listed = _cli(spool_dir, "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 set aside, 0 waiting in the queue, 1 damaged" in listed.stderr, listed.stderr
    assert "1 set aside held for their age (replay <id> --store-old)" in listed.stderr
    assert "1 damaged still in the file" in listed.stderr
