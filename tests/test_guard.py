"""Who may deliver: path token, network allowlist and rate limit, before the database."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import Server
from processes import Hook, start_hook, stop_hook

from hook.guard import DeliveryGuard, TokenBuckets
from hook.settings import Settings, SettingsError

TOKEN = "s3cret-token-0123456789"


class Recorder:
    """An inner ASGI app that records the paths it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _post(
    paths: list[str], client: str = "127.0.0.1", **options: Any
) -> tuple[list[int], Recorder]:
    """POST to each path through a guard in front of a recorder; return the statuses."""
    inner = Recorder()
    settings = {"token": "", "networks": (), "rate": 0.0, "burst": 1, **options}
    app = DeliveryGuard(inner, **settings)

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=(client, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://hook") as http:
            return [(await http.post(path, content=b"{}")).status_code for path in paths]

    return asyncio.run(run()), inner


@pytest.mark.parametrize(
    ("path", "status", "forwarded"),
    [
        (f"/notifications/{TOKEN}", 202, ["/notifications"]),
        ("/notifications", 404, []),
        ("/notifications/", 404, []),
        ("/notifications/wrong-token-0123456789", 404, []),
        (f"/notifications/{TOKEN}x", 404, []),
        (f"/notifications/{TOKEN[:-1]}", 404, []),
        ("/healthz", 202, ["/healthz"]),
    ],
)
def test_with_a_token_only_the_secret_path_reaches_the_app(
    path: str, status: int, forwarded: list[str]
) -> None:
    statuses, inner = _post([path], token=TOKEN)
    assert (statuses, inner.paths) == ([status], forwarded)


@pytest.mark.parametrize(
    ("client", "status"),
    [("10.1.2.3", 202), ("192.168.0.1", 403), ("2001:db8::1", 202), ("not-an-ip", 403)],
)
def test_the_allowlist_admits_only_its_networks(client: str, status: int) -> None:
    networks = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    statuses, _ = _post(["/notifications"], client=client, networks=networks)
    assert statuses == [status]


def test_over_the_rate_limit_a_client_gets_429_and_the_app_is_not_called() -> None:
    statuses, inner = _post(["/notifications"] * 3, rate=0.001, burst=2)
    assert statuses == [202, 202, 429]
    assert len(inner.paths) == 2


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert buckets.take("b", now=0.0)  # another client has its own bucket
    assert buckets.take("a", now=1.0)
    assert not buckets.take("a", now=1.0)
    assert [buckets.take("a", now=100.0) for _ in range(3)] == [True, True, False]


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
    running = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, NOTIFY_TOKEN=TOKEN)
    yield running
    stop_hook(running)


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
