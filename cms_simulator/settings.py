"""Settings of the CMS simulator, read once from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hook.settings import LOG_LEVELS, SettingsError, libpq_url, read_choice, read_number

DEFAULT_CMS_DATABASE_URL = "postgresql://cms_user@localhost:15432/cms_database"

#: Chaos kinds, in the order the docs list them.
CHAOS_KINDS = (
    "invalid",
    "unknown_id",
    "unknown_field",
    "malformed",
    "duplicate",
    "out_of_order",
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(environ: Mapping[str, str], name: str) -> bool:
    """Read one on/off variable; unset means off."""
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {environ[name]!r}")


def _chaos(environ: Mapping[str, str]) -> frozenset[str]:
    """The chaos kinds switched on by ``CHAOS`` (comma-separated, or ``all``)."""
    raw = environ.get("CHAOS", "")
    names = {part.strip().lower() for part in raw.split(",") if part.strip()}
    if names == {"all"}:
        return frozenset(CHAOS_KINDS)
    unknown = sorted(names - set(CHAOS_KINDS))
    if unknown:
        raise SettingsError(
            f"CHAOS holds unknown kinds {', '.join(unknown)}; "
            f"use 'all' or some of: {', '.join(CHAOS_KINDS)}"
        )
    return frozenset(names)


@dataclass(frozen=True)
class Settings:
    """Everything the simulator can be told, with the defaults it runs with."""

    database_url: str = DEFAULT_CMS_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 9090
    interval_min: float = 20.0
    interval_max: float = 25.0
    count: int | None = None
    seed: int | None = None
    wait_for_listener: bool = False
    chaos: frozenset[str] = frozenset()
    chaos_probability: float = 0.2
    journal: str | None = None
    send_timeout: float = 10.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment; raise SettingsError on a bad value."""
        env = os.environ if environ is None else environ
        count_set = bool(env.get("COUNT"))
        seed_set = bool(env.get("SEED"))
        settings = cls(
            database_url=libpq_url(env.get("CMS_DATABASE_URL") or DEFAULT_CMS_DATABASE_URL),
            host=env.get("HOST") or cls.host,
            port=read_number(env, "PORT", cls.port, int, 1),
            interval_min=read_number(env, "INTERVAL_MIN", cls.interval_min, float, 0.0),
            interval_max=read_number(env, "INTERVAL_MAX", cls.interval_max, float, 0.0),
            count=read_number(env, "COUNT", 0, int, 0) if count_set else None,
            seed=read_number(env, "SEED", 0, int, 0) if seed_set else None,
            wait_for_listener=_flag(env, "WAIT_FOR_LISTENER"),
            chaos=_chaos(env),
            chaos_probability=read_number(
                env, "CHAOS_PROBABILITY", cls.chaos_probability, float, 0.0
            ),
            journal=env.get("JOURNAL") or None,
            send_timeout=read_number(env, "SEND_TIMEOUT", cls.send_timeout, float, 0.001),
            log_level=read_choice(env, "LOG_LEVEL", cls.log_level, LOG_LEVELS),
        )
        if settings.interval_min > settings.interval_max:
            raise SettingsError(
                f"INTERVAL_MIN ({settings.interval_min}) must not exceed "
                f"INTERVAL_MAX ({settings.interval_max})"
            )
        if settings.chaos_probability > 1:
            raise SettingsError(
                f"CHAOS_PROBABILITY must be at most 1, got {settings.chaos_probability}"
            )
        return settings
