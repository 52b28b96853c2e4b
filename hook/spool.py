"""A local append-only spool for deliveries the database cannot take right now.

The CMS never retries, so when PostgreSQL is down the hook writes the
delivery here, fsyncs, and only then answers 202. Each record carries a key
that ``sync.receive_spooled`` stores uniquely, so draining after a crash
never creates a duplicate inbox row. Each record is framed with its length
and a CRC-32: a record torn by a crash mid-write fails the check and is cut
off, never replayed as garbage.

One file per hook process (``spool-<pid>.log``), held with an exclusive
``flock``; a file whose lock can be taken belongs to a dead process and is
drained by whoever claims it.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAGIC = b"FSP1"
FRAME = struct.Struct(">4sII")  # magic, payload length, CRC-32 of the payload


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
    def new(
        cls, body: bytes, content_type: str | None, client_addr: str | None, user_agent: str | None
    ) -> SpooledDelivery:
        """A delivery received now, with a fresh key."""
        return cls(uuid.uuid4(), datetime.now(UTC), body, content_type, client_addr, user_agent)

    def encode(self) -> bytes:
        """The framed record: header JSON, a newline, the raw body."""
        header = {
            "key": str(self.key),
            "received_at": self.received_at.isoformat(),
            "content_type": self.content_type,
            "client_addr": self.client_addr,
            "user_agent": self.user_agent,
        }
        payload = json.dumps(header).encode() + b"\n" + self.body
        return FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload

    @classmethod
    def decode(cls, payload: bytes) -> SpooledDelivery:
        """Rebuild a delivery from a checked payload."""
        header_bytes, _, body = payload.partition(b"\n")
        header = json.loads(header_bytes)
        return cls(
            uuid.UUID(header["key"]),
            datetime.fromisoformat(header["received_at"]),
            body,
            header["content_type"],
            header["client_addr"],
            header["user_agent"],
        )


def read_records(path: Path) -> list[SpooledDelivery]:
    """The intact records of a spool file, in the order they were written.

    A frame that is short, has a bad magic or fails its CRC is a torn write
    or damage: it is skipped, and reading resumes at the next magic whose
    frame checks out, so garbage is never replayed and nothing intact is lost.
    """
    data = path.read_bytes()
    records: list[SpooledDelivery] = []
    offset = 0
    while offset + FRAME.size <= len(data):
        magic, length, crc = FRAME.unpack_from(data, offset)
        end = offset + FRAME.size + length
        payload = data[offset + FRAME.size : end]
        if magic == MAGIC and end <= len(data) and zlib.crc32(payload) == crc:
            records.append(SpooledDelivery.decode(payload))
            offset = end
            continue
        found = data.find(MAGIC, offset + 1)
        if found < 0:
            break
        offset = found
    return records


class Spool:
    """The spool file of the running process, locked for as long as it lives."""

    def __init__(self, directory: Path) -> None:
        """Create (or reopen) this process's spool file in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / f"spool-{os.getpid()}.log"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.depth = len(read_records(self.path))

    def append(self, delivery: SpooledDelivery) -> None:
        """Write one whole record and fsync it: only then may the hook answer 2xx.

        A short write (disk nearly full) is continued; any failure cuts the
        file back to where the record began and raises, so nothing half
        written is ever answered or counted.
        """
        start = os.fstat(self._fd).st_size
        record = memoryview(delivery.encode())
        try:
            while record:
                record = record[os.write(self._fd, record) :]
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, start)
            raise
        self.depth += 1

    def records(self) -> list[SpooledDelivery]:
        """The intact records waiting in this process's file, in receipt order."""
        return read_records(self.path)

    def clear(self) -> None:
        """Empty the file once every record is in the database (and cut any torn tail)."""
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.depth = 0

    def claim_orphans(self) -> list[tuple[Path, int]]:
        """Lock and return the spool files of dead processes, oldest name first.

        The caller keeps each fd (and so its lock) until it has drained the
        file: another worker looking at the same moment finds it locked and
        leaves it alone.
        """
        claimed = []
        for path in sorted(self.directory.glob("spool-*.log")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # its process is alive, or another worker claimed it
                continue
            if not path.exists():  # drained and removed between our glob and our lock
                os.close(fd)
                continue
            claimed.append((path, fd))
        return claimed

    def close(self) -> None:
        """Release the file; an empty one is removed."""
        if os.fstat(self._fd).st_size == 0:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
