"""make run: the whole system comes up, syncs, reuses its data, and stops leaving nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT
from processes import free_port


def _start(local_dir: Path, pg_port: int, hook_port: int, cms_port: int) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CMS_DATABASE_URL")},
        "LOCAL_DIR": str(local_dir),
        "LOCAL_PG_PORT": str(pg_port),
        "PORT": str(hook_port),
        "CMS_PORT": str(cms_port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.local_stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_status(stack: subprocess.Popen[str], hook_port: int) -> None:
    for _ in range(600):
        if stack.poll() is not None:
            pytest.fail(f"make run exited early:\n{stack.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{hook_port}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail("the hook never became healthy")


def _registered_listener(cms_port: int) -> str | None:
    """The CMS's listener once the hook has registered (it retries until the CMS is up)."""
    listener = None
    for _ in range(300):
        try:
            state = httpx.get(f"http://127.0.0.1:{cms_port}/", timeout=5).json()["simulator"]
        except httpx.ConnectError:
            state = {"listener": None}  # the simulator may come up after the hook
        if (listener := state["listener"]) is not None:
            break
        time.sleep(0.1)
    return listener


def _stop(stack: subprocess.Popen[str]) -> str:
    stack.send_signal(signal.SIGINT)
    output, _ = stack.communicate(timeout=60)
    return output


def _listening(*ports: int) -> list[int]:
    """The ports among ``ports`` that something still accepts connections on."""
    alive = []
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                alive.append(port)
    return alive


def test_make_run_serves_syncs_restarts_on_its_data_and_stops_cleanly(tmp_path: Path) -> None:
    local_dir = tmp_path / "local"
    pg_port, hook_port, cms_port = free_port(), free_port(), free_port()

    stack = _start(local_dir, pg_port, hook_port, cms_port)
    _wait_for_status(stack, hook_port)
    answer = httpx.post(
        f"http://127.0.0.1:{hook_port}/notifications",
        content=b'{"fragrance_id": 5, "cost": 99}',
    )
    assert (answer.status_code, answer.json()["status"]) == (202, "applied")
    assert _registered_listener(cms_port) == f"http://127.0.0.1:{hook_port}/notifications"
    first = _stop(stack)
    assert "5,000-row catalog loaded" in first
    assert "received" in first and "rows in sync" in first
    assert _listening(pg_port, hook_port, cms_port) == []

    again = _start(local_dir, pg_port, hook_port, cms_port)
    _wait_for_status(again, hook_port)
    second = _stop(again)
    assert "catalog loaded" not in second  # the second run reuses the data
    assert "received 1 |" in second
    assert _listening(pg_port, hook_port, cms_port) == []
