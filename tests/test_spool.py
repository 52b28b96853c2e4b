"""The host's spool (SQLite): what is written is read back exactly, in one order, never half.

These tests use the spool directly; tests/test_spool_outage.py and the
other test_spool_* files run the hook against a PostgreSQL they stop.
"""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path

import pytest
from conftest import ROOT

from hook.ingest import Delivery
from hook.spool import DATABASE_FILE, Spool, SpooledDelivery, Unreadable


def delivery(body: bytes, user_agent: str | None = "cms/1") -> SpooledDelivery:
    return SpooledDelivery.of(Delivery(body, "application/json", "10.0.0.1", user_agent))


def old_format_frame(payload_body: bytes) -> bytes:
    """A complete, checksum-valid record of the spool file format this spool replaced."""
    header = {
        "key": str(uuid.uuid4()),
        "received_at": "2001-01-01T00:00:00+00:00",
        "content_type": "application/x-sync-repair",
        "client_addr": "6.6.6.6",
        "user_agent": "sync.repair by alice",
    }
    payload = json.dumps(header).encode() + b"\n" + payload_body
    return struct.pack(">4sII", b"FSP1", len(payload), zlib.crc32(payload)) + payload


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    opened = Spool(tmp_path)
    yield opened
    opened.close()


def test_a_spooled_delivery_keeps_the_moment_it_was_received_not_when_it_was_spooled(
    spool: Spool,
) -> None:
    """One that waited on the database was stamped seconds after deliveries it came before."""
    received = Delivery(b"{}", "application/json", "10.0.0.1", "cms/1")
    time.sleep(0.01)  # waited on the database before it was spooled
    spool.append([SpooledDelivery.of(received)])
    [(_, waiting)] = spool.oldest(1)
    assert waiting.received_at == received.received_at


def test_records_come_back_exactly_and_in_order(spool: Spool) -> None:
    bodies = [
        b'{"fragrance_id": 1}',
        b"\xff\x00\n\nnot utf-8",
        b"",
        b'{"x": "' + old_format_frame(b'{"fragrance_id": 7, "cost": 99999}') + b'"}',
        bytes(range(256)) * 64,
    ]
    written = [delivery(b) for b in bodies]
    for record in written:
        assert spool.append([record])
    assert [queued.delivery for queued in spool.oldest(10)] == written
    assert spool.counts() == (5, 0)


def test_one_commit_keeps_the_order_it_was_given(spool: Spool) -> None:
    written = [delivery(f"{n}".encode()) for n in range(50)]
    spool.append(written)
    seqs = [queued.seq for queued in spool.oldest(100)]
    assert [q.delivery for q in spool.oldest(100)] == written
    assert seqs == sorted(seqs)


def test_a_new_spool_opens_while_another_process_holds_its_file(tmp_path: Path) -> None:
    """Two workers open a new spool at once: switching to WAL must wait, not fail."""
    tmp_path.mkdir(exist_ok=True)
    other = sqlite3.connect(tmp_path / DATABASE_FILE, isolation_level=None, check_same_thread=False)
    other.execute("begin immediate")  # a rollback-journal file, held as a writer holds it
    letting_go = threading.Timer(0.5, lambda: other.execute("commit"))
    letting_go.start()
    try:
        spool = Spool(tmp_path)
    finally:
        letting_go.join()
        other.close()
    try:
        assert spool.counts() == (0, 0)
    finally:
        spool.close()


def test_a_reopened_spool_still_holds_what_waits(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append([delivery(b"waiting")])
    first.close()
    again = Spool(tmp_path)
    assert [q.delivery.body for q in again.oldest(10)] == [b"waiting"]
    again.close()


def test_the_waiting_file_exists_from_the_first_record_until_the_queue_is_empty(
    spool: Spool,
) -> None:
    assert not spool.waiting()
    spool.append([delivery(b"one")])
    assert spool.waiting()
    assert not spool.clear_flag_if_empty()  # a record waits: the file stays
    assert spool.waiting()
    spool.remove([queued.seq for queued in spool.oldest(10)])
    assert spool.clear_flag_if_empty()
    assert not spool.waiting()


def test_the_waiting_file_cannot_be_cleared_while_another_process_is_writing(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, busy_timeout=0.2)
    # Another process in the middle of an append holds the write lock: whatever it
    # is about to commit, the drainer cannot decide the queue is empty meanwhile.
    writer = sqlite3.connect(spool.path, isolation_level=None)
    writer.execute("begin immediate")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        spool.clear_flag_if_empty()
    writer.execute("rollback")
    writer.close()
    assert spool.clear_flag_if_empty()
    spool.close()


def test_appending_only_behind_others_writes_nothing_once_the_spool_is_empty(
    spool: Spool,
) -> None:
    assert not spool.append([delivery(b"late")], only_behind=True)
    assert spool.counts() == (0, 0)
    assert not spool.waiting()
    spool.append([delivery(b"first")])
    assert spool.append([delivery(b"behind")], only_behind=True)
    assert [q.delivery.body for q in spool.oldest(10)] == [b"first", b"behind"]


def test_a_lost_waiting_file_is_raised_again_when_the_spool_opens(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([delivery(b"survived a power loss")])
    spool.waiting_path.unlink()  # the record's commit was synced, the file's entry was not
    spool.close()
    reopened = Spool(tmp_path)
    assert reopened.waiting()
    reopened.close()


def test_a_writer_killed_in_the_middle_of_a_record_leaves_nothing_of_it(tmp_path: Path) -> None:
    Spool(tmp_path).close()
    # A process writes a record far larger than SQLite's page cache, so its pages reach
    # the WAL file before the commit, and is killed before it commits.
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from hook.ingest import Delivery;"
            " from hook.spool import Spool, SpooledDelivery;"
            " s = Spool(Path(sys.argv[1]));"
            " s.append([SpooledDelivery.of(Delivery(b'committed', None, None, None))]);"
            " s._db.execute('begin immediate');"
            " s._db.execute('insert into queue (key, received_at, body, spooled_by)"
            " values (?, ?, ?, 0)', ('torn', 'now', b'T' * 20_000_000));"
            " print('written', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert writer.stdout.readline().strip() == "written"
        assert (tmp_path / "spool.sqlite3-wal").stat().st_size > 10_000_000  # half on disk
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    finally:
        writer.kill()
        writer.wait()
    spool = Spool(tmp_path)
    assert [q.delivery.body for q in spool.oldest(10)] == [b"committed"]
    spool.close()


def test_a_write_the_disk_cannot_take_keeps_nothing_and_raises(spool: Spool) -> None:
    spool.append([delivery(b"kept")])
    # SQLITE_FULL, exactly what a full disk gives: the database may not grow any more.
    pages = spool._db.execute("pragma page_count").fetchone()[0]
    spool._db.execute(f"pragma max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        spool.append([delivery(b"x" * 1_000_000)])
    assert [q.delivery.body for q in spool.oldest(10)] == [b"kept"]
    assert spool.counts() == (1, 0)


def test_every_process_on_the_host_appends_to_one_order(tmp_path: Path) -> None:
    Spool(tmp_path).close()
    script = (
        "import sys; from pathlib import Path; from hook.ingest import Delivery;"
        " from hook.spool import Spool, SpooledDelivery;"
        " s = Spool(Path(sys.argv[1])); tag = sys.argv[2].encode();"
        " [s.append([SpooledDelivery.of(Delivery(tag + b'-%d' % n, None, None, None))])"
        "  for n in range(100)]"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), tag], cwd=ROOT)
        for tag in ("a", "b", "c")
    ]
    assert [w.wait(60) for w in writers] == [0, 0, 0]
    spool = Spool(tmp_path)
    bodies = [q.delivery.body for q in spool.oldest(1000)]
    spool.close()
    assert len(bodies) == len(set(bodies)) == 300
    for tag in (b"a", b"b", b"c"):  # each process's own order is kept in the shared one
        assert [b for b in bodies if b.startswith(tag)] == [tag + b"-%d" % n for n in range(100)]


def test_only_one_process_drains_and_a_killed_drainer_lets_go(tmp_path: Path, spool: Spool) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from hook.spool import Spool;"
            " s = Spool(Path(sys.argv[1])); print(s.try_lock_drain(), flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "True"
        assert not spool.try_lock_drain()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert spool.try_lock_drain()
    finally:
        holder.kill()
        holder.wait()


def test_a_record_set_aside_leaves_the_queue_byte_for_byte_and_the_next_carries_on(
    spool: Spool,
) -> None:
    refused, behind = delivery(b"\x00refused\xff", user_agent="refuse-me"), delivery(b"next")
    spool.append([refused, behind])
    first = spool.oldest(1)[0]
    spool.set_aside(first.seq, "CheckViolation: no_x")
    assert [q.delivery for q in spool.oldest(10)] == [behind]
    (kept,) = spool.set_aside_records()
    assert (kept.seq, kept.delivery, kept.error) == (first.seq, refused, "CheckViolation: no_x")
    assert spool.counts() == (1, 1)


def test_a_replayed_record_goes_back_to_the_end_of_the_queue(spool: Spool) -> None:
    refused = delivery(b"refused once")
    spool.append([refused])
    spool.set_aside(spool.oldest(1)[0].seq, "why")
    spool.remove([q.seq for q in spool.oldest(10)])
    spool.clear_flag_if_empty()
    spool.append([delivery(b"arrived later")])
    seq = spool.set_aside_records()[0].seq
    assert spool.replay(seq).delivery == refused
    assert [q.delivery.body for q in spool.oldest(10)] == [b"arrived later", b"refused once"]
    assert spool.counts() == (2, 0) and spool.waiting()
    with pytest.raises(KeyError):
        spool.replay(seq)


def test_a_dropped_record_is_returned_then_gone(spool: Spool) -> None:
    spool.append([delivery(b"write me off")])
    seq = spool.oldest(1)[0].seq
    spool.set_aside(seq, "why")
    assert spool.drop(seq).delivery.body == b"write me off"
    assert spool.set_aside_records() == [] and spool.counts() == (0, 0)
    with pytest.raises(KeyError):
        spool.drop(seq)


def run_cli(spool_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m hook.spool`` as an operator runs it on the hook's host."""
    return subprocess.run(
        [sys.executable, "-m", "hook.spool", "--spool-dir", str(spool_dir), *args],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_the_command_line_lists_shows_replays_and_drops_what_was_set_aside(
    tmp_path: Path, spool: Spool
) -> None:
    bodies = [b'{"fragrance_id": 7, "cost": 1}\x00\xff', b"second"]
    spool.append([delivery(b) for b in bodies])
    for queued in spool.oldest(10):
        spool.set_aside(queued.seq, "IntegrityError: no_x")
    first, second = (r.seq for r in spool.set_aside_records())

    listed = run_cli(tmp_path, "list")
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert listed.returncode == 0
    assert [line["id"] for line in lines] == [first, second]
    assert lines[0]["error"] == "IntegrityError: no_x"
    assert [base64.b64decode(line["body_base64"]) for line in lines] == bodies
    assert b"2 set aside, 0 waiting" in listed.stderr

    shown = run_cli(tmp_path, "show", str(first), "--body")
    assert (shown.returncode, shown.stdout) == (0, bodies[0])

    dropped = run_cli(tmp_path, "drop", str(second))
    assert dropped.returncode == 0
    assert json.loads(dropped.stdout)["body_base64"] == "c2Vjb25k"  # printed before deleting

    assert run_cli(tmp_path, "replay", str(first)).returncode == 0
    assert [q.delivery.body for q in spool.oldest(10)] == [bodies[0]]
    assert spool.set_aside_records() == []

    unknown = run_cli(tmp_path, "drop", str(first))
    assert unknown.returncode == 1 and b"no delivery set aside" in unknown.stderr


def test_the_command_line_refuses_a_directory_without_a_spool(tmp_path: Path) -> None:
    done = run_cli(tmp_path / "nowhere", "list")
    assert done.returncode == 2 and b"no spool at" in done.stderr
    assert not (tmp_path / "nowhere").exists()


def test_the_command_line_shows_and_drops_a_damaged_record(tmp_path: Path, spool: Spool) -> None:
    spool.append([delivery(b"first"), delivery(b"second")])
    raw = sqlite3.connect(spool.path)
    with raw:  # a bit flipped on disk: the key is no longer UTF-8
        raw.execute("update queue set key = cast(x'ff' as text) where seq = 1")
    raw.close()
    [unreadable, _] = spool.oldest(10)
    assert isinstance(unreadable, Unreadable) and unreadable.seq == 1
    assert spool.set_damaged(unreadable.seq, unreadable.reason) == "kept whole"

    [shown] = [json.loads(line) for line in run_cli(tmp_path, "damaged").stdout.splitlines()]
    assert (shown["id"], shown["key"]) == (1, {"base64": "/w=="})
    assert run_cli(tmp_path, "damaged", "1", "--body").stdout == b"first"
    assert spool.tally() == (1, 0, 1)

    dropped = run_cli(tmp_path, "drop", "1")
    assert dropped.returncode == 0 and json.loads(dropped.stdout)["id"] == 1
    assert spool.tally() == (1, 0, 0)
    assert [q.delivery.body for q in spool.oldest(10)] == [b"second"]


def test_a_replayed_record_is_checked_against_the_checksum_it_was_spooled_with(
    spool: Spool,
) -> None:
    """Its bytes changed while set aside (same length): not the spooled ones, says the drain."""
    spool.append([delivery(b"refused once")])
    seq = spool.oldest(1)[0].seq
    spool.set_aside(seq, "why")
    raw = sqlite3.connect(spool.path)
    with raw:
        raw.execute(
            "update set_aside set body = cast('REFUSED ONCE' as blob) where seq = ?", (seq,)
        )
    raw.close()
    spool.replay(seq)
    [unreadable] = spool.oldest(10)
    assert isinstance(unreadable, Unreadable)
    assert unreadable.reason.startswith("the body is not the one spooled")


def test_the_command_line_says_a_spool_file_that_is_not_a_database_is_damaged(
    tmp_path: Path,
) -> None:
    """It printed SQLite's traceback, and nothing of what to do."""
    tmp_path.joinpath(DATABASE_FILE).write_bytes(b"not a database, " * 1000)
    for command in ("list", "damaged"):
        done = run_cli(tmp_path, command)
        assert done.returncode == 2, done.stderr
        assert b"cannot be read (file is not a database): it is damaged" in done.stderr
        assert b"Traceback" not in done.stderr


def test_the_command_line_says_a_record_set_aside_that_is_not_a_delivery_is_damaged(
    tmp_path: Path, spool: Spool
) -> None:
    spool.append([delivery(b"refused")])
    spool.set_aside(spool.oldest(1)[0].seq, "why")
    raw = sqlite3.connect(spool.path)
    with raw:
        raw.execute("update set_aside set key = 'not a key'")
    raw.close()
    done = run_cli(tmp_path, "list")
    assert done.returncode == 2, done.stderr
    assert b"is damaged where this command read it (badly formed" in done.stderr
    assert b"Traceback" not in done.stderr
