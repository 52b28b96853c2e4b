"""The journal: one JSON line per attempted delivery, and helpers to read it back.

Each line: ``at`` (UTC), ``seq`` (delivery number, in the order sends
started; null for a tick that sent nothing), ``tick`` (the change it belongs
to), ``fragrance_id``, ``chaos`` (kind or null), ``committed`` (the body is a
change committed to the CMS database), ``body`` and ``body_encoding``
(``utf-8``, or ``base64`` when the bytes are not UTF-8), ``listener`` (URL or
null), ``outcome`` (``answered``, ``no_listener``, ``connection_error`` or
``not_sent``), ``status`` (the listener's HTTP status) and ``error``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

Entry = dict[str, Any]


class Journal:
    """An append-only JSON Lines file, flushed after every line."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, entry: Entry) -> None:
        """Append one entry, stamped with the current UTC time."""
        stamped = {"at": datetime.now(UTC).isoformat(timespec="microseconds"), **entry}
        self._file.write(json.dumps(stamped) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def body_fields(body: bytes | None) -> dict[str, str | None]:
    """``body`` and ``body_encoding`` for an entry: text when UTF-8, else base64."""
    if body is None:
        return {"body": None, "body_encoding": None}
    try:
        return {"body": body.decode("utf-8"), "body_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "body_encoding": "base64"}


def read(path: str | Path) -> list[Entry]:
    """Every entry of a journal file, in the order they were written."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def body_bytes(entry: Entry) -> bytes:
    """The exact bytes an entry says were sent."""
    if entry["body_encoding"] == "base64":
        return base64.b64decode(entry["body"])
    return str(entry["body"]).encode("utf-8")


def committed_changes(entries: list[Entry]) -> list[dict[str, Any]]:
    """The changes committed to the CMS database, once each, in the order they were made.

    Includes the first change (never delivered) and changes whose delivery
    failed: this is what the CMS database holds on top of its starting rows.
    """
    by_tick = {e["tick"]: json.loads(body_bytes(e)) for e in entries if e["committed"]}
    return [by_tick[tick] for tick in sorted(by_tick)]


def apply_changes(
    rows: dict[int, dict[str, Any]], changes: list[dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """A copy of ``rows`` (by fragrance id) with each change's known fields applied in order."""
    state = {fragrance_id: dict(row) for fragrance_id, row in rows.items()}
    for change in changes:
        row = state[change["fragrance_id"]]
        row.update({k: v for k, v in change.items() if k in row and k != "fragrance_id"})
    return state
