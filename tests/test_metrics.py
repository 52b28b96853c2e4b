"""GET /metrics: Prometheus text a scraper can parse, with bounded labels, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import opentelemetry._logs
import opentelemetry.metrics
import opentelemetry.trace
import psycopg
import pytest
from conftest import Server
from helpers import body, settled
from inprocess import hook_client
from processes import Hook, free_port, start_hook, stop_hook, worker_pids
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb

from hook.metrics import KNOWN_CODES, HookMetrics, _route, code_label

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(hook: Hook) -> Samples:
    """Every sample of one scrape, keyed by name and labels."""
    answer = httpx.get(hook.url + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def _post(hook: Hook, data: bytes) -> int:
    return httpx.post(hook.url + "/notifications", content=data, timeout=10).status_code


@pytest.fixture(scope="module")
def hook(
    server: Server, shared_dbname: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hook]:
    """One hook for the module: each test compares two scrapes, so counts add up safely."""
    running = start_hook(
        server.url(shared_dbname, user="sync_hook_login"),
        tmp_path_factory.mktemp("hook"),
        MAX_BODY_BYTES="4096",
    )
    yield running
    stop_hook(running)


def _growth(before: Samples, after: Samples, name: str, label: str) -> dict[str, float]:
    """How much each labelled series of one metric grew between two scrapes."""
    return {
        dict(labels)[label]: value - before.get((metric, labels), 0)
        for (metric, labels), value in after.items()
        if metric == name
    }


def _settled_growth(
    hook: Hook, before: Samples, name: str, label: str, expected: dict[str, float]
) -> dict[str, float]:
    """The growth of one metric once the merger has applied what was posted (or after 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        grown = _growth(before, scrape(hook), name, label)
        if {k: v for k, v in grown.items() if v} == expected or time.monotonic() > deadline:
            return grown
        time.sleep(0.05)


def test_deliveries_are_counted_by_answer(hook: Hook) -> None:
    before = scrape(hook)
    assert _post(hook, body({"fragrance_id": 7, "cost": 5})) == 202
    assert _post(hook, body({"fragrance_id": 7, "cost": -1})) == 202
    assert _post(hook, b"x" * 5000) == 413
    grown = _growth(before, scrape(hook), "fragrance_sync_deliveries_total", "status")
    assert grown == {
        "applied": 0,
        "ignored": 0,
        "rejected": 0,
        "pending": 2,
        "spooled": 0,
        "cut_short": 0,
        "not_found": 0,
        "too_large": 1,
        "headers_too_large": 0,
        "too_many_connections": 0,
        "bad_request": 0,
        "too_slow": 0,
        "unavailable": 0,
        "error": 0,
        "forbidden": 0,
        "rate_limited": 0,
    }


def test_a_delivery_cut_short_by_its_sender_is_counted(hook: Hook) -> None:
    """Not stored, and the CMS never sends it again: a change lost on the wire, counted."""
    before = scrape(hook)
    url = httpx.URL(hook.url)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
            b'{"fragrance_id": 7, '
        )
    grown = _settled_growth(
        hook, before, "fragrance_sync_deliveries_total", "status", {"cut_short": 1}
    )
    assert {status: n for status, n in grown.items() if n} == {"cut_short": 1}


@pytest.fixture
def h11_hook(server: Server, dbname: str, tmp_path: Path) -> Iterator[Hook]:
    """A hook on h11, uvicorn's other parser (``hook`` runs httptools, auto's choice).

    On a database of its own: its merger would apply what the module's hook stores,
    and count the outcomes the module's hook is asked for.
    """
    running = start_hook(
        server.url(dbname, user="sync_hook_login"),
        tmp_path,
        MAX_BODY_BYTES="4096",
        HTTP_PARSER="h11",
        EVENT_LOOP="asyncio",
    )
    yield running
    stop_hook(running)


_DELIVERY = body({"fragrance_id": 7, "cost": 5})


#: Requests the HTTP parser answers 400 (hook/connections.py), each a change lost: once
#: counted nowhere (a fragment, two framings, two Hosts), or as a sender that left
#: (cut_short: the body's framing broken mid-body, while the app read it).
UNREADABLE = {
    "a fragment": b"POST /notifications#x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Length: %d\r\n\r\n%s",
    "two framings": b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s",
    "two hosts": b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Length: %d\r\n\r\n%s",
    "a bad chunk line mid-body": b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\nzz\r\n",
}


@pytest.mark.parametrize("parser", ["httptools", "h11"])
@pytest.mark.parametrize("unreadable", list(UNREADABLE))
def test_a_request_the_parser_refuses_400_is_counted_as_bad_request_and_logged(
    request: pytest.FixtureRequest, unreadable: str, parser: str
) -> None:
    """The parser's 400 is a refusal like the 431: counted, and logged with the client and why."""
    hook: Hook = request.getfixturevalue("hook" if parser == "httptools" else "h11_hook")
    before = scrape(hook)
    url = httpx.URL(hook.url)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(UNREADABLE[unreadable] % (len(_DELIVERY), _DELIVERY))
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 400 ")
    grown = _settled_growth(
        hook, before, "fragrance_sync_deliveries_total", "status", {"bad_request": 1}
    )
    assert {status: n for status, n in grown.items() if n} == {"bad_request": 1}
    assert "answered 400 to a request from 127.0.0.1" in hook.output()


#: Requests answered 431 below the app, each a change lost (the CMS never sends a refused
#: change again): each once counted nowhere, or as a sender that left (cut_short).
TOO_LARGE = {
    # Written before any route: no middleware saw it.
    "headers": b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000,
    # Refused while the app read the body: not a sender that left.
    "trailer fields": b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-T: %s\r\n\r\n"
    % (len(_DELIVERY), _DELIVERY, b"t" * 1_000_000),
}


@pytest.mark.parametrize("parser", ["httptools", "h11"])
@pytest.mark.parametrize("refused", list(TOO_LARGE))
def test_a_request_refused_431_is_counted_as_headers_too_large(
    request: pytest.FixtureRequest, refused: str, parser: str
) -> None:
    """A 431 is counted like a 413: one counted, the other not, left an operator blind to it."""
    hook: Hook = request.getfixturevalue("hook" if parser == "httptools" else "h11_hook")
    before = scrape(hook)
    url = httpx.URL(hook.url)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(TOO_LARGE[refused])
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 431 ")
    grown = _settled_growth(
        hook, before, "fragrance_sync_deliveries_total", "status", {"headers_too_large": 1}
    )
    assert {status: n for status, n in grown.items() if n} == {"headers_too_large": 1}


def test_applied_deliveries_are_counted_by_outcome(hook: Hook) -> None:
    before = scrape(hook)
    assert _post(hook, body({"fragrance_id": 7, "cost": 6})) == 202
    assert _post(hook, body({"fragrance_id": 7, "cost": -1})) == 202
    expected = {"applied": 1, "rejected": 1}
    grown = _settled_growth(hook, before, "fragrance_sync_outcomes_total", "status", expected)
    assert grown == {"applied": 1, "ignored": 0, "rejected": 1}


def test_rejects_are_counted_by_reason_code(hook: Hook) -> None:
    before = scrape(hook)
    _post(hook, body({"fragrance_id": 7, "cost": -1, "name": " "}))
    _post(hook, body({"fragrance_id": 8, "cost": -2}))
    _post(hook, body({"fragrance_id": 8, "cost": 2, "colour": "red"}))
    expected = {"cost.negative": 2, "name.blank": 1}
    grown = _settled_growth(hook, before, "fragrance_sync_rejects_total", "code", expected)
    assert {code: n for code, n in grown.items() if n} == expected


def test_latency_and_body_size_are_histograms(hook: Hook) -> None:
    data = body({"fragrance_id": 7, "cost": 5})
    before = scrape(hook)
    _post(hook, data)
    _post(hook, data)
    after = scrape(hook)
    route = frozenset({("route", "/notifications")})

    def grew(name: str, labels: frozenset[tuple[str, str]] = frozenset()) -> float:
        return after[(name, labels)] - before.get((name, labels), 0)

    assert grew("fragrance_sync_request_duration_seconds_count", route) == 2
    assert grew("fragrance_sync_request_duration_seconds_sum", route) > 0
    assert grew("fragrance_sync_delivery_body_bytes_count") == 2
    assert grew("fragrance_sync_delivery_body_bytes_sum") == 2 * len(data)


def test_backlog_health_and_silence_come_from_the_database(
    hook: Hook, server: Server, shared_dbname: str
) -> None:
    answer = httpx.post(hook.url + "/notifications", content=body({"fragrance_id": 7, "cost": -1}))
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        # Judged first: the merger applies it just after the answer, and a scrape in between
        # counted it pending (2 of 3 runs here).
        assert settled(conn, answer.json()["inbox_id"])["status"] == "rejected"
        samples = scrape(hook)
        verdict, quarantined = conn.execute(
            "select verdict, quarantined from sync.health"
        ).fetchone()
    assert samples[("fragrance_sync_database_up", frozenset())] == 1
    assert samples[("fragrance_sync_database_writable", frozenset())] == 1
    assert samples[("fragrance_sync_pending_deliveries", frozenset())] == 0
    assert samples[("fragrance_sync_quarantined_deliveries", frozenset())] == quarantined > 0
    assert samples[("fragrance_sync_last_delivery_age_seconds", frozenset())] >= 0
    assert samples[("fragrance_sync_last_delivery_timestamp_seconds", frozenset())] > 1.7e9
    verdicts = {
        dict(labels)["verdict"]: value
        for (name, labels), value in samples.items()
        if name == "fragrance_sync_health"
    }
    assert verdicts == {v: (1 if v == verdict else 0) for v in ("ok", "warn", "critical")}


def test_a_stalled_merger_shows_as_the_age_of_the_oldest_pending_delivery(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """Deliveries stored but never applied: the library goes stale while the hook answers 202.

    The merger here fails every call (a release that lost the hook's grant on
    sync.apply_received); a merger task that died looks the same from the
    database. The pending count only creeps up, the age says how stale.
    """
    db.execute("revoke execute on function sync.apply_received from sync_hook")
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        idle = scrape(hook)
        # One stored ten minutes ago and never applied, one received now.
        db.execute(
            "insert into sync.inbox (received_at, body, content_type)"
            " values (now() - interval '10 minutes', %s, 'application/json')",
            [body({"fragrance_id": 7, "cost": 5})],
        )
        assert _post(hook, body({"fragrance_id": 8, "cost": 6})) == 202
        stalled = scrape(hook)
    finally:
        stop_hook(hook)
    assert idle[("fragrance_sync_oldest_pending_age_seconds", frozenset())] == 0
    assert stalled[("fragrance_sync_pending_deliveries", frozenset())] == 2
    age = stalled[("fragrance_sync_oldest_pending_age_seconds", frozenset())]
    assert 600 <= age < 660, age


def test_the_last_drift_checks_differences_and_the_snapshots_age_are_exported(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """A drift check that found lost changes gave no number an alert could read."""
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        never = scrape(hook)
        rows = db.execute("select jsonb_agg(f) from public.fragrances as f").fetchone()[0]  # type: ignore[index]
        rows[0]["cost"] = 999
        db.execute(
            "select sync.load_snapshot(%s::jsonb, 'cms.json', now() - interval '1 hour')",
            [Jsonb(rows)],
        )
        db.execute("select sync.run_job('check_drift')")
        checked = scrape(hook)
    finally:
        stop_hook(hook)
    names = ("drift_differences", "drift_check_age_seconds", "snapshot_age_seconds")
    assert not [n for n in names if (f"fragrance_sync_{n}", frozenset()) in never]
    assert checked[("fragrance_sync_drift_differences", frozenset())] == 1
    assert checked[("fragrance_sync_drift_check_age_seconds", frozenset())] >= 0
    assert checked[("fragrance_sync_snapshot_age_seconds", frozenset())] >= 3600


def _serving_worker(hook: Hook, conn: http.client.HTTPConnection) -> int:
    """The worker process that holds the hook's end of a client's connection (/proc)."""
    hook_port = int(hook.url.rsplit(":", 1)[1])
    client_port = conn.sock.getsockname()[1]
    inodes = {
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())
        and int(fields[1].split(":")[1], 16) == hook_port
        and int(fields[2].split(":")[1], 16) == client_port
    }
    for pid in worker_pids(hook):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in {f"socket:[{inode}]" for inode in inodes}:
                    return pid
    pytest.fail(f"no worker holds the connection from port {client_port}")


def _one_connection_per_worker(hook: Hook) -> list[http.client.HTTPConnection]:
    """Kept-alive connections, one served by each worker (which one accepts is the kernel's)."""
    url = httpx.URL(hook.url)
    workers = set(worker_pids(hook))
    found: dict[int, http.client.HTTPConnection] = {}
    for _ in range(200):
        conn = http.client.HTTPConnection(url.host, url.port, timeout=10)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        worker = _serving_worker(hook, conn)
        if worker in found:
            conn.close()
        else:
            found[worker] = conn
        if set(found) == workers:
            return list(found.values())
    pytest.fail(f"200 connections reached only workers {sorted(found)} of {sorted(workers)}")


def _scrape_on(conn: http.client.HTTPConnection) -> Samples:
    conn.request("GET", "/metrics")
    answer = conn.getresponse()
    assert answer.status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.read().decode())
        for s in family.samples
    }


def test_counters_never_go_down_between_scrapes_of_two_workers(
    server: Server, dbname: str, tmp_path: Path
) -> None:
    """With WORKERS=2 each worker exported its own counters, and a scrape reached either.

    Prometheus read each drop as a counter reset: rate() and increase() counted
    the whole of the other worker's count again at every switch. Deliveries go
    3 through one worker and 1 through the other; the scrapes alternate
    between them, and every counter must only grow, and sum both workers.
    """
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, WORKERS="2")
    try:
        first, second = _one_connection_per_worker(hook)
        for conn, deliveries in ((first, 3), (second, 1)):
            for n in range(deliveries):
                conn.request("POST", "/notifications", body({"fragrance_id": n, "cost": 5}))
                answer = conn.getresponse()
                answer.read()
                assert answer.status == 202
        scrapes = [_scrape_on(conn) for conn in (first, second, first, second)]
    finally:
        stop_hook(hook)
    counted = ("_total", "_count", "_sum", "_bucket")
    for earlier, later in itertools.pairwise(scrapes):
        went_down = {
            key: (value, later.get(key, 0))
            for key, value in earlier.items()
            if key[0].endswith(counted) and later.get(key, 0) < value
        }
        assert not went_down, went_down
    pending = ("fragrance_sync_deliveries_total", frozenset({("status", "pending")}))
    assert [scrape[pending] for scrape in scrapes] == [4, 4, 4, 4]


def test_the_spool_depth_is_exported_as_zero_since_there_is_no_spool(hook: Hook) -> None:
    assert scrape(hook)[("fragrance_sync_spool_depth", frozenset())] == 0


def test_every_label_value_comes_from_a_fixed_list(
    hook: Hook, server: Server, shared_dbname: str
) -> None:
    """What a sender chooses (paths, a token guessed in one, bodies) never becomes a label."""
    hostile = [
        httpx.post(hook.url + "/notifications", content=data, timeout=10)
        for data in (
            body({"fragrance_id": 7, "name": "<script>alert(1)</script>", "cost": -1}),
            b"\xff not json",
        )
    ]
    # Paths: each request is timed under its route label.
    assert httpx.get(hook.url + "/wp-login.php?<b>", timeout=10).status_code == 404
    guessed = httpx.post(hook.url + "/notifications/guessed-<b>-token", content=b"{}", timeout=10)
    assert guessed.status_code == 404
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        for answer in hostile:  # judged: their reason codes are counted
            assert settled(conn, answer.json()["inbox_id"])["status"] == "rejected"
    allowed = {
        "status": {
            "applied",
            "ignored",
            "rejected",
            "pending",
            "spooled",
            "cut_short",
            "not_found",
            "forbidden",
            "too_large",
            "headers_too_large",
            "too_many_connections",
            "bad_request",
            "too_slow",
            "rate_limited",
            "unavailable",
            "error",
        },
        "code": KNOWN_CODES | {"other"},
        "rule": KNOWN_CODES | {"other"},
        "route": {"/notifications", "/metrics", "/status", "/healthz", "other"},
        "verdict": {"ok", "warn", "critical"},
        "outcome": {"accepted", "refused", "unreachable"},
        "le": None,
    }
    for _name, labels in scrape(hook):
        for label, value in labels:
            assert allowed[label] is None or value in allowed[label], (label, value)


@pytest.mark.parametrize(
    ("code", "label"),
    [("cost.negative", "cost.negative"), ("made.up", "other"), ("<b>", "other"), (None, "other")],
)
def test_a_reason_code_outside_the_known_list_is_counted_as_other(code: object, label: str) -> None:
    assert code_label(code) == label


def test_an_unknown_code_on_a_receipt_lands_in_other() -> None:
    metrics = HookMetrics()
    metrics.observe_outcome("rejected", [{"code": "brand.new", "severity": "error"}])
    assert metrics.registry.get_sample_value("fragrance_sync_rejects_total", {"code": "other"}) == 1


def test_a_receipt_status_outside_the_known_list_is_counted_as_other() -> None:
    """A series made on first use (not up front) still counts: the series are kept by label."""
    metrics = HookMetrics()
    metrics.observe_receipt(10, "made.up")
    metrics.observe_receipt(10, "made.up")
    metrics.observe_outcome("made.up", [])
    sample = metrics.registry.get_sample_value
    assert sample("fragrance_sync_deliveries_total", {"status": "other"}) == 2
    assert sample("fragrance_sync_outcomes_total", {"status": "other"}) == 1


def test_with_the_database_down_metrics_still_answer_and_count_the_spool(tmp_path: Path) -> None:
    down = start_hook(
        f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/none", tmp_path, DB_TIMEOUT="0.5"
    )
    try:
        assert _post(down, body({"fragrance_id": 7})) == 202  # kept in the spool
        samples = scrape(down)
    finally:
        stop_hook(down)
    assert samples[("fragrance_sync_database_up", frozenset())] == 0
    assert samples[("fragrance_sync_deliveries_total", frozenset({("status", "spooled")}))] == 1
    assert samples[("fragrance_sync_spool_depth", frozenset())] == 1
    assert ("fragrance_sync_pending_deliveries", frozenset()) not in samples
    assert ("fragrance_sync_database_writable", frozenset()) not in samples


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/notifications", "/notifications"),
        ("/notifications/s3cret-token", "/notifications"),
        ("/status", "/status"),
        ("/wp-login.php", "other"),
    ],
)
def test_a_path_becomes_a_bounded_route_label(path: str, label: str) -> None:
    assert _route(path) == label


def test_every_rule_the_database_knows_is_a_known_code(db: psycopg.Connection) -> None:
    rules = {r[0] for r in db.execute("select code from sync.rule").fetchall()}
    assert rules - KNOWN_CODES == set()


def test_open_findings_are_exported_one_series_per_catalog_rule(
    hook: Hook, server: Server, shared_dbname: str
) -> None:
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        conn.execute("select sync.check_catalog()")
        rules = {
            r[0]
            for r in conn.execute(
                "select code from sync.rule where applies_to in ('catalog', 'both')"
            ).fetchall()
        }
    series = scrape(hook)
    exported = {
        dict(labels)["rule"]: value
        for (name, labels), value in series.items()
        if name == "fragrance_sync_open_findings"
    }
    assert set(exported) == rules
    assert exported["description.untrimmed"] == 4997  # 5,000 but the 3 with C1 controls


def test_the_deliveries_help_names_every_outcome_it_counts() -> None:
    """The HELP text an operator reads in /metrics left out spooled, not_found and too_slow."""
    metrics = HookMetrics()
    [family] = [m for m in metrics.registry.collect() if m.name == "fragrance_sync_deliveries"]
    statuses = {sample.labels["status"] for sample in family.samples}
    assert statuses <= set(re.findall(r"[a-z_]+", family.documentation)), statuses


def test_a_delivery_never_asks_opentelemetry_for_its_providers(
    server: Server, dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook's metrics are Prometheus's; FastAPI's telemetry looked up OpenTelemetry per request.

    Each lookup read the environment and found no provider: about 2% of the
    hook's CPU per delivery, for nothing (py-spy on ``make bench``'s load).
    """
    asked: list[str] = []
    for module, name in (
        (opentelemetry.trace, "get_tracer_provider"),
        (opentelemetry.metrics, "get_meter_provider"),
        (opentelemetry._logs, "get_logger_provider"),
    ):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda n=name, f=real: asked.append(n) or f())

    async def deliver() -> int:
        delivery = body({"fragrance_id": 7, "cost": 12})
        async with hook_client(server.url(dbname, user="sync_hook_login"), tmp_path) as http:
            return (await http.post("/notifications", content=delivery)).status_code

    assert asyncio.run(deliver()) == 202
    assert asked == []
