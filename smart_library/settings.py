"""Settings of the smart library stand-in, read once from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hook.settings import LOG_LEVELS, SettingsError, libpq_url, read_choice, read_number

#: The read-only login of migration 0019, on the smart library's database.
DEFAULT_DATABASE_URL = "postgresql://smart_library_login@localhost:5432/fragrancedb"


@dataclass(frozen=True)
class Settings:
    """Everything the stand-in can be told, with the defaults it runs with.

    The real smart library listens on 9099, hard-coded; ``PORT`` exists so
    tests can run several side by side.
    """

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 9099
    pool_min_size: int = 1
    pool_max_size: int = 4
    database_timeout: float = 5.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment; raise SettingsError on a bad value."""
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=libpq_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            host=env.get("HOST") or cls.host,
            port=read_number(env, "PORT", cls.port, int, 1),
            pool_min_size=read_number(env, "DB_POOL_MIN_SIZE", cls.pool_min_size, int, 0),
            pool_max_size=read_number(env, "DB_POOL_MAX_SIZE", cls.pool_max_size, int, 1),
            database_timeout=read_number(env, "DB_TIMEOUT", cls.database_timeout, float, 0.001),
            log_level=read_choice(env, "LOG_LEVEL", cls.log_level, LOG_LEVELS),
        )
        if settings.pool_min_size > settings.pool_max_size:
            raise SettingsError(
                f"DB_POOL_MIN_SIZE ({settings.pool_min_size}) must not exceed "
                f"DB_POOL_MAX_SIZE ({settings.pool_max_size})"
            )
        return settings
