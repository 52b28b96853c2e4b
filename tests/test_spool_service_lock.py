"""One hook service per ``SPOOL_DIR``, held for the service's life.

The workers of one service share its spool (one drains, by ``drain.lock``).
A second service given the same ``SPOOL_DIR`` (another copy of the unit, a
staging hook on the production host) started and shared it too: each one's
drain stored the other's spooled deliveries in its own database, and nothing
said so. Its start now stops with a line naming the service that holds the
spool; ``python -m hook.spool`` is an operator's tool, not a service, and
still works beside the running hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, Server
from processes import free_port, start_hook, stop_hook
from test_spool import run_cli
from uvicorn.config import STARTUP_FAILURE

from hook.serve import take_spool_dir


def _second_hook(url: str, spool_dir: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hook"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "SPOOL_DIR": str(spool_dir),
            "PORT": str(free_port()),
        },
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_a_second_service_on_a_spool_dir_in_use_refuses_to_start_naming_the_first(
    server: Server, dbname: str, tmp_path: Path
) -> None:
    url = server.url(dbname, user="sync_hook_login")
    first = start_hook(url, tmp_path, WORKERS="2")  # its own workers share it
    try:
        second = _second_hook(url, tmp_path / "spool")

        assert second.returncode == STARTUP_FAILURE, second.stderr
        message = second.stderr.decode()
        assert f"SPOOL_DIR={str(tmp_path / 'spool')!r} is in use by another hook service" in message
        assert f"pid {first.process.pid} " in message
        assert run_cli(tmp_path / "spool", "list").returncode == 0  # the operator's tool may
    finally:
        stop_hook(first)

    again = start_hook(url, tmp_path)  # the lock went with its holder
    stop_hook(again)


SERVICE_UID = 10001  # the image's hook user; no such user on the test host


def test_a_lock_file_the_services_user_cannot_open_is_said_and_does_not_stop_the_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ``service.lock`` left by a root run guarded nothing, and nothing said so."""
    # Outside pytest's own temporary directory, which only root may enter.
    home = Path(tempfile.mkdtemp(prefix="spool-owner-"))
    try:
        home.chmod(0o755)
        spool_dir = home / "spool"
        spool_dir.mkdir()
        lock = spool_dir / "service.lock"
        lock.write_text("pid 1 on a host, since long ago\n")
        lock.chmod(0o600)  # root's, as a root run leaves it
        os.chown(spool_dir, SERVICE_UID, SERVICE_UID)
        os.seteuid(SERVICE_UID)  # the service's user, in this process: no program to exec
        try:
            status = take_spool_dir("hook", str(spool_dir))
        finally:
            os.seteuid(0)
    finally:
        shutil.rmtree(home)

    assert status is None
    message = capsys.readouterr().err
    assert f"hook: warning: cannot open {lock} (Permission denied)" in message
    assert "a second service given this SPOOL_DIR would not be refused" in message
    assert f"chown {SERVICE_UID} {lock}" in message
