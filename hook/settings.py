"""Settings of the hook, read once from environment variables (pydantic-settings).

Every setting is one environment variable; an empty value means the default
(except ``SPOOL_DIR``, where empty turns the spool off). A bad value stops
the program with one sentence naming the variable and what it must be.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from hook.listener import listener_payload, route_token

N = TypeVar("N", int, float)
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,}")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DATABASE_URL = "postgresql://sync_hook_login@localhost:5432/fragrancedb"
MIB = 1024 * 1024


class SettingsError(ValueError):
    """An environment variable holds a value the program (hook or CMS simulator) cannot use."""


def parse_number(raw: str, parse: Callable[[str], N], minimum: N) -> N:
    """Parse one numeric value; the ValueError says what it must be (without the name)."""
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ValueError(f"must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"must be at least {minimum}, got {value}")
    return value


def read_number(
    environ: Mapping[str, str], name: str, default: N, parse: Callable[[str], N], minimum: N
) -> N:
    """Read one numeric variable, naming it in the error when it is unusable."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_number(raw, parse, minimum)
    except ValueError as exc:
        raise SettingsError(f"{name} {exc}") from None


def _number(parse: Callable[[str], N], minimum: N) -> BeforeValidator:
    """A field validator: the variable's text parsed with ``parse``, at least ``minimum``."""

    def check(raw: object) -> object:
        return parse_number(raw, parse, minimum) if isinstance(raw, str) else raw

    return BeforeValidator(check)


def whole(minimum: int) -> BeforeValidator:
    """A whole number of at least ``minimum``."""
    return _number(int, minimum)


def number(minimum: float) -> BeforeValidator:
    """A number of at least ``minimum``."""
    return _number(float, minimum)


def libpq_url(url: str) -> str:
    """Accept yoyo's ``postgresql+psycopg://`` form too, so one URL serves both tools."""
    for prefix in ("postgresql+psycopg://", "postgres+psycopg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _database_url(raw: object) -> object:
    """DATABASE_URL: a libpq URL (or yoyo's form of one) that libpq can parse."""
    if not isinstance(raw, str):
        return raw
    url = libpq_url(raw)
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).strip()
        raise ValueError(
            f"is not a PostgreSQL connection URL ({reason}); e.g. {DEFAULT_DATABASE_URL}"
        ) from None
    return url


def _comma_separated(raw: object) -> object:
    return (
        [part.strip() for part in raw.split(",") if part.strip()] if isinstance(raw, str) else raw
    )


def _networks(raw: object) -> object:
    """ALLOWED_NETWORKS: comma-separated CIDRs, empty for anyone."""
    networks = []
    for item in _comma_separated(raw):  # type: ignore[union-attr]
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"holds {item!r}, which is not a network such as 10.0.0.0/8") from None
    return tuple(networks)


#: Who sees what deliveries carried on /status by default: this host, and the private
#: ranges (RFC 1918, IPv6 unique local) where make run, compose's network and a
#: monitoring network live. A client from anywhere else gets counts and figures only.
DEFAULT_STATUS_DETAIL_FROM: tuple[Network, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    )
)
#: What STATUS_DETAIL_FROM says to show what deliveries carried to nobody.
NOBODY = "none"


def _detail_networks(raw: object) -> object:
    """STATUS_DETAIL_FROM: comma-separated addresses or CIDRs, or none; empty for the default."""
    if not isinstance(raw, str):
        return raw
    items = _comma_separated(raw)
    if [item.lower() for item in items] == [NOBODY]:  # type: ignore[union-attr]
        return ()
    networks = []
    for item in items:  # type: ignore[union-attr]
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"holds {item!r}, which is not an address or network such as 10.0.0.0/8 "
                f"(or write {NOBODY} alone to show what deliveries carried to nobody)"
            ) from None
    if not networks:
        raise ValueError(f"names no network (write {NOBODY} to show the detail to nobody)")
    return tuple(networks)


def _proxies(raw: object) -> object:
    """TRUSTED_PROXIES: comma-separated addresses or CIDRs, empty for none."""
    proxies = []
    for item in _comma_separated(raw):  # type: ignore[union-attr]
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"holds {item!r}, which is not an address or network such as 10.0.0.2 or "
                "10.0.0.0/24 (name the proxies in front of the hook, or leave it empty)"
            ) from None
        proxies.append(item)
    return tuple(proxies)


HOST_NAME_PATTERN = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")


def _hosts(raw: object) -> object:
    """ALLOWED_HOSTS: comma-separated host names (no scheme, no port), or * for any."""
    names = []
    for item in _comma_separated(raw):  # type: ignore[union-attr]
        name = item.lower().rstrip(".")
        if name != "*" and not HOST_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"holds {item!r}, which is not a host name such as fragrance_sync or "
                "sync.internal (no scheme, port or path), nor *"
            )
        names.append(name)
    return tuple(names)


#: What LOG_LEVEL may say: the levels uvicorn and logging both know.
LOG_LEVELS = ("debug", "info", "warning", "error")


def _choice(raw: str, choices: tuple[str, ...]) -> str:
    """``raw`` in lower case when it is one of ``choices``; ValueError saying which they are."""
    raw = raw.lower()
    if raw not in choices:
        raise ValueError(f"must be {', '.join(choices[:-1])} or {choices[-1]}, got {raw!r}")
    return raw


def read_choice(
    environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]
) -> str:
    """Read one variable that must be one of ``choices`` (any case), naming it in the error."""
    try:
        return _choice(environ.get(name) or default, choices)
    except ValueError as exc:
        raise SettingsError(f"{name} {exc}") from None


def one_of(*choices: str) -> BeforeValidator:
    """One of ``choices``, in any case."""

    def check(raw: object) -> object:
        return _choice(raw, choices) if isinstance(raw, str) else raw

    return BeforeValidator(check)


def _token(raw: object) -> object:
    if isinstance(raw, str) and raw and not TOKEN_PATTERN.fullmatch(raw):
        raise ValueError(
            "must be at least 16 characters of A-Z, a-z, 0-9, '-' or '_' "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return raw


class _Environment(EnvSettingsSource):
    """The variables of one environment mapping; empty ones count as unset unless kept."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        keep: frozenset[str] = getattr(self.settings_cls, "KEEP_EMPTY", frozenset())
        return {name: v for name, v in self._environ.items() if v != "" or name in keep}


def _sentence(error: Any) -> str:
    """One validation error as the sentence we print: the variable, then what is wrong."""
    cause = error.get("ctx", {}).get("error")
    text = str(cause) if cause is not None else error["msg"]
    variable = ".".join(str(part) for part in error["loc"])
    return f"{variable} {text}" if variable else text


class EnvironmentSettings(BaseSettings):
    """Settings read from environment variables, one field per variable (its alias)."""

    model_config = SettingsConfigDict(case_sensitive=True, frozen=True, validate_by_name=True)

    #: Variables whose empty value means something (everything else: empty is unset).
    KEEP_EMPTY: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: Any,
        env_settings: Any,
        dotenv_settings: Any,
        file_secret_settings: Any,
    ) -> tuple[Any, ...]:
        """Arguments first, then the process environment: no .env file, no secrets directory."""
        return (init_settings, _Environment(settings_cls, os.environ))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the settings from ``environ`` (the process's by default); SettingsError if bad."""
        source = _Environment(cls, os.environ if environ is None else environ)
        try:
            return cls(_build_sources=((source,), {}))
        except ValidationError as exc:
            raise SettingsError(_sentence(exc.errors()[0])) from None


class Settings(EnvironmentSettings):
    """Everything the hook can be told, with the defaults it runs with."""

    KEEP_EMPTY: ClassVar[frozenset[str]] = frozenset({"SPOOL_DIR"})

    database_url: Annotated[
        str, BeforeValidator(_database_url), Field(validation_alias="DATABASE_URL")
    ] = DEFAULT_DATABASE_URL
    host: Annotated[str, Field(validation_alias="HOST")] = "127.0.0.1"
    port: Annotated[int, whole(1), Field(validation_alias="PORT")] = 9098
    max_body_bytes: Annotated[int, whole(1), Field(validation_alias="MAX_BODY_BYTES")] = MIB
    pool_min_size: Annotated[int, whole(0), Field(validation_alias="DB_POOL_MIN_SIZE")] = 1
    pool_max_size: Annotated[int, whole(1), Field(validation_alias="DB_POOL_MAX_SIZE")] = 10
    database_timeout: Annotated[float, number(0.001), Field(validation_alias="DB_TIMEOUT")] = 5.0
    workers: Annotated[int, whole(1), Field(validation_alias="WORKERS")] = 1
    batch_max_size: Annotated[int, whole(1), Field(validation_alias="BATCH_MAX_SIZE")] = 50
    batch_concurrency: Annotated[int, whole(1), Field(validation_alias="BATCH_CONCURRENCY")] = 1
    merge_batch_size: Annotated[int, whole(1), Field(validation_alias="MERGE_BATCH_SIZE")] = 1000
    merge_every: Annotated[float, number(0.05), Field(validation_alias="MERGE_EVERY")] = 1.0
    merge_linger: Annotated[float, number(0), Field(validation_alias="MERGE_LINGER")] = 0.01
    spool_dir: Annotated[str, Field(validation_alias="SPOOL_DIR")] = "spool"
    spool_retry_every: Annotated[
        float, number(0.05), Field(validation_alias="SPOOL_RETRY_EVERY")
    ] = 1.0
    # Below sync.settings.purge_after (90 days): past it the inbox may have lost the key.
    spool_hold_after_days: Annotated[
        float, number(1.0), Field(validation_alias="SPOOL_HOLD_AFTER_DAYS")
    ] = 80.0
    body_timeout: Annotated[float, number(0.1), Field(validation_alias="BODY_TIMEOUT")] = 30.0
    header_timeout: Annotated[float, number(0.1), Field(validation_alias="HEADER_TIMEOUT")] = 10.0
    max_header_bytes: Annotated[int, whole(1024), Field(validation_alias="MAX_HEADER_BYTES")] = (
        64 * 1024
    )
    max_connections: Annotated[int, whole(1), Field(validation_alias="MAX_CONNECTIONS")] = 1000
    max_inflight_body_bytes: Annotated[
        int, whole(1), Field(validation_alias="MAX_INFLIGHT_BODY_BYTES")
    ] = 4 * MIB
    http_parser: Annotated[
        Literal["auto", "h11", "httptools"],
        one_of("auto", "h11", "httptools"),
        Field(validation_alias="HTTP_PARSER"),
    ] = "auto"
    event_loop: Annotated[
        Literal["auto", "asyncio", "uvloop"],
        one_of("auto", "asyncio", "uvloop"),
        Field(validation_alias="EVENT_LOOP"),
    ] = "auto"
    log_level: Annotated[str, one_of(*LOG_LEVELS), Field(validation_alias="LOG_LEVEL")] = "info"
    cms_url: Annotated[str, Field(validation_alias="CMS_URL")] = ""
    public_url: Annotated[str, Field(validation_alias="PUBLIC_URL")] = ""
    # Shorter than the CMS's shortest tick (20 s): a CMS restarted between two
    # registrations has registered us again before its second change.
    register_every: Annotated[float, number(1.0), Field(validation_alias="CMS_REGISTER_EVERY")] = (
        5.0
    )
    notify_token: Annotated[
        str, BeforeValidator(_token), Field(validation_alias="NOTIFY_TOKEN")
    ] = ""
    allowed_networks: Annotated[
        tuple[Network, ...],
        NoDecode,
        BeforeValidator(_networks),
        Field(validation_alias="ALLOWED_NETWORKS"),
    ] = ()
    trusted_proxies: Annotated[
        tuple[str, ...],
        NoDecode,
        BeforeValidator(_proxies),
        Field(validation_alias="TRUSTED_PROXIES"),
    ] = ()
    status_detail_from: Annotated[
        tuple[Network, ...],
        NoDecode,
        BeforeValidator(_detail_networks),
        Field(validation_alias="STATUS_DETAIL_FROM"),
    ] = DEFAULT_STATUS_DETAIL_FROM
    allowed_hosts: Annotated[
        tuple[str, ...],
        NoDecode,
        BeforeValidator(_hosts),
        Field(validation_alias="ALLOWED_HOSTS"),
    ] = ()
    rate_limit: Annotated[float, number(0.0), Field(validation_alias="RATE_LIMIT_PER_SECOND")] = 0.0
    rate_burst: Annotated[int, whole(1), Field(validation_alias="RATE_LIMIT_BURST")] = 20

    @property
    def delivery_hosts(self) -> frozenset[str]:
        """Names a delivery may be sent to without NOTIFY_TOKEN, besides IPs and localhost.

        ALLOWED_HOSTS, and PUBLIC_URL's host: the name the CMS is told to call.
        """
        public = urlsplit(self.public_url).hostname if self.public_url else None
        return frozenset(self.allowed_hosts) | ({public.rstrip(".")} if public else set())

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """The checks that involve more than one variable."""
        token = self.notify_token
        if bool(self.cms_url) != bool(self.public_url):
            raise ValueError(
                "CMS_URL and PUBLIC_URL go together: set both to register with the CMS, or neither"
            )
        if self.public_url:
            listener_payload(self.public_url)  # its ValueError says what is wrong
            # The route's token segment, not the URL's last characters: the route
            # /notifications/{token}/ takes a trailing slash, and a query may follow.
            supplied = route_token(self.public_url)
            if token and supplied != token:
                raise ValueError("PUBLIC_URL must end with /notifications/<NOTIFY_TOKEN>")
            if not token and supplied is not None:
                raise ValueError(
                    "PUBLIC_URL carries a token after /notifications/ but NOTIFY_TOKEN is "
                    "unset: the hook answers that path 404; set NOTIFY_TOKEN to it or drop it"
                )
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"DB_POOL_MIN_SIZE ({self.pool_min_size}) must not exceed "
                f"DB_POOL_MAX_SIZE ({self.pool_max_size})"
            )
        if self.max_inflight_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"MAX_INFLIGHT_BODY_BYTES ({self.max_inflight_body_bytes}) must be at least "
                f"MAX_BODY_BYTES ({self.max_body_bytes}): one body of the largest size must fit"
            )
        return self
