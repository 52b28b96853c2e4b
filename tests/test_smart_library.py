"""The smart library stand-in answers as the real smart library does, and only reads.

It runs as ``python -m smart_library`` (as deployed) against a clone of the
adopted catalog, connected as the read-only login of migration 0019.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import ROOT, Server
from processes import Service, free_port, start_smart_library, stop_service

from hook.settings import SettingsError
from smart_library.settings import DEFAULT_DATABASE_URL, Settings

FIELDS = ["fragrance_id", "name", "description", "cost", "forbidden"]


@pytest.fixture(scope="module")
def library(
    server: Server, shared_dbname: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    url = server.url(shared_dbname, user="smart_library_login")
    running = start_smart_library(url, tmp_path_factory.mktemp("smart_library"))
    yield running
    stop_service(running)


@pytest.fixture(scope="module")
def owner(server: Server, shared_dbname: str) -> Iterator[psycopg.Connection]:
    """The database owner, to change what the stand-in reads."""
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        yield conn


@contextmanager
def cost_set(owner: psycopg.Connection, fragrance_id: int, cost: Any) -> Iterator[None]:
    """Give one fragrance a cost for the duration of a test."""
    (before,) = owner.execute(
        "select cost from public.fragrances where fragrance_id = %s", [fragrance_id]
    ).fetchone()
    owner.execute(
        "update public.fragrances set cost = %s where fragrance_id = %s", [cost, fragrance_id]
    )
    try:
        yield
    finally:
        owner.execute(
            "update public.fragrances set cost = %s where fragrance_id = %s",
            [before, fragrance_id],
        )


def test_the_root_says_it_is_the_smart_library_as_flask_sends_text(library: Service) -> None:
    answer = httpx.get(library.url + "/")
    assert (answer.status_code, answer.text) == (200, "I'm the smart library!")
    assert answer.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("path", ["/", "/fragrances", "/fragrance/7", "/fragrance/abc"])
def test_head_on_a_read_route_answers_as_its_get_without_a_body(
    library: Service, path: str
) -> None:
    """Flask answers HEAD wherever it answers GET; the stand-in said 405 Method Not Allowed."""
    head, get = httpx.head(library.url + path), httpx.get(library.url + path)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == get.headers["content-type"]


def test_curation_answers_its_text(library: Service) -> None:
    answer = httpx.post(library.url + "/curation", json={"anything": 1})
    assert (answer.status_code, answer.text) == (200, "my curation!")
    assert answer.headers["content-type"] == "text/html; charset=utf-8"


def test_every_fragrance_is_served_under_data_with_cost_as_an_integer(
    library: Service, owner: psycopg.Connection
) -> None:
    answer = httpx.get(library.url + "/fragrances", timeout=30)
    assert answer.status_code == 200
    assert list(answer.json()) == ["data"]
    table = owner.execute(
        "select fragrance_id, name, description, cost, forbidden"
        " from public.fragrances order by fragrance_id"
    ).fetchall()
    expected = [dict(zip(FIELDS, (i, n, d, int(c), f), strict=True)) for i, n, d, c, f in table]
    assert answer.json()["data"] == expected
    assert len(expected) == 5000
    assert {type(row["cost"]) for row in answer.json()["data"]} == {int}  # 12, never 12.0


def test_one_fragrance_is_served_as_a_row(library: Service, owner: psycopg.Connection) -> None:
    answer = httpx.get(library.url + "/fragrance/7")
    (name,) = owner.execute("select name from public.fragrances where fragrance_id = 7").fetchone()
    assert answer.status_code == 200
    assert list(answer.json()) == FIELDS
    assert (answer.json()["fragrance_id"], answer.json()["name"]) == (7, name)


@pytest.mark.parametrize("fragrance_id", ["5000", "123456", "-1", "0005000"])
def test_a_fragrance_that_does_not_exist_is_null(library: Service, fragrance_id: str) -> None:
    """The real route takes any text as the id: -1 is asked for, and found nowhere."""
    answer = httpx.get(f"{library.url}/fragrance/{fragrance_id}")
    assert (answer.status_code, answer.text) == (200, "null")


@pytest.mark.parametrize("fragrance_id", ["007", "+7"])
def test_an_id_the_database_reads_as_a_number_finds_its_fragrance(
    library: Service, fragrance_id: str
) -> None:
    """The database, not the route, reads the id: as PostgreSQL reads an integer."""
    answer = httpx.get(f"{library.url}/fragrance/{fragrance_id}")
    assert answer.status_code == 200
    assert answer.json() == httpx.get(f"{library.url}/fragrance/7").json()


@pytest.mark.parametrize("fragrance_id", ["abc", "1.5", "99999999999", "%00", "7%20x"])
def test_an_id_the_database_cannot_read_as_an_integer_is_an_empty_object(
    library: Service, fragrance_id: str
) -> None:
    """The real service swallows the database's error and answers what it started from: {}.

    The stand-in answered 404 to ``/fragrance/abc`` and ``/fragrance/-1``, and
    null to an id past the integer column, which the real service never does.
    """
    answer = httpx.get(f"{library.url}/fragrance/{fragrance_id}")
    assert (answer.status_code, answer.json()) == (200, {})
    assert httpx.get(f"{library.url}/fragrance/7").status_code == 200  # nothing left broken


@pytest.mark.parametrize(
    "path",
    ["/fragrance/", "/fragrance/7/x", "/fragrances/7", "/docs", "/fragrances/", "/fragrance/7/"],
)
def test_paths_the_real_service_does_not_route_are_not_found(library: Service, path: str) -> None:
    """A slash added is not found either: the stand-in redirected it (307) to the route."""
    assert httpx.get(library.url + path).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "title"),
    [
        ("GET", "/nope", 404, "Not Found"),
        ("GET", "/fragrances/", 404, "Not Found"),
        ("POST", "/fragrances", 405, "Method Not Allowed"),
        ("GET", "/curation", 405, "Method Not Allowed"),
    ],
)
def test_a_path_or_method_not_routed_gets_flasks_html_page(
    library: Service, method: str, path: str, status: int, title: str
) -> None:
    """The real service's errors are Flask's HTML pages; the stand-in sent JSON ``{"detail"}``."""
    answer = httpx.request(method, library.url + path)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<title>{status} {title}</title>" in answer.text
    if status == 405:
        assert "allow" in answer.headers


@pytest.mark.parametrize(
    ("cost", "served"),
    [
        (Decimal("12"), 12),
        (Decimal("12.9"), 12),
        (Decimal("0.999"), 0),
        (Decimal("-3.7"), -3),
        (Decimal("1E+3"), 1000),
        (Decimal("100.00"), 100),
        (Decimal("123456789012345678901234567890.5"), 123456789012345678901234567890),
    ],
)
def test_cost_is_truncated_as_python_int_does(
    library: Service, owner: psycopg.Connection, cost: Decimal, served: int
) -> None:
    with cost_set(owner, 11, cost):
        one = httpx.get(library.url + "/fragrance/11").json()
        every = httpx.get(library.url + "/fragrances", timeout=30).json()["data"]
    assert one["cost"] == served == int(cost)
    assert type(one["cost"]) is int
    assert every[11] == one


@pytest.mark.parametrize("cost", [None, Decimal("NaN"), Decimal("Infinity")])
@pytest.mark.parametrize("path", ["/fragrance/13", "/fragrances"])
def test_a_cost_int_cannot_take_fails_as_the_real_service_would_naming_the_fragrance(
    library: Service, owner: psycopg.Connection, cost: Decimal | None, path: str
) -> None:
    with cost_set(owner, 13, cost):
        answer = httpx.get(library.url + path, timeout=30)
    assert answer.status_code == 500
    assert answer.text.startswith("fragrance 13 has cost ")
    assert "give it a numeric cost" in answer.text
    assert httpx.get(library.url + "/fragrance/14").status_code == 200  # the others still serve


def test_it_connects_as_the_read_only_login(library: Service, owner: psycopg.Connection) -> None:
    httpx.get(library.url + "/fragrance/1")
    users = owner.execute(
        "select usename from pg_stat_activity where application_name = 'smart-library-stand-in'"
    ).fetchall()
    assert users and set(users) == {("smart_library_login",)}


def test_without_its_database_it_still_answers_and_says_what_is_wrong(tmp_path: Path) -> None:
    closed = free_port()
    running = start_smart_library(
        f"postgresql://smart_library_login@127.0.0.1:{closed}/fragrancedb",
        tmp_path,
        DB_TIMEOUT="0.5",
    )
    try:
        assert httpx.get(running.url + "/").status_code == 200
        answer = httpx.get(running.url + "/fragrances", timeout=30)
    finally:
        stop_service(running)
    assert answer.status_code == 503
    assert "the smart library's database does not answer" in answer.text
    assert "DATABASE_URL" in answer.text


def test_without_its_grant_it_says_to_apply_the_migrations(
    server: Server, bare_dbname: str, tmp_path: Path
) -> None:
    running = start_smart_library(server.url(bare_dbname, user="smart_library_login"), tmp_path)
    try:
        answer = httpx.get(running.url + "/fragrances", timeout=30)
    finally:
        stop_service(running)
    assert answer.status_code == 500
    assert "apply the migrations" in answer.text


def test_it_stops_cleanly_on_sigterm(server: Server, dbname: str, tmp_path: Path) -> None:
    running = start_smart_library(server.url(dbname, user="smart_library_login"), tmp_path)
    stop_service(running)
    assert running.process.returncode == 0


# Settings


def test_settings_default_to_the_real_port_and_the_read_only_login() -> None:
    settings = Settings.from_env({})
    assert (settings.port, settings.host) == (9099, "127.0.0.1")
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert DEFAULT_DATABASE_URL.startswith("postgresql://smart_library_login@")


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@h:1/db",
            "HOST": "0.0.0.0",
            "PORT": "8001",
            "DB_TIMEOUT": "0.5",
            "DB_POOL_MAX_SIZE": "2",
            "LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.database_url == "postgresql://u@h:1/db"
    assert (settings.host, settings.port, settings.database_timeout) == ("0.0.0.0", 8001, 0.5)
    assert (settings.pool_max_size, settings.log_level) == (2, "debug")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "ninety"}, "PORT must be a whole number"),
        ({"PORT": "0"}, "PORT must be at least 1"),
        ({"DB_TIMEOUT": "soon"}, "DB_TIMEOUT must be a number"),
        ({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"}, "must not exceed"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be debug, info, warning or error, got 'loud'"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_a_bad_setting_stops_the_program_with_status_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smart_library"],
        cwd=ROOT,
        env={**os.environ, "PORT": "ninety"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "smart_library: bad setting: PORT must be a whole number" in done.stderr


def test_a_flood_of_invalid_requests_writes_a_few_lines_not_one_each(
    server: Server, shared_dbname: str, tmp_path: Path
) -> None:
    """As the hook's (tests/test_overload.py): uvicorn wrote a line per refused request."""
    library = start_smart_library(server.url(shared_dbname, "smart_library_login"), tmp_path)
    try:
        port = int(library.url.rsplit(":", 1)[1])
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GARBAGE\r\n\r\n")
                sock.settimeout(5)
                assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    finally:
        stop_service(library)
    assert 1 <= library.output().count("Invalid HTTP request received.") <= 2
