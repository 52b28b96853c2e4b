"""Who may deliver: path token, network allowlist and rate limit, before the database."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from conftest import Server
from helpers import inbox_row
from inprocess import hook_client
from processes import Hook, running_hook

from hook import notifications
from hook.guard import DeliveryGuard, TokenBuckets
from hook.settings import Settings, SettingsError

TOKEN = "s3cret-token-0123456789"
BODY = b'{"fragrance_id": 7, "description": "from test_guard"}'


def _post(
    url: str, tmp_path: Path, paths: list[str], client: str = "127.0.0.1", **env: str
) -> list[httpx.Response]:
    """POST a body to each path of an in-process hook; return the answers."""

    async def run() -> list[httpx.Response]:
        async with hook_client(url, tmp_path, client, **env) as http:
            return [await http.post(path, content=BODY) for path in paths]

    return asyncio.run(run())


def stored(db: psycopg.Connection) -> int:
    """How many of this module's deliveries are in the inbox."""
    row = db.execute("select count(*) from sync.inbox where body = %s", [BODY]).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def url(server: Server, shared_dbname: str) -> str:
    return server.url(shared_dbname, user="sync_hook_login")


@pytest.fixture
def shared_db(server: Server, shared_dbname: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        conn.execute("delete from sync.inbox where body = %s", [BODY])
        yield conn


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/notifications/{TOKEN}", 202),
        (f"/notifications/{TOKEN}/", 202),
        ("/notifications", 404),
        ("/notifications/", 404),
        ("/notifications/wrong-token-0123456789", 404),
        (f"/notifications/{TOKEN}x", 404),
        (f"/notifications/{TOKEN[:-1]}", 404),
        (f"/notifications/{TOKEN}/more", 404),
    ],
)
def test_with_a_token_only_the_secret_path_stores_anything(
    url: str, shared_db: psycopg.Connection, tmp_path: Path, path: str, status: int
) -> None:
    [answer] = _post(url, tmp_path, [path], NOTIFY_TOKEN=TOKEN)
    assert (answer.status_code, stored(shared_db)) == (status, 1 if status == 202 else 0)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/notifications", 202),
        ("/notifications/", 202),
        (f"/notifications/{TOKEN}", 404),
    ],
)
def test_without_a_token_only_the_plain_path_stores_anything(
    url: str, shared_db: psycopg.Connection, tmp_path: Path, path: str, status: int
) -> None:
    [answer] = _post(url, tmp_path, [path])
    assert (answer.status_code, stored(shared_db)) == (status, 1 if status == 202 else 0)


@pytest.mark.parametrize(
    ("client", "status"),
    [
        ("10.1.2.3", 202),
        ("192.168.0.1", 403),
        ("2001:db8::1", 202),
        ("not-an-ip", 403),
        ("::ffff:10.1.2.3", 202),  # an IPv4 peer on a dual-stack socket
        ("::ffff:192.168.0.1", 403),
    ],
)
def test_the_allowlist_admits_only_its_networks(
    url: str, shared_db: psycopg.Connection, tmp_path: Path, client: str, status: int
) -> None:
    [answer] = _post(
        url, tmp_path, ["/notifications"], client, ALLOWED_NETWORKS="10.0.0.0/8,2001:db8::/32"
    )
    assert (answer.status_code, stored(shared_db)) == (status, 1 if status == 202 else 0)


def test_over_the_rate_limit_a_client_gets_429_and_nothing_is_stored(
    url: str, shared_db: psycopg.Connection, tmp_path: Path
) -> None:
    answers = _post(
        url,
        tmp_path,
        ["/notifications"] * 3,
        RATE_LIMIT_PER_SECOND="0.001",
        RATE_LIMIT_BURST="2",
    )
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].headers["retry-after"] == "1"
    assert stored(shared_db) == 2


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert buckets.take("b", now=0.0)  # another client has its own bucket
    assert buckets.take("a", now=1.0)
    assert not buckets.take("a", now=1.0)
    assert [buckets.take("a", now=100.0) for _ in range(3)] == [True, True, False]


def test_the_addresses_of_one_ipv6_network_of_64_bits_share_one_bucket() -> None:
    """One IPv6 host holds a /64: a new address per request escaped the rate limit."""
    guard = DeliveryGuard(token="", networks=(), rate=0.001, burst=1)
    answers = [guard.refuse(None, f"2001:db8::{n:x}") for n in range(1, 4)]
    assert [a and a.status for a in answers] == [None, 429, 429]
    assert guard.refuse(None, "2001:db8:0:1::1") is None  # another /64, another bucket
    assert guard.refuse(None, "192.0.2.1") is None
    assert guard.refuse(None, "192.0.2.2") is None  # IPv4: one bucket per address


def test_buckets_forget_the_oldest_clients_past_their_bound() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_clients=2)
    for client in ("a", "b", "c"):
        buckets.take(client, now=0.0)
    assert not buckets.take("c", now=0.0)
    assert buckets.take("a", now=0.0)  # forgotten, so it starts full again


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NOTIFY_TOKEN": "short"}, "NOTIFY_TOKEN must be at least 16 characters"),
        ({"NOTIFY_TOKEN": "has space in it 0123"}, "NOTIFY_TOKEN must be at least 16"),
        ({"ALLOWED_NETWORKS": "10.0.0.0/8, nonsense"}, "ALLOWED_NETWORKS holds 'nonsense'"),
        ({"ALLOWED_HOSTS": "sync.internal, http://sync"}, "ALLOWED_HOSTS holds 'http://sync'"),
        ({"ALLOWED_HOSTS": "fragrance_sync:9098"}, "ALLOWED_HOSTS holds 'fragrance_sync:9098'"),
        (
            {
                "NOTIFY_TOKEN": TOKEN,
                "CMS_URL": "http://cms:9090",
                "PUBLIC_URL": "http://fragrance_sync:9098/notifications",
            },
            "PUBLIC_URL must end with /notifications/<NOTIFY_TOKEN>",
        ),
    ],
)
def test_guard_settings_are_checked_at_start(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(environ)


@pytest.fixture
def token_hook(server: Server, dbname: str, tmp_path: Path) -> Iterator[Hook]:
    with running_hook(server, dbname, tmp_path, NOTIFY_TOKEN=TOKEN) as hook:
        yield hook


def test_a_running_hook_stores_only_deliveries_with_its_token(
    token_hook: Hook, db: psycopg.Connection
) -> None:
    wrong = httpx.post(token_hook.url + "/notifications", content=b'{"fragrance_id": 7}')
    right = httpx.post(token_hook.url + f"/notifications/{TOKEN}", content=b'{"fragrance_id": 7}')
    assert (wrong.status_code, right.status_code) == (404, 202)
    assert db.execute("select count(*) from sync.inbox").fetchone() == (1,)
    metrics = httpx.get(token_hook.url + "/metrics").text
    assert 'fragrance_sync_deliveries_total{status="not_found"} 1.0' in metrics  # counted
    assert TOKEN not in token_hook.output()


def _raw(hook: Hook, request: bytes) -> socket.socket:
    url = urlsplit(hook.url)
    assert url.hostname is not None and url.port is not None
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(request)
    return sock


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
def test_only_a_post_stores_anything_on_the_notifications_paths(
    token_hook: Hook, db: psycopg.Connection, method: str
) -> None:
    """Another method on a delivery path is 405, whatever its token: nothing stored, no oracle."""
    paths = [f"/notifications/{TOKEN}", f"/notifications/{TOKEN}/", "/notifications/wrong-token"]
    answers = {
        httpx.request(method, token_hook.url + path, content=b'{"fragrance_id": 7}').status_code
        for path in paths
    }
    assert answers == {405}
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


def test_a_refused_delivery_that_expects_100_continue_is_refused_before_its_body(
    token_hook: Hook, db: psycopg.Connection
) -> None:
    """The refusal comes first, never a 100 Continue that would invite a body to discard."""
    head = b"POST /notifications/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 19\r\n"
    expect = b"Expect: 100-continue\r\n\r\n"
    with _raw(token_hook, head % b"wrong-token-0123456789" + expect) as wrong:
        refused = wrong.recv(4096)
    with _raw(token_hook, head % TOKEN.encode() + expect) as right:
        invited = right.recv(4096)
        right.sendall(b'{"fragrance_id": 7}')
        stored = right.recv(4096)
    assert refused.startswith(b"HTTP/1.1 404 ")
    assert invited.startswith(b"HTTP/1.1 100 ")
    assert stored.startswith(b"HTTP/1.1 202 ")
    assert db.execute("select count(*) from sync.inbox").fetchone() == (1,)


def test_what_a_sender_puts_in_a_path_or_a_header_cannot_forge_a_log_line(
    server: Server, dbname: str, tmp_path: Path
) -> None:
    """A refusal's line quotes the Host with repr() and never the path, the token or a header.

    uvicorn decodes %0A in the path; the guard's lines name only the client's
    address and, without a token, the host it named, escaped.
    """
    forged = b"\r\n2026-01-01 00:00:00,000 WARNING hook: FORGED"
    requests = [
        b"POST /notifications/%0D%0AFORGED-PATH HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"POST /notifications HTTP/1.1\r\nHost: forged\x85\xe2\x80\xa8x\r\n\r\n",
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: FORGED-UA\x85\r\n"
        b"Sec-Fetch-Site: cross-site\r\nOrigin: http://FORGED-ORIGIN\r\n\r\n",
        b"GET /FORGED-PATH%0A"
        + forged.replace(b"\r\n", b"%0D%0A").replace(b" ", b"%20")
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ]
    with running_hook(server, dbname, tmp_path, ALLOWED_NETWORKS="10.0.0.0/8") as hook:
        for request in requests:
            with _raw(hook, request) as sock:
                assert sock.recv(4096).startswith(b"HTTP/1.1 4")
        said = hook.output()
    assert "FORGED-PATH" not in said and "FORGED-UA" not in said and "FORGED-ORIGIN" not in said
    # The one line that quotes what the sender wrote: its Host, escaped, on a line of its own.
    quoted = "refused a delivery sent to host 'forged\\x85â\\x80¨x', from 127.0.0.1: not in "
    lines = [line for line in said.splitlines() if "forged" in line.lower()]
    assert len(lines) == 1 and lines[0].endswith(quoted + "ALLOWED_HOSTS"), lines


# --- forwarded headers: trusted only from the proxies the operator names ----------------------

FORGED = {"x-forwarded-for": "10.9.9.9", "x-forwarded-proto": "https"}


def test_a_forged_forwarded_for_does_not_pass_the_allowlist(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    with running_hook(server, dbname, tmp_path, ALLOWED_NETWORKS="10.0.0.0/8") as hook:
        answer = httpx.post(hook.url + "/notifications", content=BODY, headers=FORGED)
    assert answer.status_code == 403
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


def test_a_rotating_forwarded_for_does_not_escape_the_rate_limit(
    server: Server, dbname: str, tmp_path: Path
) -> None:
    limits = {"RATE_LIMIT_PER_SECOND": "0.001", "RATE_LIMIT_BURST": "2"}
    with running_hook(server, dbname, tmp_path, **limits) as hook:
        statuses = [
            httpx.post(
                hook.url + "/notifications",
                content=BODY,
                headers={"x-forwarded-for": f"10.0.0.{i}"},
            ).status_code
            for i in range(4)
        ]
    assert statuses == [202, 202, 429, 429]


def test_the_stored_client_address_is_the_real_peer_whatever_the_header_says(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    with running_hook(server, dbname, tmp_path) as hook:
        answer = httpx.post(hook.url + "/notifications", content=BODY, headers=FORGED)
    row = inbox_row(db, answer.json()["inbox_id"])
    assert str(row["client_addr"]) == "127.0.0.1"


def test_from_a_trusted_proxy_the_forwarded_address_is_the_client(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    env = {"TRUSTED_PROXIES": "127.0.0.1", "ALLOWED_NETWORKS": "10.0.0.0/8"}
    with running_hook(server, dbname, tmp_path, **env) as hook:
        answer = httpx.post(hook.url + "/notifications", content=BODY, headers=FORGED)
    assert answer.status_code == 202
    assert str(inbox_row(db, answer.json()["inbox_id"])["client_addr"]) == "10.9.9.9"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("2001:DB8::1", "2001:db8::1"),
        ("not an address", None),
        ("10.1.2.3" + " " * 100, None),
    ],
)
def test_a_peer_is_judged_by_its_address_in_normal_form(host: str, address: str | None) -> None:
    assert notifications.client_address({"client": (host, 5555)}) == address


def test_only_what_could_be_an_address_is_remembered() -> None:
    """A trusted proxy's X-Forwarded-For can be any text: long ones must not fill the cache."""
    before = notifications._cached_address.cache_info().currsize
    for n in range(50):
        assert notifications.client_address({"client": (f"{n}" + "x" * 4000, 1)}) is None
    assert notifications._cached_address.cache_info().currsize == before


# --- a dual-stack socket (HOST=:: with WORKERS above 1) shows IPv4 peers as ::ffff:a.b.c.d ----

DUAL_STACK = {"HOST": "::", "WORKERS": "2"}


def test_on_a_dual_stack_socket_an_ipv4_peer_is_judged_and_stored_by_its_ipv4_address(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """The CMS at 127.0.0.1 was refused 403 by ALLOWED_NETWORKS=127.0.0.0/8: changes lost."""
    env = {**DUAL_STACK, "ALLOWED_NETWORKS": "127.0.0.0/8"}
    with running_hook(server, dbname, tmp_path, **env) as hook:
        answer = httpx.post(hook.url + "/notifications", content=BODY)
    assert answer.status_code == 202, answer.text
    assert str(inbox_row(db, answer.json()["inbox_id"])["client_addr"]) == "127.0.0.1"


def test_on_a_dual_stack_socket_an_ipv4_proxy_named_in_trusted_proxies_is_trusted(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    env = {**DUAL_STACK, "TRUSTED_PROXIES": "127.0.0.1", "ALLOWED_NETWORKS": "10.0.0.0/8"}
    with running_hook(server, dbname, tmp_path, **env) as hook:
        answer = httpx.post(hook.url + "/notifications", content=BODY, headers=FORGED)
    assert answer.status_code == 202, answer.text
    assert str(inbox_row(db, answer.json()["inbox_id"])["client_addr"]) == "10.9.9.9"


# --- a browser is not the CMS ---------------------------------------------------------------------

#: What a browser sends with a POST a web page makes (fetch with no-cors, or a form): a
#: text/plain body needs no CORS preflight, so the page need not read the answer.
FROM_A_PAGE = {
    "origin": "https://evil.example",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "empty",
    "content-type": "text/plain;charset=UTF-8",
}


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_web_page_in_a_browser_on_the_hooks_host_cannot_deliver(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, site: str
) -> None:
    """Any page a browser on the host loaded could change fragrances through 127.0.0.1."""
    change = b'{"fragrance_id": 7, "name": "Changed by a web page"}'
    with running_hook(server, dbname, tmp_path) as hook:
        answer = httpx.post(
            hook.url + "/notifications",
            content=change,
            headers={**FROM_A_PAGE, "sec-fetch-site": site},
        )
        metrics = httpx.get(hook.url + "/metrics").text
    assert answer.status_code == 403, answer.text
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)
    assert 'fragrance_sync_deliveries_total{status="forbidden"} 1.0' in metrics


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_the_hooks_own_docs_page_and_a_typed_request_still_deliver(
    url: str, shared_db: psycopg.Connection, tmp_path: Path, site: str
) -> None:
    """/docs's "Try it out" is same-origin: an operator trying the route is not refused."""

    async def run() -> httpx.Response:
        async with hook_client(url, tmp_path) as http:
            return await http.post("/notifications", content=BODY, headers={"sec-fetch-site": site})

    assert asyncio.run(run()).status_code == 202
    assert stored(shared_db) == 1


# --- a page that rebinds its own name to the hook's address (DNS rebinding) -------------------


def _post_as(
    url: str, tmp_path: Path, headers: dict[str, str], path: str = "/notifications", **env: str
) -> httpx.Response:
    """POST the module's body to an in-process hook with these headers."""

    async def run() -> httpx.Response:
        async with hook_client(url, tmp_path, **env) as http:
            return await http.post(path, content=BODY, headers=headers)

    return asyncio.run(run())


def test_a_page_that_rebinds_its_name_to_the_hooks_address_cannot_deliver(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """evil.example resolves to 127.0.0.1 a moment after its page loaded: same-origin.

    The browser then sends the page's own name as Host and says same-origin,
    so Sec-Fetch-Site let the page change fragrances through a hook on
    loopback without NOTIFY_TOKEN. Only the Host header gives it away.
    """
    with running_hook(server, dbname, tmp_path) as hook:
        port = hook.url.rsplit(":", 1)[1]
        answer = httpx.post(
            hook.url + "/notifications",
            content=b'{"fragrance_id": 7, "name": "Changed by a rebound page"}',
            headers={
                "host": f"evil.example:{port}",
                "origin": f"http://evil.example:{port}",
                "sec-fetch-site": "same-origin",
                "sec-fetch-mode": "cors",
                "content-type": "text/plain;charset=UTF-8",
            },
        )
        metrics = httpx.get(hook.url + "/metrics").text
    assert (answer.status_code, answer.json()) == (
        403,
        {"detail": "this host name is not one the hook answers deliveries to (ALLOWED_HOSTS)"},
    )
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)
    assert 'fragrance_sync_deliveries_total{status="forbidden"} 1.0' in metrics


def test_an_old_browser_without_sec_fetch_headers_cannot_deliver_from_another_sites_page(
    url: str, shared_db: psycopg.Connection, tmp_path: Path
) -> None:
    """Browsers sent Sec-Fetch-Site only from 2019 to 2023; they sent Origin with a POST before."""
    answer = _post_as(
        url, tmp_path, {"origin": "https://evil.example", "content-type": "text/plain"}
    )
    assert (answer.status_code, answer.json()["detail"]) == (403, "a web page may not deliver here")
    assert stored(shared_db) == 0


@pytest.mark.parametrize(
    ("host", "env"),
    [
        ("127.0.0.1:9098", {}),
        ("localhost:9098", {}),
        ("LocalHost.", {}),
        ("[::1]:9098", {}),
        ("10.0.0.5", {}),
        # docker-compose's CMS calls the hook by its service name.
        ("fragrance_sync:9098", {"ALLOWED_HOSTS": "fragrance_sync"}),
        (
            "sync.internal:9098",
            {
                "CMS_URL": "http://127.0.0.1:1",
                "PUBLIC_URL": "http://sync.internal:9098/notifications",
            },
        ),
        ("anything.example", {"ALLOWED_HOSTS": "*"}),
    ],
)
def test_a_program_that_names_the_hook_as_it_is_told_still_delivers(
    url: str, shared_db: psycopg.Connection, tmp_path: Path, host: str, env: dict[str, str]
) -> None:
    """An IP address, localhost, ALLOWED_HOSTS, PUBLIC_URL's host (what the CMS is told)."""
    answer = _post_as(url, tmp_path, {"host": host}, **env)
    assert answer.status_code == 202, answer.text
    assert stored(shared_db) == 1


def test_the_hooks_own_docs_page_delivers_under_any_name_it_answers_to(
    url: str, shared_db: psycopg.Connection, tmp_path: Path
) -> None:
    """/docs's "Try it out" sends Origin: the page's own origin is the hook's."""
    headers = {"host": "localhost:9098", "origin": "http://localhost:9098"}
    answer = _post_as(url, tmp_path, {**headers, "sec-fetch-site": "same-origin"})
    assert answer.status_code == 202, answer.text


def test_with_a_token_the_host_name_is_not_checked(
    url: str, shared_db: psycopg.Connection, tmp_path: Path
) -> None:
    """A page does not know the token; a CMS calling by any name keeps delivering."""
    answer = _post_as(
        url, tmp_path, {"host": "cms-facing.example"}, f"/notifications/{TOKEN}", NOTIFY_TOKEN=TOKEN
    )
    assert answer.status_code == 202, answer.text
    assert stored(shared_db) == 1
