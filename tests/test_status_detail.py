"""What /status shows of deliveries' contents, and to whom (ADR 0030).

The hook's port must be reachable by the CMS, and anyone who reaches it may
load the page. Bodies, the sentences of rejects and findings (which quote
values) and unknown fields' names are shown only to clients from
STATUS_DETAIL_FROM, their address read as the delivery guard reads it;
everyone else gets counts and figures. Each test plants distinctive values
and looks for every byte of them in the HTML a real running hook answers.

A client outside the networks is a real one: it connects from 127.0.0.2
(Linux routes all of 127.0.0.0/8 to loopback) to a hook that shows the
detail to 127.0.0.1 alone.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import ROOT, Server
from inprocess import hook_client
from processes import Hook, free_port, start_hook, stop_hook

from hook.status import render

#: Values planted in what the page could show, each in one place only.
BODY_VALUE = "amberwood-4471"  # an applied delivery's body
REJECTED_VALUE = "-4471.25"  # a rejected cost, quoted by its reason and in its body
NOT_JSON_VALUE = "tonkabean-4471"  # a body that is not JSON, quoted as its bad token
UNKNOWN_FIELD = "vetiver_4471"  # a field the rules do not know
FINDING_VALUE = "oudh-4471"  # a catalog value breaking a rule, quoted by its finding
PLANTED = (BODY_VALUE, REJECTED_VALUE, NOT_JSON_VALUE, UNKNOWN_FIELD, FINDING_VALUE)

COUNTS_ONLY = "Counts and figures only"
INSIDE = "127.0.0.1"
OUTSIDE = "127.0.0.2"


@pytest.fixture(scope="module")
def planted_db(server: Server, shared_dbname: str) -> str:
    """The module's database with each planted value where the page can show it."""
    bodies = (
        b'{"fragrance_id": 7, "description": "Planted %s"}' % BODY_VALUE.encode(),
        b'{"fragrance_id": 8, "cost": %s}' % REJECTED_VALUE.encode(),
        NOT_JSON_VALUE.encode(),
        b'{"fragrance_id": 9, "%s": 1}' % UNKNOWN_FIELD.encode(),
    )
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        for body in bodies:
            conn.execute("insert into sync.inbox (body) values (%s)", [body])
        conn.execute("select sync.apply_pending(100)")
        # A hand edit the rules judge at rest: description.untrimmed quotes the value.
        conn.execute(
            "update public.fragrances set description = %s where fragrance_id = 1",
            [f" Planted {FINDING_VALUE} "],
        )
    return shared_dbname


def _hook(server: Server, dbname: str, tmp_path: Path, **env: str) -> Iterator[Hook]:
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, **env)
    yield hook
    stop_hook(hook)


@pytest.fixture(scope="module")
def narrow(
    server: Server, planted_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hook]:
    """A hook that shows the detail to 127.0.0.1 alone, with no proxy named."""
    yield from _hook(
        server, planted_db, tmp_path_factory.mktemp("narrow"), STATUS_DETAIL_FROM="127.0.0.1/32"
    )


@pytest.fixture(scope="module")
def proxied(
    server: Server, planted_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hook]:
    """A hook behind a proxy at 127.0.0.1 that shows the detail to 10.0.0.0/8."""
    yield from _hook(
        server,
        planted_db,
        tmp_path_factory.mktemp("proxied"),
        STATUS_DETAIL_FROM="10.0.0.0/8",
        TRUSTED_PROXIES="127.0.0.1",
    )


@pytest.fixture(scope="module")
def default(
    server: Server, planted_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hook]:
    """A hook with the defaults, as make run starts it."""
    yield from _hook(server, planted_db, tmp_path_factory.mktemp("default"))


def get(hook: Hook, path: str, source: str = INSIDE, **headers: str) -> httpx.Response:
    """GET ``path`` from a client connecting from ``source`` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        answer = client.get(hook.url + path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def shown(page: str) -> list[str]:
    """The planted values found anywhere in ``page``, its markup included."""
    return [value for value in PLANTED if value in page]


def test_the_planted_values_are_where_the_page_shows_them(planted_db: str, server: Server) -> None:
    """A guard for the tests below: the report carries every planted value."""
    with psycopg.connect(server.url(planted_db)) as conn:
        report = str(conn.execute("select sync.status_report(3, 10)").fetchone())
    assert shown(report) == list(PLANTED)


def test_a_client_inside_the_networks_sees_what_deliveries_carried(narrow: Hook) -> None:
    page = get(narrow, "/status", INSIDE).text
    assert shown(page) == list(PLANTED)
    assert COUNTS_ONLY not in page
    assert "its address is in the hook's <code>STATUS_DETAIL_FROM</code>" in page


def test_a_client_outside_the_networks_sees_counts_and_no_byte_of_what_deliveries_carried(
    narrow: Hook,
) -> None:
    page = get(narrow, "/status", OUTSIDE).text
    assert shown(page) == []
    # The same page otherwise: the figures, the codes, the ids, and where the detail is.
    for figure in ("Latest deliveries", "cost.negative", "body.not_json", "field.unknown"):
        assert figure in page
    assert "description.untrimmed" in page
    assert "<dt>Unknown CMS fields</dt><dd>1<small>" in page
    assert COUNTS_ONLY in page and "<code>STATUS_DETAIL_FROM</code>" in page
    # No part of a body, however short: no body cell at all.
    assert 'class="body"' not in page


def test_the_other_public_routes_show_no_planted_value_to_anyone(narrow: Hook) -> None:
    """/healthz, /metrics and the API docs show counts and shapes, to a client outside too."""
    for source in (OUTSIDE, INSIDE):
        for path in ("/healthz", "/metrics", "/docs", "/redoc", "/openapi.json"):
            assert shown(get(narrow, path, source).text) == [], (source, path)


def test_a_forwarded_for_from_a_peer_outside_does_not_grant_the_detail(narrow: Hook) -> None:
    page = get(narrow, "/status", OUTSIDE, **{"X-Forwarded-For": INSIDE}).text
    assert shown(page) == [] and COUNTS_ONLY in page


def test_a_forwarded_for_from_a_peer_not_in_trusted_proxies_does_not_grant_the_detail(
    proxied: Hook,
) -> None:
    page = get(proxied, "/status", OUTSIDE, **{"X-Forwarded-For": "10.1.2.3"}).text
    assert shown(page) == [] and COUNTS_ONLY in page


def test_a_trusted_proxys_forwarded_address_is_the_client_judged(proxied: Hook) -> None:
    inside = get(proxied, "/status", INSIDE, **{"X-Forwarded-For": "10.1.2.3"}).text
    outside = get(proxied, "/status", INSIDE, **{"X-Forwarded-For": "203.0.113.9"}).text
    own = get(proxied, "/status", INSIDE).text  # the proxy itself is not in 10.0.0.0/8
    assert shown(inside) == list(PLANTED)
    assert (shown(outside), COUNTS_ONLY in outside) == ([], True)
    assert (shown(own), COUNTS_ONLY in own) == ([], True)


def test_by_default_this_host_sees_the_detail(default: Hook) -> None:
    """What `make run` starts, and a browser on the hook's host, sees everything."""
    assert shown(get(default, "/status", INSIDE).text) == list(PLANTED)


@pytest.mark.parametrize(
    "header",
    [{"X-Forwarded-For": INSIDE}, {"Forwarded": "for=127.0.0.1"}],
    ids=["X-Forwarded-For", "Forwarded"],
)
def test_a_request_through_a_proxy_the_hook_was_not_told_of_gets_counts_only(
    default: Hook, header: dict[str, str]
) -> None:
    """A proxy on a private network would give every client behind it its own address."""
    page = get(default, "/status", INSIDE, **header).text
    assert shown(page) == [] and COUNTS_ONLY in page


def test_with_none_no_client_sees_the_detail_and_the_page_says_so(
    server: Server, planted_db: str, tmp_path: Path
) -> None:
    hook = start_hook(
        server.url(planted_db, user="sync_hook_login"), tmp_path, STATUS_DETAIL_FROM="none"
    )
    try:
        page = get(hook, "/status", INSIDE).text
    finally:
        stop_hook(hook)
    assert shown(page) == []
    assert "is shown to no client of this page (<code>STATUS_DETAIL_FROM=none</code>)" in page


def test_each_page_is_rendered_once_per_report_however_clients_alternate(
    server: Server, planted_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pages per report, not one per load: rendering per load took a worker from deliveries."""
    renders: list[tuple[int, bool]] = []

    def counting_render(*args: Any, **kwargs: Any) -> str:
        renders.append((id(args[0]), kwargs["detail"]))
        return render(*args, **kwargs)

    monkeypatch.setattr("hook.status.render", counting_render)

    async def load_twenty() -> list[bool]:
        url = server.url(planted_db, user="sync_hook_login")
        async with hook_client(url, tmp_path) as http:
            pages = [
                (
                    await http.get(
                        "/status", headers={"x-forwarded-for": "10.1.2.3"} if i % 2 else {}
                    )
                )
                for i in range(20)
            ]
        return [COUNTS_ONLY in page.text for page in pages]

    assert asyncio.run(load_twenty()) == [False, True] * 10
    assert {detail for _, detail in renders} == {True, False}
    assert len(renders) == len(set(renders))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("10.0.0.0/8, monitoring", "STATUS_DETAIL_FROM holds 'monitoring', which is not an"),
        ("10.0.0.0/33", "STATUS_DETAIL_FROM holds '10.0.0.0/33', which is not an"),
        ("none, 10.0.0.0/8", "STATUS_DETAIL_FROM holds 'none', which is not an"),
        (",", "STATUS_DETAIL_FROM names no network"),
    ],
)
def test_a_malformed_setting_stops_the_hook_at_start_saying_why(value: str, says: str) -> None:
    # A database and a port nobody uses, should it start after all.
    nowhere = f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/none"
    done = subprocess.run(
        [sys.executable, "-m", "hook"],
        cwd=ROOT,
        env={
            **os.environ,
            "STATUS_DETAIL_FROM": value,
            "DATABASE_URL": nowhere,
            "PORT": str(free_port()),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"hook: bad setting: {says}" in done.stderr
