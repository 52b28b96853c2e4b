"""The hook's settings: defaults, environment overrides and clear refusals."""

from __future__ import annotations

import logging
import re

import pytest
from conftest import ROOT

from hook.connections import BoundedHttpToolsProtocol
from hook.serve import hook_options, warn_if_open
from hook.settings import Settings, SettingsError


def test_defaults_serve_the_sync_services_own_port() -> None:
    settings = Settings.from_env({})
    assert (settings.port, settings.max_body_bytes, settings.host) == (9098, 1048576, "127.0.0.1")


def test_a_restarted_cms_is_registered_again_before_its_second_change() -> None:
    # The CMS forgets its listener on restart and ticks every 20 to 25 s; a
    # restart quick enough that no registration fails is only seen at the next one.
    cms_shortest_tick = 20.0
    assert Settings.from_env({}).register_every < cms_shortest_tick / 2


def test_a_yoyo_url_is_accepted_as_the_database_url() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql+psycopg://u@h:1/db"})
    assert settings.database_url == "postgresql://u@h:1/db"


def test_values_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"PORT": "8000", "MAX_BODY_BYTES": "10", "DB_TIMEOUT": "0.5", "LOG_LEVEL": "DEBUG"}
    )
    assert (settings.port, settings.max_body_bytes, settings.database_timeout) == (8000, 10, 0.5)
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "ninety"}, "PORT must be a whole number, got 'ninety'"),
        ({"PORT": "0"}, "PORT must be at least 1, got 0"),
        ({"MAX_BODY_BYTES": "1.5"}, "MAX_BODY_BYTES must be a whole number, got '1.5'"),
        ({"DB_TIMEOUT": "soon"}, "DB_TIMEOUT must be a number, got 'soon'"),
        ({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"}, "must not exceed DB_POOL_MAX_SIZE"),
        ({"HTTP_PARSER": "picohttp"}, "HTTP_PARSER must be auto, h11 or httptools, got 'picohttp'"),
        ({"EVENT_LOOP": "trio"}, "EVENT_LOOP must be auto, asyncio or uvloop, got 'trio'"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be debug, info, warning or error, got 'loud'"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL is not a PostgreSQL connection URL"),
        ({"DATABASE_URL": "postgresql://u@h/db?sslmod=require"}, 'query parameter: "sslmod"'),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(environ)


def test_production_serves_with_httptools_and_uvloop() -> None:
    """requirements.txt installs both; auto picks them, as uvicorn[standard] would."""
    options = hook_options(Settings.from_env({"HOST": "127.0.0.1"}))
    assert options["http"] is BoundedHttpToolsProtocol
    assert options["loop"] == "hook.connections:new_uvloop"


@pytest.mark.parametrize(
    ("environ", "protocol", "loop"),
    [
        ({"HTTP_PARSER": "h11", "EVENT_LOOP": "asyncio"}, "BoundedH11Protocol", "new_event_loop"),
        (
            {"HTTP_PARSER": "httptools", "EVENT_LOOP": "uvloop"},
            "BoundedHttpToolsProtocol",
            "new_uvloop",
        ),
    ],
)
def test_the_parser_and_the_loop_can_be_chosen(
    environ: dict[str, str], protocol: str, loop: str
) -> None:
    options = hook_options(Settings.from_env(environ))
    assert options["http"].__name__ == protocol
    assert options["loop"] == f"hook.connections:{loop}"


def test_only_the_environment_given_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8123")
    assert Settings.from_env({}).port == 9098
    assert Settings.from_env().port == 8123
    assert Settings().port == 8123  # pydantic-settings' own way reads the process environment


@pytest.mark.parametrize(
    ("name", "field", "default"),
    [("PORT", "port", 9098), ("HOST", "host", "127.0.0.1"), ("DB_TIMEOUT", "database_timeout", 5)],
)
def test_an_empty_variable_means_its_default(name: str, field: str, default: object) -> None:
    assert getattr(Settings.from_env({name: ""}), field) == default


def test_an_empty_spool_dir_turns_the_spool_off() -> None:
    assert (Settings.from_env({}).spool_dir, Settings.from_env({"SPOOL_DIR": ""}).spool_dir) == (
        "spool",
        "",
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TRUSTED_PROXIES": "10.0.0.2, proxy"}, "TRUSTED_PROXIES holds 'proxy', which is not an"),
        ({"HEADER_TIMEOUT": "0"}, "HEADER_TIMEOUT must be at least 0.1, got 0.0"),
        ({"MAX_HEADER_BYTES": "100"}, "MAX_HEADER_BYTES must be at least 1024, got 100"),
        ({"MAX_CONNECTIONS": "lots"}, "MAX_CONNECTIONS must be a whole number, got 'lots'"),
        (
            {"MAX_BODY_BYTES": "2000", "MAX_INFLIGHT_BODY_BYTES": "1000"},
            "MAX_INFLIGHT_BODY_BYTES (1000) must be at least MAX_BODY_BYTES (2000)",
        ),
    ],
)
def test_the_connection_and_memory_settings_are_checked(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    ("value", "networks"),
    [
        (None, "127.0.0.0/8 ::1/128 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7"),
        ("", "127.0.0.0/8 ::1/128 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7"),
        ("10.0.0.7, 2001:db8::/32", "10.0.0.7/32 2001:db8::/32"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("none", ""),
        ("NONE", ""),
        ("0.0.0.0/0, ::/0", "0.0.0.0/0 ::/0"),
    ],
    ids=["unset", "empty", "list", "host bits", "none", "NONE", "everyone"],
)
def test_status_detail_from_is_read_as_networks_loopback_and_private_by_default(
    value: str | None, networks: str
) -> None:
    """Who sees what deliveries carried on /status: make run, compose and private networks."""
    environ = {} if value is None else {"STATUS_DETAIL_FROM": value}
    read = Settings.from_env(environ).status_detail_from
    assert " ".join(map(str, read)) == networks


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.0/8, monitoring", "STATUS_DETAIL_FROM holds 'monitoring', which is not an"),
        ("10.0.0.0/33", "STATUS_DETAIL_FROM holds '10.0.0.0/33', which is not an address"),
        ("10.0.0.0/8 192.168.0.0/16", "STATUS_DETAIL_FROM holds '10.0.0.0/8 192.168.0.0/16'"),
        ("none, 10.0.0.0/8", "STATUS_DETAIL_FROM holds 'none', which is not an address"),
        ("nobody", "STATUS_DETAIL_FROM holds 'nobody', which is not an address"),
        (",", "STATUS_DETAIL_FROM names no network (write none to show the detail to nobody)"),
    ],
)
def test_a_malformed_status_detail_from_is_refused_naming_it(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env({"STATUS_DETAIL_FROM": value})


def test_trusted_proxies_are_read_as_a_list() -> None:
    settings = Settings.from_env({"TRUSTED_PROXIES": "10.0.0.2, 192.168.0.0/16"})
    assert settings.trusted_proxies == ("10.0.0.2", "192.168.0.0/16")
    assert Settings.from_env({}).trusted_proxies == ()


@pytest.mark.parametrize(
    ("environ", "warning"),
    [
        ({"HOST": "0.0.0.0"}, "NOTIFY_TOKEN is not set"),
        (
            {"HOST": "0.0.0.0", "NOTIFY_TOKEN": "local-dev-token-change-me"},
            "NOTIFY_TOKEN is the published placeholder",
        ),
        ({"HOST": "0.0.0.0", "NOTIFY_TOKEN": "k3J9xQ2mVw7pL0aZ"}, None),
        ({"HOST": "127.0.0.1"}, None),
        ({"HOST": "127.0.0.1", "NOTIFY_TOKEN": "local-dev-token-change-me"}, None),
    ],
)
def test_a_hook_anyone_may_write_through_says_so_at_start(
    environ: dict[str, str], warning: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hook"):
        warn_if_open(Settings.from_env(environ))
    said = [record.getMessage() for record in caplog.records]
    if warning is None:
        assert said == []
    else:
        assert len(said) == 1 and said[0].startswith(warning)


def _documented_defaults() -> dict[str, str]:
    """docs/hook.md's settings table: each variable and the default it states."""
    table = (ROOT / "docs" / "hook.md").read_text().split("## Settings", 1)[1].split("##", 1)[0]
    documented: dict[str, str] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1]) or [""] * len(names)
        documented.update(zip(names, defaults[: len(names)], strict=True))
    return documented


def test_docs_hook_md_names_every_variable_with_the_default_it_has() -> None:
    documented = _documented_defaults()
    variables = {field.validation_alias: field.default for field in Settings.model_fields.values()}
    assert set(documented) == set(variables)
    for name, default in variables.items():
        stated = documented[name]
        if isinstance(default, int | float):
            assert float(stated) == default, name
        elif isinstance(default, tuple):
            assert stated == ", ".join(map(str, default)), name
        else:
            assert stated == default, name


@pytest.mark.parametrize(("db_timeout", "seconds"), [("5", 18.0), ("1", 10.0)])
def test_a_stop_waits_for_requests_in_flight_3_db_timeouts_and_3_s_but_at_least_10_s(
    db_timeout: str, seconds: float
) -> None:
    """docs/hook.md, DB_TIMEOUT: what uvicorn gives the requests in flight at SIGTERM."""
    options = hook_options(Settings.from_env({"DB_TIMEOUT": db_timeout}))
    assert options["timeout_graceful_shutdown"] == seconds
