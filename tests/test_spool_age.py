"""A spooled delivery older than the inbox keeps its keys is held, not drained.

The drain is idempotent on the delivery key only while the inbox holds it:
the purge deletes applied deliveries after ``sync.settings.purge_after`` (90
days). A record stored by a drain that could not delete it (killed between
the database's commit and the spool's delete), drained again past that age,
was stored twice, and its old values merged again (hostile review).
"""

from __future__ import annotations

import json
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

from hook.spool import HELD, Spool, SpooledDelivery


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
