"""Settings of the hook, read once from environment variables."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from hook.guard import Network
from hook.listener import listener_payload

N = TypeVar("N", int, float)
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,}")

DEFAULT_DATABASE_URL = "postgresql://sync_hook_login@localhost:5432/fragrancedb"


class SettingsError(ValueError):
    """An environment variable holds a value the program (hook or CMS simulator) cannot use."""


def read_number(
    environ: Mapping[str, str], name: str, default: N, parse: Callable[[str], N], minimum: N
) -> N:
    """Read one numeric variable, naming it in the error when it is unusable."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _networks(raw: str) -> tuple[Network, ...]:
    """Parse ALLOWED_NETWORKS: comma-separated CIDRs, empty for anyone."""
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(
                f"ALLOWED_NETWORKS holds {item!r}, which is not a network such as 10.0.0.0/8"
            ) from None
    return tuple(networks)


def libpq_url(url: str) -> str:
    """Accept yoyo's ``postgresql+psycopg://`` form too, so one URL serves both tools."""
    for prefix in ("postgresql+psycopg://", "postgres+psycopg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Settings:
    """Everything the hook can be told, with the defaults it runs with."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 9098
    max_body_bytes: int = 1024 * 1024
    pool_min_size: int = 1
    pool_max_size: int = 10
    database_timeout: float = 5.0
    workers: int = 1
    batch_max_size: int = 50
    batch_concurrency: int = 1
    spool_dir: str = "spool"
    spool_retry_every: float = 1.0
    body_timeout: float = 30.0
    log_level: str = "info"
    cms_url: str = ""
    public_url: str = ""
    register_every: float = 60.0
    notify_token: str = ""
    allowed_networks: tuple[Network, ...] = ()
    rate_limit: float = 0.0
    rate_burst: int = 20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment; raise SettingsError on a bad value."""
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=libpq_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            host=env.get("HOST") or cls.host,
            port=read_number(env, "PORT", cls.port, int, 1),
            max_body_bytes=read_number(env, "MAX_BODY_BYTES", cls.max_body_bytes, int, 1),
            pool_min_size=read_number(env, "DB_POOL_MIN_SIZE", cls.pool_min_size, int, 0),
            pool_max_size=read_number(env, "DB_POOL_MAX_SIZE", cls.pool_max_size, int, 1),
            database_timeout=read_number(env, "DB_TIMEOUT", cls.database_timeout, float, 0.001),
            workers=read_number(env, "WORKERS", cls.workers, int, 1),
            batch_max_size=read_number(env, "BATCH_MAX_SIZE", cls.batch_max_size, int, 1),
            batch_concurrency=read_number(env, "BATCH_CONCURRENCY", cls.batch_concurrency, int, 1),
            spool_dir=env.get("SPOOL_DIR", cls.spool_dir),
            spool_retry_every=read_number(
                env, "SPOOL_RETRY_EVERY", cls.spool_retry_every, float, 0.05
            ),
            body_timeout=read_number(env, "BODY_TIMEOUT", cls.body_timeout, float, 0.1),
            log_level=(env.get("LOG_LEVEL") or cls.log_level).lower(),
            cms_url=env.get("CMS_URL", ""),
            public_url=env.get("PUBLIC_URL", ""),
            register_every=read_number(env, "CMS_REGISTER_EVERY", cls.register_every, float, 1.0),
            notify_token=env.get("NOTIFY_TOKEN", ""),
            allowed_networks=_networks(env.get("ALLOWED_NETWORKS", "")),
            rate_limit=read_number(env, "RATE_LIMIT_PER_SECOND", cls.rate_limit, float, 0.0),
            rate_burst=read_number(env, "RATE_LIMIT_BURST", cls.rate_burst, int, 1),
        )
        token = settings.notify_token
        if token and not TOKEN_PATTERN.fullmatch(token):
            raise SettingsError(
                "NOTIFY_TOKEN must be at least 16 characters of A-Z, a-z, 0-9, '-' or '_' "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        if token and settings.public_url and not settings.public_url.endswith("/" + token):
            raise SettingsError("PUBLIC_URL must end with /notifications/<NOTIFY_TOKEN>")
        if bool(settings.cms_url) != bool(settings.public_url):
            raise SettingsError(
                "CMS_URL and PUBLIC_URL go together: set both to register with the CMS, or neither"
            )
        if settings.public_url:
            try:
                listener_payload(settings.public_url)
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
        if settings.pool_min_size > settings.pool_max_size:
            raise SettingsError(
                f"DB_POOL_MIN_SIZE ({settings.pool_min_size}) must not exceed "
                f"DB_POOL_MAX_SIZE ({settings.pool_max_size})"
            )
        return settings
