"""Serve the hook: ``python -m hook`` (settings from environment variables)."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from hook.settings import Settings, SettingsError


def main() -> int:
    """Check the settings, then serve until stopped."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"hook: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = uvicorn.Config(
        "hook.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
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


if __name__ == "__main__":
    sys.exit(main())
