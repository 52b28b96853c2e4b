"""The spool's file over time: it gives back what a drain emptied, and opens the version before.

SQLite keeps the pages of deleted records in its file: after an outage that
spooled 2 GB, the drained file stayed 2 GB for ever (hostile review). And a
file written by the version before this one (no checksum column, never
shrunk) must still drain and shrink in place. Each test writes a real spool
file, then runs the hook, or opens the spool as the hook's start does.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT, Server
from helpers import body
from processes import Hook, start_hook, stop_hook, wait_for_empty_spool

from hook.spool import (
    DATABASE_FILE,
    WAL_LIMIT_BYTES,
    Queued,
    Spool,
    SpooledDelivery,
    Unreadable,
    open_spool,
)

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
MiB = 1024 * 1024


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


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob(f"{DATABASE_FILE}*"))


def _costs(db: psycopg.Connection) -> list[str]:
    return [c for (c,) in db.execute("select payload->>'cost' from sync.inbox order by id")]


def _wait_for_log(hook: Hook, line: str) -> None:
    for _ in range(1200):
        if line in hook.output():
            return
        time.sleep(0.05)
    pytest.fail(f"no {line!r} in the log:\n{hook.output()}")


def test_a_drained_spool_gives_its_space_back_to_the_disk(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory)
    spool.append([_spooled(n, "Q" * 500_000) for n in range(40)])
    spool.close()
    spooled = _size(directory)
    assert spooled > 40 * 500_000

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        wait_for_empty_spool(hook)
        _wait_for_log(hook, "gave back")
        drained = _size(directory)
    finally:
        stop_hook(hook)
    assert len(_costs(db)) == 40
    assert drained < 1 * MiB, (spooled, drained)


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


def test_a_file_the_version_before_drained_gives_its_space_back_when_the_hook_starts(
    tmp_path: Path,
) -> None:
    """That version emptied the file and kept its size: the next start shrinks it."""
    directory = tmp_path / "spool"
    kept = _spooled(1)
    path = _previous_version_spool(
        directory, [kept, *(_spooled(n, "Q" * 500_000) for n in range(40))]
    )
    with sqlite3.connect(path) as raw:  # drained by it, but for one record
        raw.execute("delete from queue where seq > 1")
    raw.close()
    drained = _size(directory)
    assert drained > 40 * 500_000

    spool = open_spool(str(directory))
    try:
        assert _size(directory) < 1 * MiB, drained
        assert [q.delivery for q in spool.oldest(10)] == [kept]
        spool.append([_spooled(2)])  # and it still takes records, after the one it held
        assert [q.seq for q in spool.oldest(10)] == [1, 42]
    finally:
        spool.close()


#: Run with a spool directory and N: shrink it, killed by SIGKILL at the Nth step of SQLite's
#: virtual machine inside its VACUUM (N = 0: not killed; print how many steps there were).
KILL_IN_VACUUM = """
import os, signal, sys
from pathlib import Path
from hook.spool import Spool
spool, at = Spool(Path(sys.argv[1])), int(sys.argv[2])
steps, armed = [0], [False]
spool._db.set_trace_callback(lambda sql: armed.__setitem__(0, armed[0] or sql == "vacuum"))
def step():
    if armed[0]:
        steps[0] += 1
        if steps[0] == at:
            print("killed in vacuum", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    return 0
spool._db.set_progress_handler(step, 1)
before, after = spool.shrink()
print(steps[0] if after < before else "not shrunk", flush=True)
"""


def test_a_shrink_killed_in_the_middle_of_its_vacuum_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL half way through the VACUUM: the file is as it was, every record in it."""
    directory = tmp_path / "spool"
    spool = Spool(directory)
    spool.append([_spooled(n, "Q" * 500_000) for n in range(20)])
    spool.remove([q.seq for q in spool.oldest(20, 100 * MiB)][:-2])  # two wait
    spool.set_aside(spool.oldest(1)[0].seq, "CheckViolation: kept for a person")
    waiting = [q.delivery for q in spool.oldest(10, 100 * MiB)]
    set_aside = spool.set_aside_records()
    spool.close()
    rehearsal = tmp_path / "rehearsal"
    shutil.copytree(directory, rehearsal)

    def run(where: Path, at: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", KILL_IN_VACUUM, str(where), str(at)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    steps = int(run(rehearsal, 0).stdout)  # how long the same VACUUM is, on a copy
    killed = run(directory, steps // 2)
    assert (killed.returncode, killed.stdout) == (-signal.SIGKILL, "killed in vacuum\n")

    spool = Spool(directory)
    try:
        assert spool._db.execute("pragma integrity_check").fetchall() == [("ok",)]
        assert [q.delivery for q in spool.oldest(10, 100 * MiB)] == waiting
        assert spool.set_aside_records() == set_aside
        before, after = spool.shrink()  # the next shrink does it
        assert after < 1 * MiB < before
        assert [q.delivery for q in spool.oldest(10, 100 * MiB)] == waiting
        assert spool.set_aside_records() == set_aside
    finally:
        spool.close()


#: Run with a spool directory: append records w-0, w-1, ... one per commit, until a file
#: ``stop`` appears beside it.
APPEND_UNTIL_STOPPED = """
import sys
from pathlib import Path
from hook.ingest import Delivery
from hook.spool import Spool, SpooledDelivery
directory = Path(sys.argv[1])
spool, n = Spool(directory), 0
while not (directory / "stop").exists():
    spool.append([SpooledDelivery.of(Delivery(b"w-%d" % n, None, None, None))])
    n += 1
"""


def test_a_shrink_while_another_process_appends_keeps_every_record_in_order(
    tmp_path: Path,
) -> None:
    """A worker spools while the drainer's VACUUMs run: each append waits for one, none is lost."""
    directory = tmp_path / "spool"
    spool = Spool(directory)

    def waiting() -> list[Queued]:
        return [q for q in spool.oldest(100_000, 1000 * MiB) if not isinstance(q, Unreadable)]

    writer = subprocess.Popen(
        [sys.executable, "-c", APPEND_UNTIL_STOPPED, str(directory)], cwd=ROOT
    )
    try:
        while not waiting() and writer.poll() is None:
            time.sleep(0.01)
        shrunk = []
        for _ in range(5):
            spool.append([_spooled(n, "Q" * 500_000) for n in range(12)])
            spool.remove([q.seq for q in waiting() if q.delivery.body[:2] != b"w-"])
            shrunk.append(spool.shrink())
        (directory / "stop").touch()
        assert writer.wait(60) == 0
        bodies = [q.delivery.body for q in waiting()]
    finally:
        writer.kill()
        writer.wait()
        spool.close()
    assert bodies == [b"w-%d" % n for n in range(len(bodies))]
    # The VACUUMs ran beside the writer: the 6 MB each round freed are no free pages
    # of the file. Its end goes back to the disk at the checkpoint the writer's reads
    # and writes allow (at the latest when the last connection closes), not always
    # within shrink() on a busy machine, so the sizes shrink() saw are not asked.
    raw = sqlite3.connect(directory / DATABASE_FILE)
    try:
        page_size, free = (
            raw.execute(f"pragma {n}").fetchone()[0] for n in ("page_size", "freelist_count")
        )
    finally:
        raw.close()
    assert free * page_size < 500_000
    assert _size(directory) < min(before for before, _ in shrunk) - 5 * MiB


def test_a_wal_grown_by_one_large_commit_is_cut_back_when_it_restarts(tmp_path: Path) -> None:
    """One append group of big bodies grew the WAL; SQLite kept that size on disk for ever."""
    spool = Spool(tmp_path / "spool")
    wal = Path(f"{spool.path}-wal")
    try:
        spool.append([_spooled(n, "Q" * MiB) for n in range(100)])  # one commit
        grown = wal.stat().st_size
        assert grown > 100 * MiB
        spool._db.execute("pragma wal_checkpoint(passive)").fetchall()  # as SQLite's own
        spool.append([_spooled(100)])  # the next commit restarts the WAL
        assert wal.stat().st_size <= WAL_LIMIT_BYTES < grown
    finally:
        spool.close()


#: Run with a spool directory and a size: shrink it with no file allowed to grow past that
#: size (a full disk, or a temp directory with no room: SQLite's VACUUM copies what the file
#: holds to a temp file, then writes it through the WAL); print the sizes before and after.
SHRINK_ON_A_FULL_DISK = """
import logging, resource, signal, sys
from pathlib import Path
from hook.spool import Spool, shrink_spool
logging.basicConfig(level=logging.INFO, format="%(message)s")
spool = Spool(Path(sys.argv[1]))
before = spool.size()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
shrink_spool(spool)
print(before, spool.size(), flush=True)
"""


def test_a_shrink_without_room_for_its_copy_loses_nothing_and_gives_back_its_wal(
    tmp_path: Path,
) -> None:
    """The VACUUM fails; the file is as it was, it still takes records, the log says so.

    The failed VACUUM left the WAL at the size of the pages it had written
    (up to what the file holds), taken from a disk that had no room.
    """
    directory = tmp_path / "spool"
    spool = Spool(directory)
    spool.append([_spooled(n, "Q" * 500_000) for n in range(20)])
    spool.remove([q.seq for q in spool.oldest(20, 100 * MiB)][:-4])  # 2 MB wait, 8 MB free
    waiting = [q.delivery for q in spool.oldest(10, 100 * MiB)]
    spool.close()

    shrunk = subprocess.run(
        [sys.executable, "-c", SHRINK_ON_A_FULL_DISK, str(directory), str(1 * MiB)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after = map(int, shrunk.stdout.split())
    assert after <= before, shrunk.stderr
    assert "could not give its free space back" in shrunk.stderr
    assert "nothing is lost and the spool works as it is" in shrunk.stderr

    spool = Spool(directory)
    try:
        assert spool._db.execute("pragma integrity_check").fetchall() == [("ok",)]
        assert [q.delivery for q in spool.oldest(10, 100 * MiB)] == waiting
        later = _spooled(99)
        spool.append([later])
        assert [q.delivery for q in spool.oldest(10, 100 * MiB)] == [*waiting, later]
    finally:
        spool.close()


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in directory.glob(f"{DATABASE_FILE}*")}


def test_a_new_spool_file_and_its_wal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """SQLite made them 0644: every local user could read the bodies spooled."""
    directory = tmp_path / "spool"
    umask = os.umask(0o022)
    try:
        spool = Spool(directory)
        try:
            spool.append([_spooled(1)])
            modes = _modes(directory)
        finally:
            spool.close()
    finally:
        os.umask(umask)
    assert modes == {
        DATABASE_FILE: 0o600,
        f"{DATABASE_FILE}-wal": 0o600,
        f"{DATABASE_FILE}-shm": 0o600,
    }
    assert directory.stat().st_mode & 0o777 == 0o700


def test_a_spool_file_readable_by_others_is_made_owner_only_when_opened(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    kept = _spooled(1)
    path = _previous_version_spool(directory, [kept])
    path.chmod(0o644)
    spool = Spool(directory)
    try:
        assert _modes(directory)[DATABASE_FILE] == 0o600
        assert [q.delivery for q in spool.oldest(10)] == [kept]
    finally:
        spool.close()
