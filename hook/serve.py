"""Serve an app factory with uvicorn, for `python -m hook` and `python -m cms_simulator`."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Protocol

import uvicorn
from uvicorn.supervisors import Multiprocess

from hook.settings import SettingsError


class ServedSettings(Protocol):
    """What serving needs from a program's settings."""

    @property
    def host(self) -> str: ...  # noqa: D102

    @property
    def port(self) -> int: ...  # noqa: D102

    @property
    def log_level(self) -> str: ...  # noqa: D102


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """After its graceful shutdown uvicorn re-raises SIGTERM/SIGINT: end with status 0."""
    raise SystemExit(0)


def serve(program: str, read_settings: Callable[[], ServedSettings], factory: str) -> int:
    """Check the settings, then serve ``factory`` until SIGTERM or SIGINT; return the exit status.

    A bad setting prints one line naming the variable and returns 2. On a
    signal uvicorn shuts down gracefully (the app's lifespan closes its
    resources) and the program then ends with status 0.
    """
    try:
        settings = read_settings()
    except SettingsError as exc:
        print(f"{program}: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    config = uvicorn.Config(
        factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=getattr(settings, "workers", 1),
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    if config.workers > 1:
        Multiprocess(config, sockets=[_tcp_socket(config.bind_socket())]).run()
    else:
        uvicorn.Server(config).run()
    return 0


def _tcp_socket(sock: socket.socket) -> socket.socket:
    """The workers' shared listening socket, labelled as TCP.

    uvicorn creates it with protocol 0; asyncio then leaves Nagle on for the
    connections it accepts, and every answer (headers, then body) waits about
    40 ms for the client's delayed ACK. With IPPROTO_TCP, asyncio sets TCP_NODELAY.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp
