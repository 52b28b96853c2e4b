"""Real processes for tests: the hook, the CMS simulator and the smart library stand-in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Server


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def port_held(port: int = 0) -> Iterator[int]:
    """A port on 127.0.0.1 another process listens on (accepting nothing) while the block runs."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        yield holder.getsockname()[1]


@dataclass
class Service:
    """A running ``python -m <module>`` process (the hook, the CMS simulator, the stand-in)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


Hook = Service


def start_service(
    module: str,
    tmp_path: Path,
    ready: str,
    port: int | None = None,
    cwd: Path = ROOT,
    preexec_fn: Callable[[], None] | None = None,
    **env: str,
) -> Service:
    """Start ``python -m module`` (from ``cwd``) on a port; wait until ``ready`` answers at all."""
    port = port or free_port()
    log = tmp_path / f"{module}-{port}.log"
    environment = {**os.environ, "PORT": str(port), **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=out,
            preexec_fn=preexec_fn,
        )
    service = Service(process, f"http://127.0.0.1:{port}", log)
    for _ in range(200):
        if process.poll() is not None:
            pytest.fail(f"{module} exited early:\n{service.output()}")
        try:
            httpx.get(service.url + ready, timeout=10)  # any answer, even 503, means up
            return service
        except httpx.ConnectError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"{module} did not start:\n{service.output()}")


def start_hook(
    database_url: str,
    tmp_path: Path,
    port: int | None = None,
    preexec_fn: Callable[[], None] | None = None,
    **env: str,
) -> Hook:
    """Start the hook as the deploy does and wait until it answers.

    With production's HTTP stack (requirements.txt: httptools and uvloop,
    chosen by ``auto``); a test names ``HTTP_PARSER`` or ``EVENT_LOOP`` to try another.
    """
    defaults = {
        "DATABASE_URL": database_url,
        "DB_TIMEOUT": "2",
        "SPOOL_DIR": str(tmp_path / "spool"),
    }
    return start_service(
        "hook", tmp_path, "/healthz", port, preexec_fn=preexec_fn, **{**defaults, **env}
    )


def start_smart_library(
    database_url: str, tmp_path: Path, port: int | None = None, **env: str
) -> Service:
    """Start the smart library stand-in as the deploy does and wait until it answers."""
    return start_service(
        "smart_library", tmp_path, "/", port, **{"DATABASE_URL": database_url, **env}
    )


def wait_for_ticks(sim: Service, count: int) -> None:
    """Wait until the CMS simulator has made ``count`` ticks and sent everything they caused."""
    for _ in range(1200):
        state = httpx.get(sim.url + "/", timeout=10).json()["simulator"]
        if state["ticks"] >= count and not state["ticking"]:
            return
        time.sleep(0.05)
    pytest.fail(f"the simulator did not finish its {count} ticks:\n{sim.output()}")


def run_cms_into(
    hook: Service, tmp_path: Path, port: int, database_url: str, journal: Path, **env: str
) -> None:
    """Run the CMS simulator at full speed into ``hook`` until its ``COUNT`` ticks are sent.

    It waits for the hook to register as its listener and journals what it
    sends to ``journal``. Stops both after, the hook last: every delivery has
    its answer, so its outcome, by then.
    """
    sim: Service | None = None
    try:
        sim = start_service(
            "cms_simulator",
            tmp_path,
            "/healthcheck",
            port,
            CMS_DATABASE_URL=database_url,
            INTERVAL_MIN="0",
            INTERVAL_MAX="0",
            WAIT_FOR_LISTENER="true",
            JOURNAL=str(journal),
            **env,
        )
        wait_for_ticks(sim, int(env["COUNT"]))
    finally:
        if sim is not None:
            stop_service(sim)
        stop_service(hook)


def stop_service(service: Service) -> None:
    """SIGTERM, and insist that it stops within 15 s."""
    service.process.terminate()
    try:
        service.process.wait(15)
    except subprocess.TimeoutExpired:
        service.process.kill()
        raise


stop_hook = stop_service

#: HTTP parser and event loop: production's (requirements.txt), and uvicorn's pure-Python ones.
STACKS = [
    pytest.param("httptools", "uvloop", id="httptools+uvloop"),
    pytest.param("httptools", "asyncio", id="httptools+asyncio"),
    pytest.param("h11", "asyncio", id="h11+asyncio"),
]


@contextmanager
def running_hook(server: Server, dbname: str, tmp_path: Path, **env: str) -> Iterator[Hook]:
    """The hook on this test's database as its login, stopped after the block."""
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, **env)
    try:
        yield hook
    finally:
        stop_hook(hook)


def worker_pids(service: Service) -> list[int]:
    """The processes serving requests: uvicorn's workers (WORKERS > 1), or the process itself."""
    pid = service.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = []
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:  # not multiprocessing's resource tracker
            workers.append(child)
    return workers or [pid]


def hook_side(hook: Hook, clients: list[socket.socket]) -> dict[int, tuple[int, int]]:
    """The hook's end of each client's connection, as the kernel lists it.

    Client port -> (bytes the hook wrote that the client has not taken, bytes the
    client sent that the hook has not read): ``tx_queue`` and ``rx_queue`` of
    /proc/net/tcp, whose lines name each socket by its addresses. A test waits on
    these rather than sleeping for the hook to have read or written something.
    """
    hook_port = int(hook.url.rsplit(":", 1)[1])
    client_ports = {sock.getsockname()[1] for sock in clients}
    sides: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if local_port == hook_port and remote_port in client_ports:
            unsent, unread = fields[4].split(":")
            sides[remote_port] = (int(unsent, 16), int(unread, 16))
    return sides


def wait_for_empty_spool(hook: Hook, attempts: int = 1200) -> dict:
    """Poll /healthz until the database answers and nothing waits in the host's spool."""
    health: dict = {}
    for _ in range(attempts):
        health = httpx.get(hook.url + "/healthz", timeout=30).json()
        if health["database"] == "ok" and health["spool_depth"] == 0:
            return health
        time.sleep(0.05)
    pytest.fail(f"the spool never drained ({health}):\n{hook.output()}")
