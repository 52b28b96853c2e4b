"""The deploy's command: yoyo, refused plainly when its server is a standby.

``python -m hook.migrate apply --batch --database URL migrations`` takes
yoyo's arguments (``make migrate`` and compose's ``migrate`` run it). yoyo
takes its lock by inserting a row; on a standby (read-only, in recovery)
that insert fails every time, and yoyo, taking that for another deploy's
lock, retried for 10 s and said "Database locked (run yoyo break-lock to
remove this lock)": a DBA went looking for a lock that did not exist, and
``yoyo break-lock`` fails the same way. The server is asked first.

And a site's role or database settings are kept out of yoyo's way by the
command itself, not by each caller: ``make migrate`` and compose set them
in ``PGOPTIONS``, ``make run`` did not, and met a database read-only by
default with the same "Database locked", or a ``search_path`` that puts
``sync`` first with every migration run again in that schema
(``docs/operations.md``, "Deploying"). Options the caller gives come after
these in ``PGOPTIONS``, so they win; the lock timeout stays the caller's.
"""

from __future__ import annotations

import os
import re
import sys

import psycopg
from yoyo.scripts.main import main as yoyo_main

STANDBY = (
    "this server is a standby (read-only, in recovery): deploy against the primary"
    " (or give the URL every host with target_session_attrs=read-write)"
)


#: What yoyo needs of the session whatever the site set: its record in public, and writes.
SESSION = "-c search_path=public -c default_transaction_read_only=off"
#: The deploy's sessions by name in pg_stat_activity (docs/operations.md, a killed deploy).
APPLICATION_NAME = "fragrance-sync deploy"


def deploy_session() -> None:
    """Put the deploy's session settings before the caller's PGOPTIONS, its name if none given."""
    given = os.environ.get("PGOPTIONS", "")
    os.environ["PGOPTIONS"] = f"{SESSION} {given}".strip()
    os.environ.setdefault("PGAPPNAME", APPLICATION_NAME)


def database_url(argv: list[str]) -> str | None:
    """The libpq URL of yoyo's ``--database`` argument (``postgresql+psycopg://`` as libpq's)."""
    for i, arg in enumerate(argv):
        if arg in ("--database", "-d") and i + 1 < len(argv):
            return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", argv[i + 1])
        if arg.startswith("--database="):
            return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", arg.split("=", 1)[1])
    return None


def in_recovery(url: str) -> bool:
    """Whether the server at ``url`` is a standby; False when it cannot be asked (yoyo says why)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("select pg_catalog.pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0])


def main(argv: list[str]) -> int | None:
    """Refuse a standby with what to do; else run yoyo with these arguments, its exit code."""
    deploy_session()
    url = database_url(argv)
    if url is not None and in_recovery(url):
        print(f"deploy refused: {STANDBY}", file=sys.stderr)
        return 1
    return yoyo_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
