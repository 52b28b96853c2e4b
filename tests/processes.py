"""Real processes for tests: the hook as the deploy runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import ROOT


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Hook:
    """A running ``python -m hook`` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_hook(database_url: str, tmp_path: Path, **env: str) -> Hook:
    """Start the hook as the deploy does and wait until it answers."""
    port = free_port()
    log = tmp_path / f"hook-{port}.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "DB_TIMEOUT": "2",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hook"], cwd=ROOT, env=environment, stdout=out, stderr=out
        )
    hook = Hook(process, f"http://127.0.0.1:{port}", log)
    for _ in range(200):
        if process.poll() is not None:
            pytest.fail(f"hook exited early:\n{hook.output()}")
        try:
            httpx.get(hook.url + "/healthz", timeout=10)  # any answer, even 503, means up
            return hook
        except httpx.ConnectError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"hook did not start:\n{hook.output()}")


def stop_hook(hook: Hook) -> None:
    hook.process.terminate()
    try:
        hook.process.wait(15)
    except subprocess.TimeoutExpired:
        hook.process.kill()
        raise
