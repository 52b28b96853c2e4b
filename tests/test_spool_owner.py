"""``python -m hook.spool`` works on the spool only as the user who owns it.

Run as root (the first thing an operator tries on a host), a ``replay`` into
an empty queue created the spool's ``spool.waiting`` flag as root, readable
and writable by root only. The service's user then could not raise it: its
workers could not open the spool, and the service refused to start until
someone found and deleted that file. (SQLite itself gives the ``-wal`` and
``-shm`` it creates as root to the database file's owner.) The command now
refuses any other user, before it opens anything, and says whom to run it as.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import body
from test_spool import delivery, run_cli

from hook.spool import Spool

SERVICE_UID = 10001  # the image's hook user; no such user on the test host


def _owners(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_uid for p in directory.iterdir()}


def test_the_command_line_refuses_a_user_other_than_the_spools_owner(tmp_path: Path) -> None:
    assert os.geteuid() != SERVICE_UID
    directory = tmp_path / "spool"
    spool = Spool(directory)
    spool.append([delivery(body(1))])
    seq = spool.oldest(1)[0].seq
    spool.set_aside(seq, "refused")
    assert spool.clear_flag_if_empty()  # the queue is empty: no flag
    spool.close()
    for path in (directory, *directory.iterdir()):
        os.chown(path, SERVICE_UID, SERVICE_UID)
    before = _owners(directory)

    result = run_cli(directory, "replay", str(seq))

    assert result.returncode == 2, result.stderr
    message = result.stderr.decode()
    assert f"owned by uid {SERVICE_UID}," in message or f"(uid {SERVICE_UID})," in message
    assert "run this command as that user" in message
    assert _owners(directory) == before  # nothing created, nothing of root's left
