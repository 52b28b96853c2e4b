"""The host's spool: deliveries kept on local disk while the database cannot take them.

The CMS never retries, so when PostgreSQL cannot store a delivery the hook
writes it to a SQLite database in ``SPOOL_DIR`` (WAL, ``synchronous=FULL``:
the commit has reached the disk) and only then answers 202 ``spooled``. A
record is a row: it is written whole or not at all, and nothing inside a
body can ever be read as a record of its own.

Every hook process on the host shares that one file, so there is one queue
in one order (an AUTOINCREMENT sequence) whatever the number of workers:

- ``spool.waiting`` (a file beside the database) exists whenever the queue
  may hold a record. Whoever spools creates it inside the same write
  transaction as its insert; only the drainer removes it, inside a write
  transaction that finds the queue empty. SQLite's write lock makes the two
  exclusive, so a record never waits without the file.
- A delivery goes straight to the database only when that file is absent
  and nothing of this process is on its way to the spool (one ``stat`` per
  request); otherwise it is spooled behind what waits. A delivery queued for
  the spool that finds, under the write lock, that the drainer has just
  emptied it goes straight to the database instead.
- One service uses a spool directory: ``python -m hook`` holds an ``flock``
  on ``service.lock`` for its life, and a second one does not start
  (``hold_spool_dir``, ADR 0045); its workers share the spool.
- One process drains at a time: the one holding an ``flock`` on
  ``drain.lock`` (the kernel releases it when its process dies, so the work
  of a killed worker is drained by another). It stores the oldest records,
  many per transaction (``DRAIN_BATCH`` records, ``DRAIN_BYTES`` of
  bodies), through ``sync.store_spooled`` (idempotent on the delivery key:
  a crash between the database's commit and the spool's delete stores
  nothing twice), then deletes them; the merger applies them as it does
  what a batch stored.
- A record the database refuses for a reason that is not an outage (a
  constraint, a type it cannot take) is found by splitting the failed batch
  and moved, byte for byte, to the ``set_aside`` table; the records behind
  it carry on. ``python -m hook.spool list|show|replay|drop`` handles them.
- Each record carries the CRC-32 of its body, taken when it is spooled and
  checked when it is drained: SQLite's pages have no checksum, and a page of
  a body overwritten with its link to the next intact reads as the body.
  A second CRC-32 covers the rest of the record (key, receipt time, texts,
  the body's CRC-32, and its place ``seq`` and ``spooled_by``): a page
  overwritten in place drained a receipt time or a key the hook never
  wrote, or reordered the queue. A file of a version before gains the
  columns when it opens; its records (null there) drain unchecked, or
  checked without their place (``crc_format`` null, ADR 0036's checksum).
- A record received more than ``SPOOL_HOLD_AFTER_DAYS`` ago is held (set
  aside), not stored: the inbox's purge may have deleted its key, and a
  record stored once already would be stored twice (ADR 0041).
  ``replay <id> --store-old`` stores it anyway: a flag the record's checksum
  covers (``crc_format`` 3, ADR 0043), else it is held again. Held records
  are set aside a batch per commit and logged a line per batch at most, then
  counted when the pass ends.
- A record the spool itself cannot read (SQLite says ``SQLITE_CORRUPT``: a
  damaged page of its body) or cannot make a delivery of (a key, a time,
  a text that is not what the hook wrote, a record or a body that fails its
  checksum)
  is moved to the ``damaged`` table,
  with every byte of it SQLite can still read, and the records behind it
  carry on (one whose key is damaged is found under its old key in the
  unique index: the index is rebuilt to delete it); one whose damaged pages
  SQLite cannot even delete stays in the file, marked by its row in
  ``damaged``, and is skipped.
  ``python -m hook.spool damaged`` shows them; a worker opening the spool
  tries again to delete those that stayed (``Spool.leave_marked``). Any other SQLite error (I/O,
  a full disk, a read-only file, a lock) is the file's or the disk's, not a
  record's: the drain stops and tries again, and moves nothing.
- Once a drain has emptied the queue, and when a worker opens the spool, the
  file gives its free pages back to the disk by a VACUUM, if what it still
  holds is small (``Spool.shrink``, ADR 0032).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import json
import logging
import os
import pwd
import socket
import sqlite3
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hook.ingest import (
    OUTAGE_SQLSTATES,
    BatchingStore,
    DatabaseDownError,
    DatabaseState,
    DeadlineError,
    Delivery,
    Receipt,
    StoreError,
    within,
)
from hook.log_limit import LEFT_OUT, LogLimit

log = logging.getLogger("hook.spool")

T = TypeVar("T")

DATABASE_FILE = "spool.sqlite3"
WAITING_FILE = "spool.waiting"
DRAIN_LOCK_FILE = "drain.lock"
#: Held by the one service using the directory, for its life (``hold_spool_dir``).
SERVICE_LOCK_FILE = "service.lock"

#: Records stored per database transaction when draining.
DRAIN_BATCH = 500
#: ... and bytes of bodies, past the first record: the worker that drains holds a batch
#: about four times over (read back, dumped, sent). 300 spooled bodies of 1 MiB made one
#: batch, and a worker of 990 MB (150 MB when they arrive live); past PostgreSQL's 1 GB
#: limit on one value (MAX_BODY_BYTES above 2 MiB) every attempt would fail as an outage
#: (a program limit, 54000), retried for ever, holding back the whole spool (hostile review).
DRAIN_BYTES = 4 * 1024 * 1024
#: A drained batch (at most DRAIN_BYTES) unanswered this many times DB_TIMEOUT is given up.
DRAIN_DEADLINE_FACTOR = 10
#: Deliveries of one process written to the spool in one SQLite commit (one fsync).
APPEND_GROUP = 500
#: How long a write waits for another process's write lock before giving up (then 503).
BUSY_TIMEOUT_SECONDS = 10.0

#: While the drain catches up after an outage (the database answers, records still wait),
#: a delivery spooled behind them is answered once the spool is empty, or after this
#: long: senders that wait for their answer then cannot outpace the drain.
CATCH_UP_HOLD_SECONDS = 1.0
#: How often a held answer looks whether the spool is empty (one stat) or the database down.
HOLD_POLL_SECONDS = 0.01
#: How often, at most, a process holding answers checks that the database still answers.
VERIFY_EVERY_SECONDS = 0.25

#: A spool whose free pages (what drained records left) make this many bytes gives them
#: back to the disk: after an outage that spooled 2 GB, the emptied file kept its 2 GB.
SHRINK_FREE_BYTES = 4 * 1024 * 1024
#: ... through a VACUUM, which rewrites what the file still holds (records set aside,
#: damaged, waiting) while other workers' appends wait for it: only while that is at most
#: this much (rewritten in about a second, far less than BUSY_TIMEOUT_SECONDS).
SHRINK_LIVE_BYTES = 64 * 1024 * 1024
#: The WAL keeps at most this much of its file when it restarts (journal_size_limit).
WAL_LIMIT_BYTES = 64 * 1024 * 1024

SPOOL_FAILED = "database unavailable and the spool cannot be written; the delivery was not stored"

SCHEMA = (
    """
    create table if not exists queue (
        seq integer primary key autoincrement,
        key text not null unique,
        received_at text not null,
        body blob not null,
        content_type text,
        client_addr text,
        user_agent text,
        spooled_by integer not null,
        body_crc32 integer,
        record_crc32 integer,
        crc_format integer,
        store_old integer
    )
    """,
    """
    create table if not exists set_aside (
        seq integer primary key,
        key text not null unique,
        received_at text not null,
        body blob not null,
        content_type text,
        client_addr text,
        user_agent text,
        spooled_by integer not null,
        set_aside_at text not null,
        error text not null,
        body_crc32 integer,
        record_crc32 integer,
        crc_format integer,
        store_old integer
    )
    """,
    # No column types: what a damaged record gave is kept as it was read (a text that
    # is not UTF-8, a number, a null where the queue wants a value), byte for byte.
    """
    create table if not exists damaged (
        seq integer primary key,
        key,
        received_at,
        body,
        body_length,
        content_type,
        client_addr,
        user_agent,
        spooled_by,
        found_at text not null,
        error text not null,
        in_queue integer not null
    )
    """,
)
COLUMNS = "key, received_at, body, content_type, client_addr, user_agent"
#: What a record is written with: its columns, the CRC-32 of its body, and the CRC-32 of the
#: record (``record_crc32``), both taken when it is spooled and checked when it is drained
#: (SQLite's pages carry no checksum: a page overwritten in place is read back as the record,
#: a body, a key or a receipt time the hook never wrote). Null in a record spooled by a version
#: before them (``UPGRADES`` adds the columns): drained unchecked, as that version did.
WRITTEN = f"{COLUMNS}, body_crc32, record_crc32, crc_format, store_old"
#: ``crc_format`` of a record whose ``record_crc32`` covers its place in the queue (``seq``)
#: and ``spooled_by`` too (ADR 0041): a damaged seq reordered the deliveries unseen, and
#: receipt order is the only order there is. Null: written by a version before, its
#: checksum (if any) covers the key, receipt time, texts and body's checksum only.
CRC_FORMAT = 2
#: ``crc_format`` of a record replayed with ``--store-old``: its ``record_crc32`` covers
#: ``store_old`` too, after the rest of ``CRC_FORMAT``'s (ADR 0043). A null and the integer
#: 1 differ by one type byte in SQLite's record: a flipped byte stored a held record. A
#: record without the flag stays ``CRC_FORMAT``, which a version before reads; the drain
#: obeys ``store_old`` only in a record of this format whose checksum holds.
STORE_OLD_FORMAT = 3
#: Columns a file of an older version lacks, added in place when the spool opens. A version
#: before them writes null there (it names its columns), so a file goes back and forth.
UPGRADES = (
    ("queue", "body_crc32", "alter table queue add column body_crc32 integer"),
    ("set_aside", "body_crc32", "alter table set_aside add column body_crc32 integer"),
    ("queue", "record_crc32", "alter table queue add column record_crc32 integer"),
    ("set_aside", "record_crc32", "alter table set_aside add column record_crc32 integer"),
    ("queue", "crc_format", "alter table queue add column crc_format integer"),
    ("set_aside", "crc_format", "alter table set_aside add column crc_format integer"),
    ("queue", "store_old", "alter table queue add column store_old integer"),
    ("set_aside", "store_old", "alter table set_aside add column store_old integer"),
)
#: The same, read as they are stored: a text that is not UTF-8 fails to decode as one
#: record's damage, not as an error of the whole batch's read.
RAW_COLUMNS = (
    "cast(key as blob), cast(received_at as blob), body, cast(content_type as blob),"
    " cast(client_addr as blob), cast(user_agent as blob), body_crc32, record_crc32,"
    " spooled_by, crc_format, store_old"
)
#: How the reason of a record whose body fails its checksum begins (in ``damaged``: its
#: bytes there are whole but wrong, not the delivery's).
BODY_CHANGED = "the body is not the one spooled"
#: ... and of one whose other values fail the record's checksum.
RECORD_CHANGED = "the record is not the one spooled"
#: How the reason of a record held for its age begins (in ``set_aside``).
HELD = "held: received before the inbox's oldest kept key"
#: A record received longer ago than this is held (set aside) by the drain instead of
#: stored, unless an operator replayed it with ``--store-old`` (``SPOOL_HOLD_AFTER_DAYS``).
HOLD_AFTER_DAYS = 80.0
#: The queue's records that are not known to be damaged (one SQLite could not delete
#: stays in the file, marked by its row in ``damaged``).
LIVE = "seq not in (select seq from damaged)"


@dataclass(frozen=True)
class SpooledDelivery:
    """One delivery as received, waiting for the database."""

    key: uuid.UUID
    received_at: datetime
    body: bytes
    content_type: str | None
    client_addr: str | None
    user_agent: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> SpooledDelivery:
        """The delivery with the moment it was received, not the moment it is spooled.

        One that waited on the database before it was spooled was stamped when
        spooled, seconds after deliveries it came before (hostile review).
        """
        return cls(
            delivery.key,
            delivery.received_at,
            delivery.body,
            delivery.content_type,
            delivery.client_addr,
            delivery.user_agent,
        )

    def row(self, seq: int, spooled_by: int) -> tuple[Any, ...]:
        """The values of ``seq, WRITTEN, spooled_by`` for this place, checksums taken now.

        Never ``store_old``: only an operator's replay sets it (``Spool.replay``).
        """
        key, received_at = str(self.key), self.received_at.isoformat()
        body_crc = zlib.crc32(self.body)
        texts = (key, received_at, self.content_type, self.client_addr, self.user_agent)
        record_crc = record_crc32(
            [None if t is None else t.encode() for t in texts], body_crc, (seq, spooled_by)
        )
        checks = (body_crc, record_crc, CRC_FORMAT, None)
        return (seq, *texts[:2], self.body, *texts[2:], *checks, spooled_by)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SpooledDelivery:
        """Rebuild a delivery from the spool's columns."""
        key, received_at, body, content_type, client_addr, user_agent = row
        return cls(
            uuid.UUID(key),
            datetime.fromisoformat(received_at),
            bytes(body),
            content_type,
            client_addr,
            user_agent,
        )

    @classmethod
    def from_raw(cls, seq: int, row: Sequence[Any]) -> SpooledDelivery:
        """Rebuild the delivery at ``seq`` from ``RAW_COLUMNS``; ValueError if not what was written.

        The hook writes a UUID, an ISO time with its zone, a blob whose CRC-32
        it stored beside it, texts (or nulls), and a CRC-32 of all of them but
        the body (``record_crc32``; since ``CRC_FORMAT``, of its place ``seq`` and
        ``spooled_by`` too): anything else is damage (a bit flipped on
        disk, a page overwritten, a hand edit), and storing it would send the
        database a delivery nobody received. The values are judged first (what
        is wrong with them says more), then the checksums.
        """
        key, received_at, body, content_type, client_addr, user_agent, crc, record_crc = row[:8]
        spooled_by, crc_format, store_old = row[8:]
        if not isinstance(body, bytes):
            raise ValueError(f"the body is a {type(body).__name__}, not bytes")
        moment = datetime.fromisoformat(_text("received_at", received_at))
        if moment.tzinfo is None:
            raise ValueError(f"received_at {moment.isoformat()!r} has no time zone")
        delivery = cls(
            uuid.UUID(_text("key", key)),
            moment,
            body,
            _optional_text("content_type", content_type),
            _optional_text("client_addr", client_addr),
            _optional_text("user_agent", user_agent),
        )
        if record_crc is None and crc_format is not None:
            # Every version that names a format took a checksum: a null here is one type byte
            # set to 0, which drained the record unchecked (hostile review).
            raise ValueError(
                f"{RECORD_CHANGED}: its record_crc32 is null in a record of crc_format"
                f" {crc_format!r} (a page of it overwritten on disk)"
            )
        if record_crc is not None:  # None: spooled by a version that took no such checksum
            # Before the body's: it covers the body's checksum too, so a damaged body_crc32
            # is the record's damage, and a body that fails its own is the body's.
            if not isinstance(record_crc, int):
                raise ValueError(f"record_crc32 is {record_crc!r}, not a number")
            texts = (key, received_at, content_type, client_addr, user_agent)
            # Null: a record of the version before, whose checksum left its place out. Any
            # other value than this version's is damage, and fails here (covered differently).
            place = _place(seq, spooled_by, crc_format, store_old)
            if (actual := record_crc32(texts, crc, place)) != record_crc:
                covered = "key, receipt time, texts and body checksum"
                if place is not None:
                    covered = f"place in the queue ({seq}), spooling process, {covered}"
                if crc_format == STORE_OLD_FORMAT:
                    covered = f"--store-old ({store_old!r}), {covered}"
                raise ValueError(
                    f"{RECORD_CHANGED}: its {covered} have CRC-32 {actual:08x}, it was spooled"
                    f" with {record_crc:08x} (a page of it overwritten on disk)"
                )
        if crc is not None:  # None: spooled by a version that took no checksum
            if not isinstance(crc, int):
                raise ValueError(f"body_crc32 is {crc!r}, not a number")
            if (actual := zlib.crc32(body)) != crc:
                raise ValueError(
                    f"{BODY_CHANGED}: the {len(body)} bytes read have CRC-32 {actual:08x},"
                    f" it was spooled with {crc:08x} (a page of it overwritten on disk)"
                )
        return delivery


def record_crc32(
    texts: Sequence[object], body_crc: object, place: Sequence[object] | None = None
) -> int:
    """The CRC-32 of a record's values but its body, as stored, and of its body's CRC-32.

    ``texts`` are the key, the receipt time, the content type, the client's
    address and the user agent, each as its stored bytes or None; each is
    framed (a tag, a length), so no two records' values give the same
    input. The body is covered by its own checksum, which this one covers:
    the body's bytes are read once, not twice. A value that is not bytes
    nor None (damage changed its type) is framed apart, as its ``repr``: it fails.
    ``place`` (``CRC_FORMAT`` on): the record's ``seq`` and ``spooled_by`` (taken
    when spooled, before SQLite stores them) and, when checked, the ``crc_format``
    read, framed after the rest; without it, the checksum of ADR 0036.
    """
    if place is not None and len(place) == 2:
        place = (*place, CRC_FORMAT)
    framed = bytearray()
    for value in (*texts, body_crc, *(place or ())):
        if value is None:
            framed += b"\x00"
            continue
        if isinstance(value, bytes):
            tag, data = b"\x01", value
        elif isinstance(value, int) and 0 <= value < 2**32:
            tag, data = b"\x02", value.to_bytes(4, "big")
        elif isinstance(value, int) and 0 <= value < 2**63:  # a seq past 2**32
            tag, data = b"\x04", value.to_bytes(8, "big")
        else:
            tag, data = b"\x03", repr(value).encode()
        framed += tag + len(data).to_bytes(4, "big") + data
    return zlib.crc32(framed)


def _place(
    seq: int, spooled_by: object, crc_format: object, store_old: object
) -> tuple[object, ...] | None:
    """What of its place a record's checksum covers, by its ``crc_format`` (as read).

    None: ADR 0036's (no place). ``STORE_OLD_FORMAT``: the place, the format,
    then ``store_old``. Any other value (``CRC_FORMAT``, or damage): the place
    and that value, which fails unless it is ``CRC_FORMAT``.
    """
    if crc_format is None:
        return None
    if crc_format == STORE_OLD_FORMAT:
        return (seq, spooled_by, crc_format, store_old)
    return (seq, spooled_by, crc_format)


def _text(column: str, value: object) -> str:
    if not isinstance(value, bytes):
        raise ValueError(f"{column} is {value!r}, not a text")
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{column} is not UTF-8 ({value[:64]!r})") from exc


def _optional_text(column: str, value: object) -> str | None:
    return None if value is None else _text(column, value)


def is_damage(exc: BaseException) -> bool:
    """Whether SQLite says the file's content is damaged where it read, not that it failed.

    Only ``SQLITE_CORRUPT``: a page that is not what the b-tree says it is.
    An I/O error, a full disk, a read-only file, a lock or a missing file
    (``SQLITE_IOERR``, ``SQLITE_FULL``, ``SQLITE_READONLY``, ``SQLITE_BUSY``,
    ``SQLITE_CANTOPEN``...) may pass, and says nothing of one record: the
    drain tries again later and moves nothing aside for it.
    """
    name = getattr(exc, "sqlite_errorname", None)
    return isinstance(exc, sqlite3.DatabaseError) and str(name).startswith("SQLITE_CORRUPT")


def _decoded(row: Sequence[Any], hold_before: datetime | None) -> Queued | Unreadable | Held:
    """A raw row of the queue (and its ``store_old``) as a delivery, or why it is not one."""
    seq, *values = row
    if len(values) == 1:  # _read_one's (seq, reason)
        return Unreadable(seq, values[0])
    try:
        delivery = SpooledDelivery.from_raw(seq, values)
    except ValueError as exc:
        if str(exc).startswith((BODY_CHANGED, RECORD_CHANGED)):
            return Unreadable(seq, str(exc))
        return Unreadable(seq, f"not a delivery: {exc}")
    # Obeyed only where the record's checksum, checked above, covers it: a flag in a record
    # of another format (a flipped byte, a version that did not cover it) is held again.
    crc_format, store_old = values[-2:]
    forced = crc_format == STORE_OLD_FORMAT and store_old == 1
    if hold_before is not None and delivery.received_at < hold_before and not forced:
        return Held(seq, delivery, store_old is not None)
    return Queued(seq, delivery)


def _read_prefix(db: sqlite3.Connection, seq: int) -> bytes | None:
    """The bytes of a record's body up to its first damaged page (None if none are read)."""
    try:
        blob = db.blobopen("queue", "body", seq, readonly=True)
    except sqlite3.DatabaseError as exc:
        # SQLITE_ERROR: not a blob nor a text (a damaged type), nothing to read this way.
        if is_damage(exc) or getattr(exc, "sqlite_errorname", None) == "SQLITE_ERROR":
            return None
        raise
    read = bytearray()
    step = 65536
    failed = False
    with blob:
        while step:
            try:
                chunk = blob.read(step)
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                failed = True
                step //= 2  # find the last byte SQLite gives before it fails
                blob.seek(len(read))
                continue
            if not chunk:
                break
            read += chunk
    if failed:
        # SQLite finds the damage at an overflow page's link to the next: the page
        # holding that link was read as the body, and its bytes are the damage's too
        # (a page has no checksum). Only the pages before it are the delivery's.
        # (The spool reserves no bytes at the end of its pages: 4 for the link.)
        page_size = db.execute("pragma page_size").fetchone()[0]
        del read[max(0, len(read) - (page_size - 4)) :]
    return bytes(read)


def _shown(value: object) -> object:
    """A value of a damaged record for JSON: a UTF-8 text as is, other bytes in base64."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    return value


def _describe_damaged(row: Sequence[Any]) -> dict[str, Any]:
    seq, key, received_at, body, length, content_type, client_addr, user_agent = row[:8]
    spooled_by, found_at, error, in_queue = row[8:]
    return {
        "id": seq,
        "key": _shown(key),
        "received_at": _shown(received_at),
        "content_type": _shown(content_type),
        "client_addr": _shown(client_addr),
        "user_agent": _shown(user_agent),
        "spooled_by_pid": spooled_by,
        "found_at": found_at,
        "error": error,
        "still_in_queue_file": bool(in_queue),
        "body_length": length,
        "body_bytes": None if body is None else len(body),
        "body_base64": None if not isinstance(body, bytes) else base64.b64encode(body).decode(),
    }


class Queued(NamedTuple):
    """A delivery waiting in the queue, with its place in it."""

    seq: int
    delivery: SpooledDelivery


class Held(NamedTuple):
    """A delivery received before the drain's ``hold_before``: the inbox may have lost its key."""

    seq: int
    delivery: SpooledDelivery
    #: It carries a ``store_old`` its checksum does not cover (damage, or a version before).
    unchecked_store_old: bool = False


class UndeletableError(Exception):
    """A damaged record SQLite cannot delete from the spool's file (a page it must free)."""


class Unreadable(NamedTuple):
    """A record of the queue the spool cannot read, or cannot make a delivery of."""

    seq: int
    reason: str


class SetAside(NamedTuple):
    """A delivery the database refused, kept for a person to replay or drop."""

    seq: int
    delivery: SpooledDelivery
    spooled_by: int
    set_aside_at: str
    error: str

    def describe(self) -> dict[str, Any]:
        """Everything about it as JSON-able values; ``body_base64`` holds the exact bytes."""
        d = self.delivery
        return {
            "id": self.seq,
            "key": str(d.key),
            "received_at": d.received_at.isoformat(),
            "content_type": d.content_type,
            "client_addr": d.client_addr,
            "user_agent": d.user_agent,
            "spooled_by_pid": self.spooled_by,
            "set_aside_at": self.set_aside_at,
            "error": self.error,
            "body_bytes": len(d.body),
            "body_base64": base64.b64encode(d.body).decode(),
        }


def _owner_only(path: Path) -> None:
    """Create the spool's file readable by its owner only, or take others' bits off it.

    SQLite creates a file with 0644 (less the umask), and its WAL and shared
    memory with the file's mode: every local user could read the bodies of
    the deliveries spooled (hostile review). A file created empty first is a
    new database to SQLite; its WAL and shared memory then take its 0600.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with suppress(FileNotFoundError):
            mode = each.stat().st_mode & 0o777
            if mode & 0o077:
                try:
                    os.chmod(each, mode & 0o700)
                except PermissionError:  # not its owner (an operator's command): said, not fatal
                    log.warning("the spool's %s is readable by others (%o)", each, mode)
                    continue
                log.warning(
                    "the spool's %s was readable by others (%o): now %o", each, mode, mode & 0o700
                )


class Spool:
    """The host's spool database (one per ``SPOOL_DIR``), safe to share between processes.

    Every method is blocking (SQLite and fsync): the hook calls them from one
    worker thread. A write waits up to ``BUSY_TIMEOUT_SECONDS`` for another
    process's write lock.
    """

    def __init__(self, directory: Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        """Open (or create) the spool in ``directory``; OSError or sqlite3.Error if unusable."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / DATABASE_FILE
        _owner_only(self.path)
        self.waiting_path = directory / WAITING_FILE
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._drain_fd: int | None = None
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            mode = self._wal_mode(busy_timeout)
            if mode != "wal":
                raise sqlite3.OperationalError(f"the spool needs WAL mode, the disk gave {mode!r}")
            self._db.execute("pragma synchronous = full")
            # A WAL grown by one large commit (an append group of big bodies) is cut back
            # to this when it next restarts, instead of keeping that size on disk for ever.
            self._db.execute(f"pragma journal_size_limit = {WAL_LIMIT_BYTES}")
            with self._transaction() as db:
                for statement in SCHEMA:
                    db.execute(statement)
                self._upgrade(db)
                # After a power loss the file may be gone while records survived: raise it again.
                if self._has_records(db):
                    self._raise_flag()
        except BaseException:
            self._db.close()
            raise

    def _wal_mode(self, busy_timeout: float) -> str:
        """Switch the file to WAL, waiting as a write would for whoever holds it."""
        # Switching needs the file alone, and SQLite answers "database is
        # locked" at once instead of waiting its busy timeout: two workers
        # opening a new spool together failed the start of one, and uvicorn
        # then stopped the whole hook (seen with WORKERS=2).
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                return str(self._db.execute("pragma journal_mode = wal").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: holds the spool's write lock, across processes, until it ends."""
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
                self._db.execute("commit")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("rollback")
                raise

    @staticmethod
    def _upgrade(db: sqlite3.Connection) -> None:
        """Add what a file of an older version lacks, in the transaction that opens it.

        Its records keep their values; the new columns are null in them (a
        body with no checksum is drained unchecked, as that version did).
        """
        for table, column, statement in UPGRADES:
            present = {row[1] for row in db.execute(f"pragma table_info({table})")}
            if column not in present:
                db.execute(statement)
                log.info("the spool's %s table gained its %s column", table, column)

    @staticmethod
    def _has_records(db: sqlite3.Connection) -> bool:
        return bool(db.execute(f"select exists (select 1 from queue where {LIVE})").fetchone()[0])

    def _raise_flag(self) -> None:
        os.close(os.open(self.waiting_path, os.O_WRONLY | os.O_CREAT, 0o600))

    def waiting(self) -> bool:
        """Whether a record may wait in the queue: one ``stat``, cheap enough for every request."""
        return self.waiting_path.exists()

    def append(self, deliveries: Sequence[SpooledDelivery], only_behind: bool = False) -> bool:
        """Write deliveries at the end of the queue in one commit; True once on disk.

        With ``only_behind``, write nothing and return False when the queue is
        empty: the caller then stores them straight in the database. Any
        failure (a full disk) rolls the whole commit back and raises: nothing
        half written is ever kept, answered or drained.
        """
        pid = os.getpid()
        with self._transaction() as db:
            if only_behind and not self.waiting():
                return False
            self._raise_flag()
            first = self._next_seq(db)
            db.executemany(
                f"insert into queue (seq, {WRITTEN}, spooled_by)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [d.row(first + n, pid) for n, d in enumerate(deliveries)],
            )
        return True

    @staticmethod
    def _next_seq(db: sqlite3.Connection) -> int:
        """The place AUTOINCREMENT would give the next record (under the write lock).

        Drawn here, not by SQLite, so that the record's checksum covers it. Past
        every place ever used (``sqlite_sequence``) and every record kept, as
        AUTOINCREMENT is: a record set aside or damaged keeps its place.
        """
        return 1 + int(
            db.execute(
                "select max(coalesce((select seq from sqlite_sequence where name = 'queue'), 0),"
                " coalesce((select max(seq) from queue), 0),"
                " coalesce((select max(seq) from set_aside), 0),"
                " coalesce((select max(seq) from damaged), 0))"
            ).fetchone()[0]
        )

    def oldest(
        self,
        limit: int,
        max_bytes: int = DRAIN_BYTES,
        after: int = 0,
        hold_before: datetime | None = None,
    ) -> list[Queued | Unreadable | Held]:
        """The oldest records of the queue, in order, ``limit`` and about ``max_bytes`` at most.

        A record is taken while the bodies before it hold less than
        ``max_bytes``, so the first always is, however large. Only records
        after the place ``after`` in the queue. A record SQLite reports damaged,
        or whose values are not a delivery, comes back as ``Unreadable``; any
        other error of SQLite is raised. One received before ``hold_before``
        comes back as ``Held``, unless an operator said to store it (``store_old``).
        """
        with self._lock:
            # length() of a blob reads its size, not its bytes.
            sizes = self._db.execute(
                f"select seq, length(body) from queue where seq > ? and {LIVE}"
                " order by seq limit ?",
                (after, limit),
            ).fetchall()
            last, before = None, 0
            for seq, size in sizes:
                if last is not None and before >= max_bytes:
                    break
                last, before = seq, before + size
            if last is None:
                return []
            try:
                rows = self._db.execute(
                    f"select seq, {RAW_COLUMNS} from queue"
                    f" where seq > ? and seq <= ? and {LIVE} order by seq",
                    (after, last),
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                # A damaged page in one record fails the whole read: one at a time, to
                # find which (the sizes above come from the cells, not the pages of bodies).
                rows = [self._read_one(seq) for seq, _ in sizes if seq <= last]
        return [_decoded(row, hold_before) for row in rows]

    def _read_one(self, seq: int) -> tuple[Any, ...]:
        """One record's raw values, or ``(seq, reason)`` when SQLite reports it damaged."""
        try:
            return tuple(
                self._db.execute(
                    f"select seq, {RAW_COLUMNS} from queue where seq = ?", (seq,)
                ).fetchone()
            )
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            return (seq, f"SQLite cannot read it: {exc} ({exc.sqlite_errorname})")

    def remove(self, seqs: Sequence[int]) -> None:
        """Delete records the database has committed."""
        with self._transaction() as db:
            db.executemany("delete from queue where seq = ?", [(seq,) for seq in seqs])

    def remove_through(self, seq: int) -> None:
        """Delete every record up to the place ``seq`` in the queue (the database has them)."""
        with self._transaction() as db:
            db.execute(f"delete from queue where seq <= ? and {LIVE}", (seq,))

    def set_aside(self, seq: int, error: str) -> None:
        """Move a record the database refused out of the queue, byte for byte."""
        self.set_aside_all([(seq, error)])

    def set_aside_all(self, reasons: Sequence[tuple[int, str]]) -> None:
        """``set_aside`` each ``(seq, error)``, in one commit (one fsync, not one per record)."""
        now = datetime.now(UTC).isoformat()
        with self._transaction() as db:
            for seq, error in reasons:
                db.execute(
                    f"insert into set_aside (seq, {WRITTEN}, spooled_by, set_aside_at, error)"
                    f" select seq, {WRITTEN}, spooled_by, ?, ? from queue where seq = ?",
                    (now, error, seq),
                )
                db.execute("delete from queue where seq = ?", (seq,))

    def stuck_count(self) -> int:
        """Damaged records that stay in the queue's file (SQLite could not delete them)."""
        with self._lock:
            return int(
                self._db.execute("select count(*) from damaged where in_queue = 1").fetchone()[0]
            )

    def held_count(self) -> int:
        """Records set aside for their age (``HELD``), waiting for a person's replay or drop."""
        with self._lock:
            return int(
                self._db.execute(
                    "select count(*) from set_aside where substr(error, 1, ?) = ?",
                    (len(HELD), HELD),
                ).fetchone()[0]
            )

    def set_damaged(self, seq: int, reason: str) -> str:
        """Move a record the spool cannot read or decode to ``damaged``; what was kept of it.

        Every value SQLite can still read is copied as it is stored (a body up to
        its first damaged page); the record is then deleted from the queue, or,
        if SQLite cannot delete it either (a damaged page it must free), left in
        the file and skipped from then on. Any error but ``SQLITE_CORRUPT`` (a
        full disk, an I/O error) while it is copied rolls the copy back and is
        raised: the record stays in the queue, whole, for the next attempt.
        """
        now = datetime.now(UTC).isoformat()
        # SQLite fails every later statement of a write transaction in which a read met
        # the damage: each step is a transaction of its own, the salvage none.
        try:
            with self._transaction() as db:
                db.execute(
                    "insert into damaged (seq, key, received_at, body, body_length, content_type,"
                    " client_addr, user_agent, spooled_by, found_at, error, in_queue)"
                    " select seq, key, received_at, body, length(body), content_type,"
                    " client_addr, user_agent, spooled_by, ?, ?, 1 from queue where seq = ?",
                    (now, reason, seq),
                )
            kept = "kept whole"
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            with self._lock:
                values, kept = self._salvage(self._db, seq)
            with self._transaction() as db:
                db.execute(
                    "insert into damaged (seq, key, received_at, body, body_length, content_type,"
                    " client_addr, user_agent, spooled_by, found_at, error, in_queue)"
                    " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    (seq, *values, now, reason),
                )
        # Marked (in_queue 1), it is skipped from now on; kept, it can leave the queue.
        try:
            self._leave_queue(seq)
        except sqlite3.Error as exc:
            kept += f"; it stays in the queue's file, skipped (SQLite cannot delete it: {exc})"
        return kept

    def _leave_queue(self, seq: int) -> None:
        """Delete a damaged record (kept in ``damaged``) from the queue, and unmark it.

        A record whose key was overwritten in the table's page has its old key
        in the unique index: SQLite looks for the damaged one there, does not
        find it, and fails the delete as SQLITE_CORRUPT. The record stayed in
        the file for ever, marked, and ``drop`` could not remove it (hostile
        review). The index is then rebuilt from the table (REINDEX, under the
        write lock: appends wait for it, 0.4 s for 300,000 records on a shared
        two-core machine)
        and the delete tried again. One whose own pages SQLite cannot free (a
        broken chain of its body's pages) still fails: raised.
        """
        for attempt in (1, 2):
            try:
                with self._transaction() as db:
                    db.execute("update damaged set in_queue = 0 where seq = ?", (seq,))
                    db.execute("delete from queue where seq = ?", (seq,))
                return
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc) or attempt == 2:
                    raise
            # A transaction of its own: SQLite fails the rest of one that met the damage.
            with self._transaction() as db:
                db.execute("reindex queue")
            log.warning("the spool rebuilt its queue's index to delete damaged record %d", seq)

    def leave_marked(self) -> tuple[int, int]:
        """Delete from the queue's file the damaged records marked as staying; (left, stayed).

        A version before this one could not delete a record damaged in its key
        (its index was not rebuilt) and marked it ``in_queue``: it stayed, and
        only ``drop`` tried again, while ``damaged`` told the operator to rename
        the file (hostile review). The first that fails is tried again after a
        rebuilt index (``_leave_queue``); the rest after that once each.
        """
        with self._lock:
            marked = [
                seq for (seq,) in self._db.execute("select seq from damaged where in_queue = 1")
            ]
        left = stayed = 0
        rebuilt = False
        for seq in marked:
            try:
                if rebuilt:
                    with self._transaction() as db:
                        db.execute("update damaged set in_queue = 0 where seq = ?", (seq,))
                        db.execute("delete from queue where seq = ?", (seq,))
                else:
                    self._leave_queue(seq)
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                stayed += 1
                rebuilt = True  # _leave_queue rebuilt the index: no second rebuild
                continue
            left += 1
        return left, stayed

    @staticmethod
    def _salvage(db: sqlite3.Connection, seq: int) -> tuple[list[Any], str]:
        """Each value of a damaged record that SQLite can read, and a sentence on what it kept."""
        values: list[Any] = []
        lost = []
        for column in (
            "key",
            "received_at",
            "body",
            "length(body)",
            "content_type",
            "client_addr",
            "user_agent",
            "spooled_by",
        ):
            if column == "body":
                value: Any = _read_prefix(db, seq)
            else:
                # A text as its bytes: one that is not UTF-8 must not fail the salvage.
                read = (
                    column
                    if column in ("length(body)", "spooled_by")
                    else f"cast({column} as blob)"
                )
                try:
                    value = db.execute(f"select {read} from queue where seq = ?", (seq,))
                    value = value.fetchone()[0]
                except sqlite3.DatabaseError as exc:
                    if not is_damage(exc):
                        raise
                    value = None
                    lost.append(column)
            values.append(value)
        body, length = values[2], values[3]
        kept = (
            f"body: the first {len(body or b'')} of {length if length is not None else '?'}"
            " bytes (up to the damaged page)"
        )
        return values, kept + (f"; unreadable: {', '.join(lost)}" if lost else "")

    def size(self) -> int:
        """Bytes the spool takes on disk: its file and its WAL."""
        total = 0
        for path in (self.path, Path(f"{self.path}-wal")):
            with suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def shrink(self) -> tuple[int, int]:
        """Give the file's free pages back to the disk; its ``size()`` before and after.

        SQLite keeps the pages of deleted records as free pages of its file,
        reused by later records but never returned: the file kept the size of
        the largest outage for ever. A VACUUM rewrites what the file still
        holds into a file without them, in one write transaction through the
        WAL: other workers' appends wait for it (their busy timeout), a crash
        at any point leaves the file as it was before it or as after it, and
        rowids (``seq``) and the AUTOINCREMENT sequence are kept. Done only
        when the free pages make ``SHRINK_FREE_BYTES`` at least and what is
        held ``SHRINK_LIVE_BYTES`` at most; a file of any earlier version is
        shrunk the same way. (Not ``auto_vacuum``: its pointer-map pages let
        SQLite find a body's next overflow page without reading the link, so
        a damaged page is read as the body instead of failing where it is.)
        The end of the file goes back to the disk when the WAL is
        checkpointed: tried at once, waiting for other workers' reads and
        writes up to the busy timeout; if they go on, at a later checkpoint.
        """
        before = self.size()
        with self._lock:
            page_size, pages, free = (
                self._db.execute(f"pragma {name}").fetchone()[0]
                for name in ("page_size", "page_count", "freelist_count")
            )
            live = (pages - free) * page_size
            if free * page_size < SHRINK_FREE_BYTES:
                return before, before
            if live > SHRINK_LIVE_BYTES:
                log.warning(
                    "the spool %s keeps %d free bytes: its records (waiting, set aside or "
                    "damaged) hold %d bytes, more than %d to rewrite; it shrinks after a drain "
                    "once they hold less (python -m hook.spool list, damaged)",
                    self.path,
                    free * page_size,
                    live,
                    SHRINK_LIVE_BYTES,
                )
                return before, before
            try:
                self._db.execute("vacuum")
            except sqlite3.Error:
                # Rolled back, nothing lost; but the WAL kept the size of the pages it had
                # written before the disk (or the temp directory's) was full: up to what the
                # file holds, taken from a disk that has no room (hostile review).
                with suppress(sqlite3.Error):
                    self._db.execute("pragma wal_checkpoint(truncate)").fetchall()
                raise
            self._db.execute("pragma wal_checkpoint(truncate)").fetchall()
        return before, self.size()

    def clear_flag_if_empty(self) -> bool:
        """Remove ``spool.waiting`` if the queue is empty (under the write lock); True if so."""
        with self._transaction() as db:
            if self._has_records(db):
                return False
            self.waiting_path.unlink(missing_ok=True)
        return True

    def counts(self) -> tuple[int, int]:
        """Records waiting in the queue, and records set aside."""
        depth, set_aside, _ = self.tally()
        return depth, set_aside

    def tally(self) -> tuple[int, int, int]:
        """Records waiting in the queue, records set aside, and damaged records moved aside."""
        with self._lock:
            row = self._db.execute(
                f"select (select count(*) from queue where {LIVE}),"
                " (select count(*) from set_aside), (select count(*) from damaged)"
            ).fetchone()
        return row[0], row[1], row[2]

    def damaged_records(self) -> list[dict[str, Any]]:
        """Every damaged record moved aside, oldest first, as JSON-able values."""
        with self._lock:
            rows = self._db.execute(
                "select seq, cast(key as blob), cast(received_at as blob), cast(body as blob),"
                " body_length,"
                " cast(content_type as blob), cast(client_addr as blob),"
                " cast(user_agent as blob), spooled_by, found_at, error, in_queue"
                " from damaged order by seq"
            ).fetchall()
        return [_describe_damaged(row) for row in rows]

    def set_aside_records(self) -> list[SetAside]:
        """Every record set aside, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"select seq, {COLUMNS}, spooled_by, set_aside_at, error"
                " from set_aside order by seq"
            ).fetchall()
        return [SetAside(r[0], SpooledDelivery.from_row(r[1:7]), *r[7:]) for r in rows]

    def _take_set_aside(self, db: sqlite3.Connection, seq: int) -> SetAside:
        row = db.execute(
            f"select seq, {COLUMNS}, spooled_by, set_aside_at, error from set_aside where seq = ?",
            (seq,),
        ).fetchone()
        if row is None:
            raise KeyError(seq)
        db.execute("delete from set_aside where seq = ?", (seq,))
        return SetAside(row[0], SpooledDelivery.from_row(row[1:7]), *row[7:])

    def replay(self, seq: int, store_old: bool = False) -> SetAside:
        """Put a record set aside back at the end of the queue; raise KeyError if unknown.

        With ``store_old``, the drain stores it however long ago it was received
        (an operator's word that the inbox does not hold it): not held again.
        """
        with self._transaction() as db:
            row = db.execute(
                f"select {RAW_COLUMNS} from set_aside where seq = ?", (seq,)
            ).fetchone()
            if row is None:
                raise KeyError(seq)
            place = self._next_seq(db)
            # Byte for byte, with the checksums it was spooled with: its bytes in set_aside
            # are checked again when it is drained. Its record checksum covers its place,
            # and its store_old (ADR 0043), which a replay changes: taken again for the new
            # place and flag, over the values as stored (not the body: its own checksum
            # stays), only if it holds at the old one (as the format it was written in; a
            # record of a version without one gains one); else it is kept as it was, and the
            # drain finds the record damaged.
            db.execute(
                f"insert into queue (seq, {WRITTEN}, spooled_by)"
                f" select ?, {WRITTEN}, spooled_by from set_aside where seq = ?",
                (place, seq),
            )
            texts, body_crc, record_crc, spooled_by = row[:2] + row[3:6], *row[6:9]
            crc_format, was_store_old = row[9:]
            holds = (
                crc_format is None
                if record_crc is None
                else record_crc
                == record_crc32(texts, body_crc, _place(seq, spooled_by, crc_format, was_store_old))
            )
            if holds:
                flag = 1 if store_old else None
                fmt = STORE_OLD_FORMAT if store_old else CRC_FORMAT
                moved = record_crc32(texts, body_crc, _place(place, spooled_by, fmt, flag))
                db.execute(
                    "update queue set record_crc32 = ?, crc_format = ?, store_old = ?"
                    " where seq = ?",
                    (moved, fmt, flag, place),
                )
            record = self._take_set_aside(db, seq)
            self._raise_flag()
        return record

    def drop(self, seq: int) -> SetAside:
        """Delete a record set aside and return it; raise KeyError if unknown."""
        with self._transaction() as db:
            return self._take_set_aside(db, seq)

    def drop_damaged(self, seq: int) -> dict[str, Any]:
        """Delete a damaged record (and what of it stays in the queue); KeyError if unknown."""
        [record] = [r for r in self.damaged_records() if r["id"] == seq] or [None]
        if record is None:
            raise KeyError(seq)
        if record["still_in_queue_file"]:
            # Its mark is what keeps the drain from reading it again: it goes only with
            # the record (SQLite fails the rest of a transaction that met the damage).
            try:
                self._leave_queue(seq)
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                raise UndeletableError(seq) from exc
        with self._transaction() as db:
            db.execute("delete from damaged where seq = ?", (seq,))
        return record

    def try_lock_drain(self) -> bool:
        """Become the host's drainer if no other process is: True if this one now is."""
        if self._drain_fd is None:
            path = self.directory / DRAIN_LOCK_FILE
            self._drain_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._drain_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock_drain(self) -> None:
        """Let another process drain."""
        if self._drain_fd is not None:
            fcntl.flock(self._drain_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the database (and release the drain lock if held)."""
        with self._lock:
            self._db.close()
        if self._drain_fd is not None:
            os.close(self._drain_fd)
            self._drain_fd = None


#: What SQLite answers for a file it cannot read as a database: damaged, not locked or full.
DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
OPEN_LOCK_FILE = "open.lock"


def _keep_aside(directory: Path, exc: sqlite3.DatabaseError) -> Path:
    """Rename a damaged spool (and its WAL) out of the way, byte for byte; its new path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    kept = directory / f"{DATABASE_FILE}.corrupt-{stamp}"
    for suffix in ("", "-wal"):
        with suppress(FileNotFoundError):
            (directory / f"{DATABASE_FILE}{suffix}").rename(f"{kept}{suffix}")
    (directory / f"{DATABASE_FILE}-shm").unlink(missing_ok=True)  # an index, rebuilt from the WAL
    log.error(
        "the spool %s cannot be read (%s): kept as %s, with any deliveries it held that were "
        "answered 202 and not stored yet (docs/operations.md, 'The spool', says how to recover "
        "them); spooling to a new one",
        directory / DATABASE_FILE,
        exc,
        kept,
    )
    return kept


def shrink_spool(spool: Spool) -> None:
    """``spool.shrink()``, logged; a failure is logged only: the spool works as it is."""
    try:
        before, after = spool.shrink()
    except (OSError, sqlite3.Error) as exc:
        # A VACUUM needs room for a copy of what the file holds, in SQLite's temp
        # directory (SQLITE_TMPDIR, TMPDIR, /var/tmp, /tmp) and in the WAL beside the file.
        log.warning(
            "the spool %s could not give its free space back (%s): a VACUUM needs room for a "
            "copy of what it holds in the temp directory and beside the file; nothing is lost "
            "and the spool works as it is, it tries again after its next drain",
            spool.path,
            exc,
        )
        return
    if after < before:
        log.info("the spool %s gave back %d of its %d bytes", spool.path, before - after, before)


def leave_marked(spool: Spool) -> None:
    """``spool.leave_marked()``, logged; a failure is logged only: they stay, skipped."""
    try:
        left, stayed = spool.leave_marked()
    except (OSError, sqlite3.Error) as exc:
        log.warning("the spool could not delete its damaged records from its file (%s)", exc)
        return
    if left:
        log.info(
            "damaged records the spool could not delete before left its file: %d (kept in"
            " its damaged table: python -m hook.spool damaged)",
            left,
        )
    if stayed:
        log.warning(
            "%d damaged records stay in the spool's file, skipped by the drain: SQLite cannot"
            " free their pages; each is kept in the damaged table (python -m hook.spool"
            " damaged); to be rid of them, stop the service and rename the file"
            " (docs/operations.md, 'The spool')",
            stayed,
        )


def open_spool(directory: str) -> Spool:
    """The host's spool in ``directory``, or a clear error saying what to fix.

    A spool file SQLite cannot read (damaged, or not a database) is kept
    aside and a new one started: it stopped the service from starting, so
    every delivery was refused with the database up, and the error said to
    make the directory writable (hostile review). The host's workers open
    the spool one at a time, so only one of them renames a damaged file.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / OPEN_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                spool = Spool(path)
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorname", None) not in DAMAGED:
                    raise
                _keep_aside(path, exc)
                spool = Spool(path)
            leave_marked(spool)
            # What a drain before this start emptied (one by the version before, which
            # never shrank the file) goes back to the disk now, one worker at a time.
            shrink_spool(spool)
            return spool
        finally:
            os.close(fd)  # and with it the lock
    except (OSError, sqlite3.Error) as exc:
        raise RuntimeError(
            f"cannot use SPOOL_DIR={directory!r} ({exc}); make it a writable directory on a "
            "durable local disk, or set SPOOL_DIR= (empty) to answer 503 instead of spooling"
        ) from exc


class SpoolDirTakenError(Exception):
    """Another service holds the spool directory; its text says which (pid, host, since)."""


def hold_spool_dir(directory: str) -> int:
    """Take ``directory`` for this service, for as long as its process lives: the lock's fd.

    The workers of one service share its spool; a second service given the
    same directory shared it too, unseen, and each one's drain stored the
    other's deliveries in its own database (hostile review). The service's
    first process takes an ``flock`` on ``service.lock`` before its workers
    start, and writes there who holds it; the kernel releases it when that
    process ends, however it ends. Raises ``SpoolDirTakenError`` naming the
    holder, or OSError if the directory cannot be used (``open_spool`` then
    says what to fix). ``python -m hook.spool`` does not take it: an
    operator's command works beside the running service.
    """
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path / SERVICE_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
        os.close(fd)
        raise SpoolDirTakenError(holder or "one that has not said who it is yet") from None
    except BaseException:
        os.close(fd)
        raise
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {since}\n".encode(), 0)
    return fd


def is_outage(exc: BaseException) -> bool:
    """Whether an error says the database cannot take anything now, not that it refuses a record."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DatabaseDownError):
        return True
    return getattr(exc, "sqlstate", None) in OUTAGE_SQLSTATES


class _OutageError(Exception):
    """The database cannot take the spool's records right now; try again later."""


class SpoolCounts(NamedTuple):
    """What the host's spool holds."""

    depth: int
    set_aside: int
    damaged: int


SPOOLED = Receipt(None, "spooled", "[]")

#: The one call the drain makes per batch: stored set-wise, in queue order, with the moments
#: the hook received them, pending for the merger (which a commit of the drain pokes, as one of
#: a batch does); a key already in the inbox (a reply lost after its commit, a drain replayed
#: after a crash) is not stored again. It takes no lock on public.fragrances: a DBA's open
#: transaction on a fragrance held the drain, and so every delivery behind it, when the drain
#: applied what it stored (hostile review).
STORE_SPOOLED = (
    "select count(*) from sync.store_spooled("
    "%b::bytea[], %b::text[], %b::text[], %b::text[], %b::uuid[], %b::timestamptz[])"
)


class SpoolingStore:
    """A store that spools to the host's spool when the database cannot take a delivery.

    Stores straight in the database while the spool is empty; spools behind
    whatever waits otherwise; drains the spool (when this process holds the
    host's drain lock) as soon as the database answers.
    """

    def __init__(
        self,
        inner: BatchingStore,
        pool: AsyncConnectionPool,
        spool: Spool,
        retry_every: float,
        batch_size: int = DRAIN_BATCH,
        on_stored: Callable[[], None] = lambda: None,
        deadline: float | None = None,
        hold_after_days: float = HOLD_AFTER_DAYS,
    ) -> None:
        """Wrap ``inner``; drain ``spool`` through ``pool``, checking every ``retry_every`` s.

        ``on_stored`` is called after each drained batch commits (the merger's poke);
        a batch the database has not answered within ``deadline`` s is tried again;
        a record received more than ``hold_after_days`` ago is held (set aside).
        """
        self._hold_after = timedelta(days=hold_after_days)
        self._inner = inner
        self._on_stored = on_stored
        self._database: DatabaseState = inner.database
        self._pool = pool
        self.spool = spool
        self._retry_every = retry_every
        self._batch_size = batch_size
        self._deadline = deadline
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._pending: list[tuple[SpooledDelivery, bool, asyncio.Future[bool]]] = []
        self._writing = False
        #: Deliveries of this process on their way to the spool: later ones queue behind them.
        self._queued = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: The queue up to this place is in the database, but the spool could not delete it
        #: (a full disk: SQLite writes to delete). The drain stores past it, in order.
        self._stored_through = 0
        #: Records held (set aside for their age) by the drain's current pass.
        self._held = 0
        #: A database that refuses every drain (read-only) must not write a line per retry.
        self._log = LogLimit(log, 10.0)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def start(self) -> None:
        """Start draining (whatever earlier processes left is drained too)."""
        self._spawn(self._drain_forever())
        self._wake.set()

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop draining; what is still spooled stays on disk for whoever drains next."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._run(self.spool.close)
        self._thread.shutdown()

    async def counts(self) -> SpoolCounts:
        """Records waiting in the host's spool, records set aside, damaged records."""
        return SpoolCounts(*await self._run(self.spool.tally))

    async def store(self, delivery: Delivery) -> Receipt:
        """Store in the database, or spool when it is down or older deliveries are spooled."""
        forced = False
        if not self._queued and not self.spool.waiting():
            try:
                return await self._inner.store(delivery)
            except StoreError as exc:
                if exc.status != 503:
                    raise
            forced = True
        record = SpooledDelivery.of(delivery)
        while True:
            try:
                appended = await self._append(record, only_behind=not forced)
            except StoreError:
                if forced:
                    raise  # the database failed it already: 503
                # Meant to wait behind the spool, and the spool cannot be written (a full
                # disk, which also keeps the drain from deleting what it stored, so the
                # queue never empties): stored in the database if it takes it, ahead of
                # what the drain has not stored yet, rather than answered 503 and lost
                # for good while the database is up (hostile review).
                log.warning(
                    "the spool cannot be written; delivery %s goes to the database, ahead of "
                    "what the spool still holds",
                    delivery.key,
                )
                try:
                    return await self._inner.store(delivery)
                except StoreError as exc:
                    if exc.status == 503:
                        raise StoreError(503, SPOOL_FAILED) from exc
                    raise
            if appended:
                break
            # The drainer emptied the spool while this delivery queued for it.
            try:
                return await self._inner.store(delivery)
            except StoreError as exc:
                if exc.status != 503:
                    raise
            forced = True
        if not forced:
            await self._hold()
        return SPOOLED

    async def _hold(self) -> None:
        """Back-pressure while the drain catches up: answer once the spool is empty, or later.

        On disk already, so this only delays the answer (up to
        ``CATCH_UP_HOLD_SECONDS``), and not at all while the database is down:
        then every answer comes at once.
        """
        self._database.verify(VERIFY_EVERY_SECONDS)
        deadline = asyncio.get_running_loop().time() + CATCH_UP_HOLD_SECONDS
        while not self._database.down and self.spool.waiting():
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(HOLD_POLL_SECONDS)
            self._database.verify(VERIFY_EVERY_SECONDS)

    async def _append(self, record: SpooledDelivery, only_behind: bool) -> bool:
        """Queue one record for this process's next spool commit; True once it is on disk."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((record, only_behind, future))
        self._queued += 1  # before any await: later deliveries now queue behind this one
        try:
            if not self._writing:
                self._writing = True
                self._spawn(self._write_pending())
            return await future
        finally:
            self._queued -= 1

    async def _write_pending(self) -> None:
        """Write what is queued for the spool, a group per commit, in arrival order."""
        try:
            while self._pending:
                group = self._pending[:APPEND_GROUP]
                del self._pending[:APPEND_GROUP]
                # A forced record (the database just failed it) is spooled whatever the flag says,
                # and so is everything that queued behind it in the same group.
                only_behind = all(only for _, only, _ in group)
                records = [record for record, _, _ in group]
                try:
                    written = await self._run(self.spool.append, records, only_behind)
                except Exception as exc:
                    if not isinstance(exc, OSError | sqlite3.Error):
                        log.exception("spooling %d deliveries failed unexpectedly", len(group))
                    else:
                        log.error(
                            "could not spool %d deliveries (%d bytes): %s",
                            len(group),
                            sum(len(r.body) for r in records),
                            exc,
                        )
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(StoreError(503, SPOOL_FAILED))
                    continue
                for _, _, future in group:
                    if not future.done():
                        future.set_result(written)
                if written:
                    self._wake.set()
        finally:
            self._writing = False

    async def _drain_forever(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._retry_every)
            self._wake.clear()
            if not self.spool.waiting():
                continue
            if self._database.down:
                # The probe (see DatabaseState) says when it is back; no point hammering it.
                await self._database.wait_up(self._retry_every)
                if self._database.down:
                    continue
            if not await self._run(self.spool.try_lock_drain):
                continue  # another process drains
            self._held = 0
            try:
                await self._drain()
            except _OutageError as exc:
                # At every SPOOL_RETRY_EVERY while the database answers but cannot take
                # them (read-only after a failover): one line per 10 s, as the merger's.
                self._log.warning("draining the spool paused, the database is unavailable: %s", exc)
            except Exception as exc:
                # The drain must outlive any surprise: what is spooled stays on disk.
                if is_damage(exc):
                    message = (
                        "draining the spool failed: SQLite cannot read which records the file "
                        "holds (%s); stop the service and rename %s (docs/operations.md, "
                        "'The spool'); retrying"
                    )
                    self._log.log(logging.ERROR, message, exc, self.spool.path)
                elif isinstance(exc, OSError | sqlite3.OperationalError):
                    # Setting a record aside (held, refused) or moving it to damaged is a
                    # write: on a full disk it failed, with a traceback that named neither
                    # the disk nor what waited (hostile review). Rolled back, it waits whole.
                    self._log.log(
                        logging.ERROR,
                        "draining the spool failed: its file %s cannot be written or read (%s);"
                        " nothing is lost: the record the drain must set aside or move to"
                        " damaged, and the deliveries behind it, wait in the queue; free room on"
                        " SPOOL_DIR's disk or make the file writable; retrying",
                        self.spool.path,
                        exc,
                    )
                elif (left_out := self._log.admit("draining the spool failed")) is not None:
                    log.exception(
                        "draining the spool failed; retrying%s",
                        LEFT_OUT % left_out if left_out else "",
                    )
            finally:
                if self._held:
                    await self._log_held()
                await self._run(self.spool.unlock_drain)

    async def _hold_old(self, held: list[Held]) -> None:
        """Set aside records received too long ago, in one commit; a line per batch at most.

        A line per record flooded the log: 1,200 of them, 1,200 lines (hostile
        review). One per batch (``DRAIN_BATCH`` records) names the first, then
        ``_log_held`` says how many once the pass ends.
        """
        reasons = []
        for seq, record, unchecked in held:
            reason = (
                f"{HELD}: received {record.received_at.isoformat()}, more than"
                f" {self._hold_after.days} days ago (SPOOL_HOLD_AFTER_DAYS): the inbox's"
                " purge may have deleted its key, and storing it again would store it"
                " twice; if it is not in the inbox, replay it with --store-old"
            )
            if unchecked:
                reason += (
                    " (it carried a --store-old its checksum did not cover: a damaged byte,"
                    " or a replay by a version before; if that replay was yours, replay it"
                    " again with --store-old)"
                )
            reasons.append((seq, reason))
        await self._run(self.spool.set_aside_all, reasons)
        self._held += len(held)
        seq, record, _ = held[0]
        self._log.log(
            logging.ERROR,
            "%d spooled deliveries were received longer ago than the inbox keeps keys: held,"
            " not stored (the first: spooled delivery %s, spool id %d, received at %s); to"
            " store one anyway, once sure the inbox does not hold it: python -m hook.spool"
            " replay <id> --store-old (docs/operations.md, 'The spool')",
            len(held),
            record.key,
            seq,
            record.received_at.isoformat(),
        )

    async def _log_held(self) -> None:
        """One line after a drain pass that held records: how many, and what to do."""
        try:
            total = await self._run(self.spool.held_count)
        except (OSError, sqlite3.Error):
            total = None
        log.error(
            "the spool held %d deliveries received more than %d days ago (SPOOL_HOLD_AFTER_DAYS)"
            " this pass, %s held in the spool in all, not stored: python -m hook.spool list"
            " shows them; replay <id> --store-old stores one the inbox does not hold, drop <id>"
            " deletes one it does (docs/operations.md, 'The spool')",
            self._held,
            self._hold_after.days,
            "?" if total is None else total,
        )
        self._held = 0

    async def _drain(self) -> None:
        """Store the queue oldest first until it is empty (then clear the flag), or raise."""
        stored = 0
        if self._stored_through:
            try:
                await self._run(self.spool.remove_through, self._stored_through)
            except (OSError, sqlite3.Error):
                pass  # no room yet: what it stored stays, the records past it are stored
            else:
                log.info("the spool deleted the deliveries it had stored but could not delete")
                self._stored_through = 0
        while True:
            # The inbox's purge deletes a stored delivery, and with it its key, after
            # sync.settings.purge_after (90 days): a record older than that, drained
            # again after a drain stored it and could not delete it, was stored twice
            # and its old values merged again (hostile review). Held for a person instead.
            hold_before = datetime.now(UTC) - self._hold_after
            batch = await self._run(
                self.spool.oldest,
                self._batch_size,
                DRAIN_BYTES,
                self._stored_through,
                hold_before,
            )
            if not batch:
                if self._stored_through:
                    return  # all stored; deleted once the disk has room (the next round)
                if await self._run(self.spool.clear_flag_if_empty):
                    if stored:
                        log.info("spool drained: %d deliveries stored", stored)
                    # New deliveries go straight to the database now: what the outage
                    # spooled is given back to the disk (hostile review: it never was).
                    await self._run(shrink_spool, self.spool)
                    return
                continue
            for seq, reason in (r for r in batch if isinstance(r, Unreadable)):
                # Retried, it fails again, for ever, and every delivery behind it waits
                # (answered 202, never reaching the inbox) until a person renames the
                # file (hostile review). A full disk or an I/O error raises instead.
                kept = await self._run(self.spool.set_damaged, seq, reason)
                log.error(
                    "spooled record %d is damaged (%s): moved aside, %s (python -m hook.spool "
                    "damaged); the deliveries behind it carry on",
                    seq,
                    reason,
                    kept,
                )
            if held := [r for r in batch if isinstance(r, Held)]:
                await self._hold_old(held)
            readable = [r for r in batch if isinstance(r, Queued)]
            if readable:
                stored += await self._store_in_order(readable)

    async def _store_in_order(self, batch: list[Queued]) -> int:
        """Store a batch in one transaction; if refused, split it to set aside only the culprit."""
        try:
            await self._commit(batch)
        except (psycopg.Error, PoolTimeout, DatabaseDownError) as exc:
            if is_outage(exc):
                raise _OutageError(str(exc)) from exc
            if len(batch) == 1:
                seq, record = batch[0]
                reason = f"{type(exc).__name__}: {exc}".strip()
                log.error(
                    "the database refused spooled delivery %s (spool id %d, %d bytes): %s; it is "
                    "set aside (python -m hook.spool list), the deliveries behind it carry on",
                    record.key,
                    seq,
                    len(record.body),
                    reason,
                )
                await self._run(self.spool.set_aside, seq, reason)
                return 0
            half = len(batch) // 2
            return await self._store_in_order(batch[:half]) + await self._store_in_order(
                batch[half:]
            )
        self._on_stored()
        try:
            await self._run(self.spool.remove, [seq for seq, _ in batch])
        except (OSError, sqlite3.Error) as exc:
            # Stored, and deleted later: the drain went back to this batch at every
            # round, so the records behind it never reached the inbox while the disk
            # stayed full, and deliveries stored meanwhile overtook them (hostile review).
            if not self._stored_through:
                log.error(
                    "the spool cannot delete the deliveries it stored (%s); it stores the ones "
                    "behind them and deletes them once its disk has room",
                    exc,
                )
            self._stored_through = max(self._stored_through, batch[-1].seq)
        return len(batch)

    async def _commit(self, batch: list[Queued]) -> None:
        """Store a batch of spooled deliveries in one call and one transaction, in queue order."""
        deliveries = [d for _, d in batch]
        params = (
            [d.body for d in deliveries],
            [d.content_type for d in deliveries],
            [d.client_addr for d in deliveries],
            [d.user_agent for d in deliveries],
            [d.key for d in deliveries],
            [d.received_at for d in deliveries],
        )
        async with self._database.connection(self._pool) as conn:

            async def store() -> None:
                async with conn.transaction():
                    # Not the pool's statement_timeout (DB_TIMEOUT, for one request's
                    # store): a batch of large bodies that took longer would be retried
                    # for ever.
                    await conn.execute("set local statement_timeout = 0")
                    # Its commit waits for a synchronous standby even when every key was
                    # stored already (see sync.store_spooled): the spool deletes its copies
                    # after it.
                    await conn.execute(STORE_SPOOLED, params)

            if self._deadline is None:
                await store()
                return
            # A server that hung after receiving the batch, or a primary gone behind a
            # failover, never answers nor fails: the drain waited on that connection as long
            # as TCP kept it (hours), holding the drain lock while every delivery spooled
            # behind it (hostile review). Let go as a store does (hook/ingest.py); whether it
            # committed or not, the keys make the next attempt store nothing twice.
            try:
                await within(self._deadline, store())
            except DeadlineError:
                raise _OutageError(
                    f"the database did not answer a drained batch within {self._deadline} s"
                ) from None


# The command line: python -m hook.spool list|show|replay|drop, run on the hook's host.


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False))


def _user(uid: int, bare: bool = False) -> str:
    """A user's name and uid as the operator reads them (the uid alone without a name)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"'#{uid}'" if bare else f"uid {uid}"
    return name if bare else f"{name} (uid {uid})"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hook.spool``: list, show, replay or drop the deliveries set aside."""
    parser = argparse.ArgumentParser(
        prog="python -m hook.spool",
        description="Deliveries the database refused from this host's spool (set aside).",
    )
    parser.add_argument(
        "--spool-dir",
        default=os.environ.get("SPOOL_DIR") or "spool",
        help="the hook's SPOOL_DIR (default: $SPOOL_DIR, else ./spool)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="one JSON line per delivery set aside, then the counts")
    show = commands.add_parser("show", help="one delivery set aside as JSON")
    show.add_argument("id", type=int)
    show.add_argument(
        "--body", action="store_true", help="write only its raw body to stdout, byte for byte"
    )
    replay = commands.add_parser(
        "replay", help="put it back at the end of the queue (fix the cause first)"
    )
    replay.add_argument("id", type=int)
    replay.add_argument(
        "--store-old",
        action="store_true",
        help="store it even if received longer ago than SPOOL_HOLD_AFTER_DAYS (held for its"
        " age): only once sure the inbox does not hold it",
    )
    drop = commands.add_parser(
        "drop", help="print it (set aside or damaged) as JSON, then delete it for good"
    )
    drop.add_argument("id", type=int)
    damaged = commands.add_parser(
        "damaged",
        help="one JSON line per record the spool could not read or decode (what it kept of it)",
    )
    damaged.add_argument("id", type=int, nargs="?")
    damaged.add_argument(
        "--body", action="store_true", help="with an id: write only the body's bytes it kept"
    )
    args = parser.parse_args(argv)

    directory = Path(args.spool_dir)
    if not (directory / DATABASE_FILE).exists():
        print(f"no spool at {directory / DATABASE_FILE}; pass --spool-dir", file=sys.stderr)
        return 2
    owner = (directory / DATABASE_FILE).stat().st_uid
    if os.geteuid() != owner:
        # As root, a replay into an empty queue created spool.waiting as root, 0600: the
        # service's user could then not raise it, nor open the spool, and the service did not
        # start (hostile review). SQLite gives its -wal and -shm to the file's owner itself.
        print(
            f"the spool {directory / DATABASE_FILE} is owned by {_user(owner)}, not by the user"
            f" running this command ({_user(os.geteuid())}): run this command as that user"
            f" (e.g. sudo -u {_user(owner, bare=True)} python -m hook.spool ..., or docker"
            " exec into the service's container), so that what it creates stays the service's",
            file=sys.stderr,
        )
        return 2
    try:
        spool = Spool(directory)
    except sqlite3.DatabaseError as exc:
        # A traceback said nothing of what to do (hostile review); the service itself
        # renames such a file when it starts.
        print(
            f"the spool {directory / DATABASE_FILE} cannot be read ({exc}): it is damaged; the "
            "service keeps it aside as spool.sqlite3.corrupt-<time> when it starts, and "
            "docs/operations.md ('The spool') says how to recover what it held",
            file=sys.stderr,
        )
        return 2
    try:
        return _command(spool, args)
    except (sqlite3.DatabaseError, ValueError) as exc:
        print(
            f"the spool {spool.path} is damaged where this command read it ({exc}); "
            "docs/operations.md ('The spool') says what to do",
            file=sys.stderr,
        )
        return 2
    finally:
        spool.close()


def _command(spool: Spool, args: argparse.Namespace) -> int:
    """Run one command of ``main`` on an open spool; its exit status."""
    if args.command == "list":
        for record in spool.set_aside_records():
            _print_json(record.describe())
        depth, set_aside, damaged_count = spool.tally()
        stuck = spool.stuck_count()
        held = spool.held_count()
        print(
            f"{set_aside} set aside, {depth} waiting in the queue, {damaged_count} damaged"
            " (see: damaged)"
            + (f"; {held} set aside held for their age (replay <id> --store-old)" if held else "")
            + (
                f"; {stuck} damaged still in the file (SQLite cannot free their pages; the"
                " service tries again when it starts)"
                if stuck
                else ""
            ),
            file=sys.stderr,
        )
        return 0
    if args.command == "damaged":
        records = [r for r in spool.damaged_records() if args.id in (None, r["id"])]
        if args.id is not None and not records:
            print(f"no damaged record with id {args.id} (see: damaged)", file=sys.stderr)
            return 1
        if args.body and args.id is not None:
            sys.stdout.buffer.write(base64.b64decode(records[0]["body_base64"] or ""))
            sys.stdout.buffer.flush()
            return 0
        for record in records:
            _print_json(record)
        return 0
    try:
        if args.command == "show":
            matches = [r for r in spool.set_aside_records() if r.seq == args.id]
            if not matches:
                raise KeyError(args.id)
            if args.body:
                sys.stdout.buffer.write(matches[0].delivery.body)
                sys.stdout.buffer.flush()
            else:
                _print_json(matches[0].describe())
        elif args.command == "replay":
            record = spool.replay(args.id, store_old=args.store_old)
            print(
                f"delivery {record.delivery.key} is back in the queue; the hook stores it "
                "within SPOOL_RETRY_EVERY seconds",
                file=sys.stderr,
            )
        else:
            try:
                _print_json(spool.drop(args.id).describe())
                print(f"dropped set-aside delivery {args.id}", file=sys.stderr)
            except KeyError:
                try:
                    record = spool.drop_damaged(args.id)
                except UndeletableError:
                    print(
                        f"damaged record {args.id} cannot be deleted from the spool's file "
                        "(SQLite cannot free its damaged pages): it stays, skipped by the "
                        "drain; to be rid of it, stop the service and rename the file "
                        "(docs/operations.md, 'The spool')",
                        file=sys.stderr,
                    )
                    return 1
                _print_json(record)
                print(f"dropped damaged record {args.id}", file=sys.stderr)
    except KeyError:
        print(f"no delivery set aside with id {args.id} (see: list)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
