"""Each spooled record carries a CRC-32 of its key, receipt time, texts and body checksum.

SQLite's pages carry no checksum, and the body's own CRC-32 (ADR 0032)
covered the body only: a page of the queue overwritten in place, its values
still valid, drained a receipt time, a key or a client address the hook
never wrote, without a word (hostile review). Each test here overwrites the
bytes of one value in a closed spool file, as a disk or a stray write would,
keeping its length and its type.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from conftest import Server
from helpers import body
from processes import start_hook, stop_hook, wait_for_empty_spool

from hook.spool import (
    DATABASE_FILE,
    RECORD_CHANGED,
    Queued,
    Spool,
    SpooledDelivery,
    Unreadable,
    open_spool,
    record_crc32,
)


def _spooled(cost: int) -> SpooledDelivery:
    delta = {"fragrance_id": 7, "cost": cost, "description": f"change {cost}"}
    return SpooledDelivery(
        uuid.uuid4(),
        datetime(2026, 12, 4, 8, 0, cost, 123456, tzinfo=UTC),
        body(delta),
        f"application/json; v={cost}",
        f"10.0.0.{cost}",
        f"cms/{cost}",
    )


def _spool(directory: Path, records: list[SpooledDelivery]) -> Path:
    """A spool file holding ``records`` (seq 1, 2, ...), closed: all of it in the main file."""
    spool = Spool(directory)
    spool.append(records)
    spool.close()
    path = directory / DATABASE_FILE
    assert not Path(f"{path}-wal").exists()
    return path


def _overwrite_in_queue(path: Path, old: bytes, new: bytes) -> None:
    """Overwrite ``old`` with ``new`` (as long) in the queue's table page, nowhere else.

    The key is also in the unique index's page; a damaged page of the table
    leaves that copy as it was.
    """
    assert len(old) == len(new) and old != new
    with sqlite3.connect(path) as raw:
        [(root, page_size)] = raw.execute(
            "select rootpage, (select page_size from pragma_page_size())"
            " from sqlite_master where name = 'queue'"
        )
    raw.close()
    data = bytearray(path.read_bytes())
    page = slice((root - 1) * page_size, root * page_size)
    assert data[page].count(old) == 1, old
    at = page.start + data[page].index(old)
    data[at : at + len(old)] = new
    path.write_bytes(data)


def _as_stored(value: int) -> bytes:
    """An integer as SQLite writes it in a record: big-endian, in 1, 2, 3, 4, 6 or 8 bytes."""
    size = next(n for n in (1, 2, 3, 4, 6, 8) if value < 2 ** (8 * n - 1))
    return value.to_bytes(size, "big")


def _stored(record: SpooledDelivery, column: str) -> bytes:
    """The bytes SQLite stores for one of a record's values."""
    body_crc = zlib.crc32(record.body)
    values = dict(
        zip(
            ("key", "received_at", "content_type", "client_addr", "user_agent"),
            (
                str(record.key),
                record.received_at.isoformat(),
                record.content_type,
                record.client_addr,
                record.user_agent,
            ),
            strict=True,
        )
    )
    if column == "body_crc32":
        return _as_stored(body_crc)
    assert values[column] is not None
    return str(values[column]).encode()


def _damaged_copy(column: str, stored: bytes) -> bytes:
    """``stored`` with one character changed, still a value the hook could have written."""
    if column == "body_crc32":
        return stored[:-1] + bytes([stored[-1] ^ 0x01])
    if column == "key":  # another UUID
        return (b"0" if stored[:1] != b"0" else b"1") + stored[1:]
    if column == "received_at":  # a minute later, the same form
        return stored.replace(b"08:00:", b"08:01:")
    return stored[:-1] + (b"9" if stored[-1:] != b"9" else b"8")


COLUMNS = ["key", "received_at", "content_type", "client_addr", "user_agent", "body_crc32"]


def test_a_record_spooled_whole_reads_back_as_its_delivery(tmp_path: Path) -> None:
    records = [_spooled(1), _spooled(2)]
    _spool(tmp_path / "spool", records)
    spool = Spool(tmp_path / "spool")
    try:
        assert spool.oldest(10) == [Queued(1, records[0]), Queued(2, records[1])]
    finally:
        spool.close()


@pytest.mark.parametrize("column", COLUMNS)
def test_each_value_of_a_record_overwritten_on_disk_fails_its_check(
    tmp_path: Path, column: str
) -> None:
    """Every value the drain sends, and the body's checksum: the record is unreadable."""
    records = [_spooled(1), _spooled(2), _spooled(3)]
    path = _spool(tmp_path / "spool", records)
    stored = _stored(records[1], column)
    _overwrite_in_queue(path, stored, _damaged_copy(column, stored))
    spool = Spool(tmp_path / "spool")
    try:
        read = spool.oldest(10)
    finally:
        spool.close()
    assert read[0] == Queued(1, records[0])
    assert read[2] == Queued(3, records[2])
    assert isinstance(read[1], Unreadable), read[1]
    assert read[1].reason.startswith(RECORD_CHANGED), read[1].reason


def test_a_damaged_record_checksum_fails_its_check(tmp_path: Path) -> None:
    records = [_spooled(1), _spooled(2)]
    path = _spool(tmp_path / "spool", records)
    with sqlite3.connect(path) as raw:
        [(crc,)] = raw.execute("select record_crc32 from queue where seq = 2")
    raw.close()
    stored = _as_stored(crc)
    _overwrite_in_queue(path, stored, stored[:-1] + bytes([stored[-1] ^ 0x80]))
    spool = Spool(tmp_path / "spool")
    try:
        [first, second] = spool.oldest(10)
    finally:
        spool.close()
    assert first == Queued(1, records[0])
    assert isinstance(second, Unreadable) and second.reason.startswith(RECORD_CHANGED)


def test_a_record_written_by_the_version_before_drains_unchecked(tmp_path: Path) -> None:
    """Into this version's file (after a rollback), or into its own: its checksum is null."""
    directory = tmp_path / "spool"
    older, newer = _spooled(1), _spooled(2)
    spool = Spool(directory)
    spool.append([newer])
    spool.close()
    with sqlite3.connect(directory / DATABASE_FILE) as raw:  # as that version inserts
        raw.execute(
            "insert into queue (key, received_at, body, content_type, client_addr, user_agent,"
            " body_crc32, spooled_by) values (?, ?, ?, ?, ?, ?, ?, 1)",
            (
                str(older.key),
                older.received_at.isoformat(),
                older.body,
                older.content_type,
                older.client_addr,
                older.user_agent,
                zlib.crc32(older.body),
            ),
        )
    raw.close()
    spool = Spool(directory)
    try:
        assert spool.oldest(10) == [Queued(1, newer), Queued(2, older)]
    finally:
        spool.close()


def test_a_record_set_aside_and_replayed_keeps_its_record_checksum(tmp_path: Path) -> None:
    records = [_spooled(1)]
    _spool(tmp_path / "spool", records)
    spool = Spool(tmp_path / "spool")
    try:
        spool.set_aside(1, "refused")
        spool.replay(1)
        [(crc,)] = spool._db.execute("select record_crc32 from queue").fetchall()
        assert crc is not None
        assert spool.oldest(10) == [Queued(2, records[0])]
    finally:
        spool.close()


def test_a_receipt_time_overwritten_on_disk_is_moved_aside_not_drained(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """The drain stored the wrong time without a word; now the record goes to ``damaged``."""
    records = [_spooled(1), _spooled(2), _spooled(3)]
    path = _spool(tmp_path / "spool", records)
    stored = _stored(records[1], "received_at")
    _overwrite_in_queue(path, stored, _damaged_copy("received_at", stored))

    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        health = wait_for_empty_spool(hook)
    finally:
        stop_hook(hook)
    stored_times = db.execute("select received_at from sync.inbox order by id").fetchall()
    assert [t for (t,) in stored_times] == [records[0].received_at, records[2].received_at]
    assert health["spool_damaged"] == 1
    assert f"spooled record 2 is damaged ({RECORD_CHANGED}" in hook.output()


@pytest.mark.parametrize(
    ("column", "value"),
    [("seq", 9), ("spooled_by", 4242)],
)
def test_a_place_or_a_spooler_overwritten_fails_the_check(
    tmp_path: Path, column: str, value: int
) -> None:
    """A record's place in the queue is the only order there is: a damaged one reordered them.

    The record checksum covered the key, the receipt time, the texts and the
    body's checksum; record 2 of three, its ``seq`` changed to 9, drained
    after record 3 without a word (hostile review).
    """
    records = [_spooled(1), _spooled(2), _spooled(3)]
    path = _spool(tmp_path / "spool", records)
    with sqlite3.connect(path) as raw:  # a hand edit, or a cell's value overwritten
        raw.execute(f"update queue set {column} = ? where seq = 2", (value,))
    raw.close()
    spool = Spool(tmp_path / "spool")
    try:
        read = spool.oldest(10)
    finally:
        spool.close()
    changed = [r for r in read if isinstance(r, Unreadable)]
    assert len(changed) == 1, read
    assert changed[0].reason.startswith(RECORD_CHANGED), changed[0].reason
    assert [r for r in read if isinstance(r, Queued)] == [
        Queued(1, records[0]),
        Queued(3, records[2]),
    ]


def test_a_record_of_the_format_before_drains_checked_as_it_was_written(
    tmp_path: Path,
) -> None:
    """One spooled by the version whose checksum left out ``seq`` and ``spooled_by``."""
    directory = tmp_path / "spool"
    older, newer = _spooled(1), _spooled(2)
    spool = Spool(directory)
    spool.append([newer])
    spool.close()
    body_crc = zlib.crc32(older.body)
    texts = (
        str(older.key),
        older.received_at.isoformat(),
        older.content_type,
        older.client_addr,
        older.user_agent,
    )
    with sqlite3.connect(directory / DATABASE_FILE) as raw:  # as that version inserts
        raw.execute(
            "insert into queue (key, received_at, body, content_type, client_addr, user_agent,"
            " body_crc32, record_crc32, spooled_by) values (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                *texts[:2],
                older.body,
                *texts[2:],
                body_crc,
                record_crc32([None if t is None else t.encode() for t in texts], body_crc),
            ),
        )
        raw.execute(  # and its key overwritten: still checked
            "insert into queue (key, received_at, body, content_type, client_addr, user_agent,"
            " body_crc32, record_crc32, spooled_by) values (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                str(uuid.uuid4()),
                *texts[1:2],
                older.body,
                *texts[2:],
                body_crc,
                record_crc32([None if t is None else t.encode() for t in texts], body_crc),
            ),
        )
    raw.close()
    spool = Spool(directory)
    try:
        first, second, third = spool.oldest(10)
    finally:
        spool.close()
    assert (first, second) == (Queued(1, newer), Queued(2, older))
    assert isinstance(third, Unreadable) and third.reason.startswith(RECORD_CHANGED)


def test_a_record_damaged_in_its_key_leaves_the_queue_file(tmp_path: Path) -> None:
    """Its key's copy in the unique index is the old one: SQLite could not delete the record.

    It stayed in the file for ever, marked and skipped, and ``drop`` could
    not remove it either (hostile review). Now it is moved to ``damaged``,
    byte for byte, and leaves the queue's file.
    """
    records = [_spooled(1), _spooled(2), _spooled(3)]
    path = _spool(tmp_path / "spool", records)
    stored = _stored(records[1], "key")
    damaged_key = _damaged_copy("key", stored)
    _overwrite_in_queue(path, stored, damaged_key)
    spool = Spool(tmp_path / "spool")
    try:
        [_, unreadable, _] = spool.oldest(10)
        assert isinstance(unreadable, Unreadable)
        kept = spool.set_damaged(unreadable.seq, unreadable.reason)
        assert "stays in the queue's file" not in kept, kept
        [record] = spool.damaged_records()
        assert record["still_in_queue_file"] is False
        assert record["key"] == damaged_key.decode()
        assert base64.b64decode(record["body_base64"]) == records[1].body
        assert spool.oldest(10) == [Queued(1, records[0]), Queued(3, records[2])]
        # Its key is free again: the same delivery spooled anew is taken.
        spool.append([records[1]])
        assert spool.tally() == (3, 0, 1)
        spool.drop_damaged(2)
        assert spool.tally() == (3, 0, 0)
        assert spool._db.execute("pragma integrity_check").fetchall() == [("ok",)]
    finally:
        spool.close()


def test_a_record_an_earlier_version_could_not_delete_leaves_the_file_when_the_spool_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Marked ``still_in_queue_file`` before the index was rebuilt to delete it.

    The version before this one's could not delete a record damaged in its
    key, and marked it; this one can, but tried only at ``drop``: the
    operator read ``still_in_queue_file`` (rename the file) for a record the
    spool can delete itself (hostile review). Opening the spool now tries.
    """
    records = [_spooled(1), _spooled(2), _spooled(3)]
    directory = tmp_path / "spool"
    path = _spool(directory, records)
    stored = _stored(records[1], "key")
    _overwrite_in_queue(path, stored, _damaged_copy("key", stored))
    with sqlite3.connect(path) as raw:  # what set_damaged of that version left
        raw.execute(
            "insert into damaged (seq, key, received_at, body, body_length, content_type,"
            " client_addr, user_agent, spooled_by, found_at, error, in_queue)"
            " select seq, key, received_at, body, length(body), content_type, client_addr,"
            " user_agent, spooled_by, 'then', 'damaged', 1 from queue where seq = 2"
        )
    raw.close()
    with caplog.at_level(logging.INFO, logger="hook.spool"):
        spool = open_spool(str(directory))
    try:
        [record] = spool.damaged_records()
        assert record["still_in_queue_file"] is False
        assert spool._db.execute("select seq from queue order by seq").fetchall() == [(1,), (3,)]
        assert spool._db.execute("pragma integrity_check").fetchall() == [("ok",)]
    finally:
        spool.close()
    assert "damaged records the spool could not delete before left its file: 1" in caplog.text


def test_a_record_checksum_overwritten_to_null_is_not_drained_unchecked(tmp_path: Path) -> None:
    """One type byte set to 0 made the checksum null, and the record drained unchecked.

    A record that names its format (``crc_format``, written since ADR 0041)
    was written with a checksum: one without is damaged, not an old one.
    """
    records = [_spooled(1), _spooled(2)]
    path = _spool(tmp_path / "spool", records)
    with sqlite3.connect(path) as raw:
        raw.execute(  # and its receipt time then changed unseen
            "update queue set record_crc32 = null, received_at = ? where seq = 2",
            (records[0].received_at.isoformat(),),
        )
    raw.close()
    spool = Spool(tmp_path / "spool")
    try:
        first, second = spool.oldest(10)
    finally:
        spool.close()
    assert first == Queued(1, records[0])
    assert isinstance(second, Unreadable) and second.reason.startswith(RECORD_CHANGED), second
