"""Serve the CMS simulator: ``python -m cms_simulator`` (settings from environment variables)."""

from __future__ import annotations

import sys

import psycopg

from cms_simulator.settings import Settings
from hook.serve import serve
from hook.settings import SettingsError


def _settings_with_a_database() -> Settings:
    """The settings, once the CMS database they name answers: without it nothing can tick."""
    settings = Settings.from_env()
    try:
        psycopg.connect(settings.database_url, connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        raise SettingsError(
            f"CMS_DATABASE_URL cannot be reached ({reason}); "
            "start the CMS database or point the variable at it"
        ) from None
    return settings


if __name__ == "__main__":
    sys.exit(serve("cms_simulator", _settings_with_a_database, "cms_simulator.app:app_from_env"))
