"""Serve the CMS simulator: ``python -m cms_simulator`` (settings from environment variables)."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import uvicorn

from cms_simulator.settings import Settings, SettingsError


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """After uvicorn's graceful shutdown it re-raises the signal: end with status 0."""
    raise SystemExit(0)


def main() -> int:
    """Check the settings, then serve until SIGTERM or SIGINT."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"cms_simulator: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # uvicorn handles SIGTERM/SIGINT itself (lifespan shutdown: ticker cancelled,
    # connection closed), then re-raises the signal to the handlers found here.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    uvicorn.run(
        "cms_simulator.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
