"""The hook end to end: a real process over real HTTP against a real database."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from conftest import ROOT, Server
from helpers import (
    body,
    calls_started_after,
    fragrance,
    inbox_row,
    set_apply_on_receipt,
    settled,
)
from processes import Hook, free_port, port_held, running_hook, start_hook, stop_hook


@pytest.fixture
def hook(server: Server, dbname: str, tmp_path: Path) -> Iterator[Hook]:
    with running_hook(server, dbname, tmp_path, MAX_BODY_BYTES="4096") as running:
        yield running


def test_a_valid_delta_is_answered_202_once_stored_and_applied_right_after(
    hook: Hook, db: psycopg.Connection
) -> None:
    answer = httpx.post(
        hook.url + "/notifications",
        content=body({"fragrance_id": 7, "name": "Over HTTP", "forbidden": True}),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 202
    receipt = answer.json()
    assert (receipt["status"], receipt["reasons"]) == ("pending", [])
    row = settled(db, receipt["inbox_id"])
    assert (row["status"], row["reasons"]) == ("applied", [])
    assert fragrance(db, 7)["name"] == "Over HTTP"


def test_a_name_with_a_zero_width_space_is_quarantined_and_changes_nothing(
    hook: Hook, db: psycopg.Connection
) -> None:
    """A name and the same name with U+200B look alike: the CMS's edit is refused, whole."""
    before = fragrance(db, 7)
    answer = httpx.post(
        hook.url + "/notifications",
        content=body({"fragrance_id": 7, "name": "Rose\u200b", "cost": 99}),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 202
    row = settled(db, answer.json()["inbox_id"])
    message = (
        "name holds the invisible character U+200B at position 5;"
        " names that look alike would differ"
    )
    assert row["status"] == "rejected"
    assert row["reasons"] == [
        {
            "code": "name.invisible_character",
            "severity": "error",
            "field": "name",
            "message": message,
        }
    ]
    quarantined = db.execute(
        "select codes, messages from sync.quarantine where inbox_id = %s", [row["id"]]
    ).fetchone()
    assert quarantined == (["name.invisible_character"], message)
    assert fragrance(db, 7) == before


def test_deliveries_another_process_left_pending_are_applied_by_the_sweep(
    hook: Hook, db: psycopg.Connection
) -> None:
    """Stored by another replica, or by one that stopped before applying them."""
    [(inbox_id, status, _)] = db.execute(
        "select * from sync.store_many(%s, %s, %s, %s, %s)",
        [[body({"fragrance_id": 8, "cost": 41})], [None], [None], [None], [uuid.uuid4()]],
    ).fetchall()
    assert status == "pending"
    assert settled(db, inbox_id)["status"] == "applied"
    assert fragrance(db, 8)["cost"] == 41


def test_nothing_is_applied_while_a_dba_holds_deliveries_back(
    hook: Hook, db: psycopg.Connection
) -> None:
    set_apply_on_receipt(db, False)
    held = httpx.post(hook.url + "/notifications", content=body({"fragrance_id": 9, "cost": 5}))
    assert held.json()["status"] == "pending"
    # Answered once committed: a merge that starts from now on sees it, and has run.
    now = db.execute("select clock_timestamp()").fetchone()[0]
    calls_started_after(db, now, "apply_received", 1, "fragrance-sync-merger")
    assert inbox_row(db, held.json()["inbox_id"])["status"] == "pending"
    set_apply_on_receipt(db, True)
    assert settled(db, held.json()["inbox_id"])["status"] == "applied"
    assert fragrance(db, 9)["cost"] == 5


@pytest.mark.parametrize("path", ["/notifications/"])
def test_a_listener_registered_with_a_trailing_slash_is_served_not_redirected(
    hook: Hook, db: psycopg.Connection, path: str
) -> None:
    """The CMS does not follow redirects: a 307 would lose every change."""
    answer = httpx.post(hook.url + path, content=body({"fragrance_id": 7, "cost": 3}))
    assert answer.status_code == 202
    assert settled(db, answer.json()["inbox_id"])["status"] == "applied"
    assert fragrance(db, 7)["cost"] == 3


def test_the_notifications_routes_are_documented_with_their_answers(hook: Hook) -> None:
    schema = httpx.get(hook.url + "/openapi.json").json()
    documented = {path for path in schema["paths"] if path.startswith("/notifications")}
    assert documented == {"/notifications", "/notifications/{token}"}
    for path in documented:
        operation = schema["paths"][path]["post"]
        assert set(operation["responses"]) >= {
            "202",
            "403",
            "404",
            "408",
            "413",
            "429",
            "431",
            "503",
        }
        assert all(answer["description"] for answer in operation["responses"].values())
        receipt = operation["responses"]["202"]["content"]["application/json"]["schema"]
        assert receipt == {"$ref": "#/components/schemas/ReceiptAnswer"}
    assert httpx.get(hook.url + "/docs").status_code == 200


def test_an_invalid_delta_is_kept_answered_202_and_quarantined_with_reasons(
    hook: Hook, db: psycopg.Connection
) -> None:
    answer = httpx.post(hook.url + "/notifications", content=body({"fragrance_id": 7, "cost": -1}))
    assert answer.status_code == 202
    row = settled(db, answer.json()["inbox_id"])
    assert row["status"] == "rejected"
    assert [r["code"] for r in row["reasons"]] == ["cost.negative"]


def test_the_exact_bytes_and_request_metadata_are_stored(
    hook: Hook, db: psycopg.Connection
) -> None:
    data = b"\xff\x00not json at all"
    answer = httpx.post(
        hook.url + "/notifications",
        content=data,
        headers={"content-type": "text/plain; charset=latin1", "user-agent": "cms-test/1.0"},
    )
    assert answer.status_code == 202
    row = settled(db, answer.json()["inbox_id"])
    assert bytes(row["body"]) == data
    assert row["content_type"] == "text/plain; charset=latin1"
    assert row["user_agent"] == "cms-test/1.0"
    assert str(row["client_addr"]) == "127.0.0.1"
    assert row["status"] == "rejected"


def test_an_empty_body_is_kept_as_a_rejected_delivery(hook: Hook, db: psycopg.Connection) -> None:
    answer = httpx.post(hook.url + "/notifications", content=b"")
    assert answer.status_code == 202
    reasons = settled(db, answer.json()["inbox_id"])["reasons"]
    assert [r["code"] for r in reasons] == ["body.empty"]


def test_a_body_over_the_limit_is_refused_with_413_and_not_stored(
    hook: Hook, db: psycopg.Connection
) -> None:
    answer = httpx.post(hook.url + "/notifications", content=b"x" * 4097)
    assert answer.status_code == 413
    assert "4096" in answer.json()["detail"]
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)
    assert "refused a body over 4096 bytes" in hook.output()


def test_a_streamed_body_over_the_limit_is_refused_too(hook: Hook) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    answer = httpx.post(hook.url + "/notifications", content=chunks())
    assert answer.status_code == 413


def test_a_body_at_the_limit_is_accepted(hook: Hook) -> None:
    answer = httpx.post(hook.url + "/notifications", content=b" " * 4096)
    assert answer.status_code == 202


@pytest.mark.parametrize("path", ["/status/", "/healthz/", "/metrics/", "/docs/"])
def test_a_trailing_slash_is_not_a_redirect_to_whatever_host_the_request_named(
    hook: Hook, path: str
) -> None:
    """A 307 to http://evil.example/status: an open redirect built from the Host header."""
    answer = httpx.get(hook.url + path, headers={"host": "evil.example"})
    assert answer.status_code == 404
    assert "location" not in answer.headers


def test_healthz_reports_the_database_ok(hook: Hook) -> None:
    answer = httpx.get(hook.url + "/healthz")
    assert (answer.status_code, answer.json()) == (
        200,
        {
            "status": "ok",
            "database": "ok",
            "spool_depth": 0,
            "spool_set_aside": 0,
            "spool_damaged": 0,
        },
    )


def test_healthz_answers_head_as_uptime_monitors_ask(hook: Hook) -> None:
    """A monitor that asks with HEAD got 405 from a healthy hook, and paged."""
    answer = httpx.head(hook.url + "/healthz")
    assert (answer.status_code, answer.content) == (200, b"")


def _health_and_database_up(hook: Hook) -> tuple[int, dict, str]:
    health = httpx.get(hook.url + "/healthz", timeout=10)
    metrics = httpx.get(hook.url + "/metrics", timeout=10).text
    [up] = [line for line in metrics.splitlines() if line.startswith("fragrance_sync_database_up")]
    return health.status_code, health.json(), up


def test_healthz_says_a_database_not_migrated_yet_cannot_store_deliveries(
    server: Server, bare_dbname: str, tmp_path: Path
) -> None:
    """No schema sync: every delivery is an outage (spooled), and /healthz says why.

    Its probe was ``select 1``: it said the database was ok, while /metrics said
    database_up 0 (which pages) and every delivery went to the spool.
    """
    # As the owner: on a cluster never migrated, the hook's login does not exist either.
    hook = start_hook(server.url(bare_dbname), tmp_path)
    try:
        status, health, up = _health_and_database_up(hook)
    finally:
        stop_hook(hook)
    assert (status, health, up) == (
        200,
        {
            "status": "degraded",
            "database": "not_migrated",
            "spool_depth": 0,
            "spool_set_aside": 0,
            "spool_damaged": 0,
        },
        "fragrance_sync_database_up 0.0",
    )
    assert "python -m hook.migrate apply" in hook.output()


def test_without_a_spool_a_database_not_migrated_yet_is_a_503(
    server: Server, bare_dbname: str, tmp_path: Path
) -> None:
    hook = start_hook(server.url(bare_dbname), tmp_path, SPOOL_DIR="")
    try:
        health = httpx.get(hook.url + "/healthz", timeout=10)
    finally:
        stop_hook(hook)
    assert (health.status_code, health.json()["database"]) == (503, "not_migrated")


@pytest.mark.parametrize(
    ("change", "database"),
    [
        ("alter database {db} set default_transaction_read_only = on", "read_only"),
        (
            "revoke execute on function sync.store_many(bytea[], text[], text[], text[], uuid[])"
            " from sync_hook",
            "not_permitted",
        ),
        ("revoke usage on schema sync from sync_hook, sync_hook_login", "not_permitted"),
    ],
)
def test_healthz_says_when_the_database_answers_but_cannot_store_deliveries(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, change: str, database: str
) -> None:
    """A standby, or a grant lost: reads work, every delivery is refused and spooled."""
    db.execute(change.format(db=dbname))
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        health = httpx.get(hook.url + "/healthz", timeout=10)
        delivered = httpx.post(hook.url + "/notifications", content=body({"fragrance_id": 7}))
    finally:
        stop_hook(hook)
    assert (health.status_code, health.json()["status"]) == (200, "degraded")
    assert health.json()["database"] == database
    assert delivered.json()["status"] == "spooled"


def test_a_pooled_connection_the_server_dropped_is_replaced_before_a_delivery_uses_it(
    hook: Hook, db: psycopg.Connection
) -> None:
    def post(cost: int) -> str:
        delta = body({"fragrance_id": 7, "cost": cost})
        receipt = httpx.post(hook.url + "/notifications", content=delta).json()
        if receipt["inbox_id"] is None:
            return receipt["status"]  # spooled
        return settled(db, receipt["inbox_id"])["status"]

    assert post(1) == "applied"
    dropped = db.execute(
        "select count(*) filter (where pg_terminate_backend(pid, 5000)) from pg_stat_activity"
        " where application_name = 'fragrance-sync-hook' and datname = current_database()"
    ).fetchone()
    assert dropped is not None and dropped[0] >= 1
    # Not spooled: the pool noticed the dead connection and stored it on a new one.
    assert post(2) == "applied"
    assert fragrance(db, 7)["cost"] == 2


def test_without_a_spool_a_database_down_is_a_503_without_a_trace(tmp_path: Path) -> None:
    down = start_hook(
        f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/none", tmp_path, SPOOL_DIR=""
    )
    try:
        answer = httpx.post(down.url + "/notifications", content=b'{"fragrance_id": 1}', timeout=10)
        assert answer.status_code == 503
        assert answer.json() == {
            "detail": "database unavailable; the delivery was not stored, send it again"
        }
        assert httpx.get(down.url + "/healthz", timeout=10).status_code == 503
    finally:
        stop_hook(down)
    assert "Traceback" not in down.output()


def test_with_the_database_down_a_delivery_is_spooled_and_health_says_degraded(
    tmp_path: Path,
) -> None:
    down = start_hook(f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/none", tmp_path)
    try:
        answer = httpx.post(down.url + "/notifications", content=b'{"fragrance_id": 1}', timeout=10)
        assert (answer.status_code, answer.json()) == (
            202,
            {"inbox_id": None, "status": "spooled", "reasons": []},
        )
        health = httpx.get(down.url + "/healthz", timeout=10)
        assert (health.status_code, health.json()) == (
            200,
            {
                "status": "degraded",
                "database": "unreachable",
                "spool_depth": 1,
                "spool_set_aside": 0,
                "spool_damaged": 0,
            },
        )
    finally:
        stop_hook(down)
    assert "Traceback" not in down.output()
    assert (tmp_path / "spool" / "spool.sqlite3").exists()  # kept on disk for the next start


TOKEN = "s3cret-token-0123456789"
OPEN_WARNING = "can create and change fragrances. Set NOTIFY_TOKEN"


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"HOST": "0.0.0.0"}, True),
        ({"HOST": "0.0.0.0", "ALLOWED_NETWORKS": "10.0.0.0/8"}, True),
        ({"HOST": "0.0.0.0", "NOTIFY_TOKEN": TOKEN}, False),
        ({"HOST": "127.0.0.1"}, False),
        ({"HOST": "localhost"}, False),
    ],
)
def test_a_hook_open_beyond_loopback_without_a_token_says_so_at_start(
    server: Server, dbname: str, tmp_path: Path, env: dict[str, str], warned: bool
) -> None:
    running = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, **env)
    stop_hook(running)
    lines = [line for line in running.output().splitlines() if OPEN_WARNING in line]
    assert len(lines) == (1 if warned else 0)
    if warned:
        assert " WARNING " in lines[0] and "anyone who reaches port" in lines[0]
        # Without a token the Host is checked: a CMS calling by another name is refused.
        assert "a delivery must name this host by an IP address, localhost, or it is" in lines[0]


def _run_until_it_stops(env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m hook`` as deployed, with ``env`` added, for a start that must fail."""
    return subprocess.run(
        [sys.executable, "-m", "hook"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_bad_setting_stops_the_hook_with_a_clear_message() -> None:
    done = _run_until_it_stops({"PORT": "ninety"}, timeout=30)
    assert done.returncode == 2
    assert "PORT must be a whole number, got 'ninety'" in done.stderr


def test_a_port_another_process_holds_stops_the_hook_saying_what_to_change(
    tmp_path: Path,
) -> None:
    """Before it opens its pools or registers with the CMS, in one line naming PORT."""
    with port_held() as port:
        env = {
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/fragrancedb",
            "PORT": str(port),
            "SPOOL_DIR": str(tmp_path / "spool"),
        }
        done = _run_until_it_stops(env, timeout=60)
    assert done.returncode == 3
    assert f"hook: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "set PORT" in done.stderr
    assert "Application startup" not in done.stderr


def test_a_database_that_stays_down_is_not_a_pool_warning_every_second(tmp_path: Path) -> None:
    """psycopg_pool warns at each reconnection attempt of each pool: about 3 lines a second."""
    down = start_hook(f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/db", tmp_path)
    try:
        time.sleep(4)
    finally:
        stop_hook(down)
    pool_lines = [line for line in down.output().splitlines() if "psycopg.pool" in line]
    assert 1 <= len(pool_lines) <= 2, pool_lines


def test_a_client_that_never_finishes_its_body_gets_408_and_nothing_is_stored(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    slow = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, BODY_TIMEOUT="0.5")
    try:
        url = urlsplit(slow.url)
        with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
            conn.sendall(
                b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
                b'{"fragrance_id": 7'
            )
            answer = b""  # the rest of the body never comes
            while b"not stored" not in answer and (chunk := conn.recv(65536)):
                answer += chunk
    finally:
        stop_hook(slow)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"not received within 0.5 s" in answer
    assert db.execute("select count(*) from sync.inbox").fetchone() == (0,)


def test_a_merge_the_database_refuses_is_logged_once_and_retried_at_the_next_sweep(
    hook: Hook, db: psycopg.Connection
) -> None:
    db.execute("revoke execute on function sync.apply_received(integer) from sync_hook")
    answers = [
        httpx.post(hook.url + "/notifications", content=body({"fragrance_id": 7, "cost": c}))
        for c in (1, 2, 3)
    ]
    assert [(a.status_code, a.json()["status"]) for a in answers] == [(202, "pending")] * 3
    # Three refused calls from now on: the first two were logged (or not) before the third.
    now = db.execute("select clock_timestamp()").fetchone()[0]
    calls_started_after(db, now, "apply_received", 3, "fragrance-sync-merger")
    assert {inbox_row(db, a.json()["inbox_id"])["status"] for a in answers} == {"pending"}
    assert hook.output().count("applying the stored deliveries failed") == 1
    db.execute("grant execute on function sync.apply_received(integer) to sync_hook")
    assert settled(db, answers[-1].json()["inbox_id"])["status"] == "applied"
    assert fragrance(db, 7)["cost"] == 3


def test_a_hook_that_cannot_open_its_spool_exits_instead_of_running_deaf(
    server: Server, dbname: str, tmp_path: Path
) -> None:
    """Left running with nothing listening, it was never restarted by its supervisor."""
    spool_file = tmp_path / "not-a-directory"
    spool_file.write_bytes(b"")
    env = {
        "DATABASE_URL": server.url(dbname, user="sync_hook_login"),
        "PORT": str(free_port()),
        "SPOOL_DIR": str(spool_file / "spool"),
    }
    done = _run_until_it_stops(env, timeout=120)
    assert done.returncode != 0
    assert "SPOOL_DIR" in done.stderr


def test_the_documented_receipt_of_a_bad_body_is_the_one_answered(hook: Hook) -> None:
    """/docs said a body that breaks the rules is answered "rejected": it is answered pending."""
    schema = httpx.get(hook.url + "/openapi.json").json()
    described = schema["paths"]["/notifications"]["post"]["responses"]["202"]["description"]
    answer = httpx.post(hook.url + "/notifications", content=b"not json")
    assert (answer.status_code, answer.json()["status"]) == (202, "pending")
    assert "pending" in described
    assert "status rejected" not in described


def test_the_documented_health_answers_are_the_ones_answered(tmp_path: Path) -> None:
    """/docs said a 503 from /healthz is {"detail"}: it is the health answer, as a 200 is."""
    nowhere = f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/nothing"
    hook = start_hook(nowhere, tmp_path, SPOOL_DIR="")
    try:
        answer = httpx.get(hook.url + "/healthz")
        schema = httpx.get(hook.url + "/openapi.json").json()
    finally:
        stop_hook(hook)
    assert answer.status_code == 503
    documented = schema["paths"]["/healthz"]["get"]["responses"]
    for status in ("200", "503"):
        reference = documented[status]["content"]["application/json"]["schema"]["$ref"]
        model = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
        assert set(model["required"]) == set(answer.json()), status


def test_many_health_checks_at_once_share_one_probe_and_leave_the_pool_to_deliveries(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """Each GET /healthz took a pool connection for its probe: 200 at once held all ten."""
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, DB_POOL_MIN_SIZE="1")
    opened = (
        "select count(*) from pg_stat_activity"
        " where application_name = 'fragrance-sync-hook' and datname = %s"
    )
    url = urlsplit(hook.url)

    async def ask(times: int) -> list[bytes]:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        statuses = []
        for _ in range(times):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            statuses.append(head.split(b" ")[1])
        writer.close()
        return statuses

    async def flood() -> set[bytes]:
        answers = await asyncio.gather(*(ask(10) for _ in range(200)))
        return {status for statuses in answers for status in statuses}

    try:
        codes = asyncio.run(flood())
        pooled = db.execute(opened, [dbname]).fetchone()[0]
    finally:
        stop_hook(hook)
    assert codes == {b"200"}
    assert pooled <= 2, pooled  # the probe's connection, and at most one the pool kept from before
