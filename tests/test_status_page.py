"""GET /status: rendered in a real headless Chromium and checked as a person reads it.

The data is a CMS stream of three hours that stopped 15 minutes ago, with
rejects, an unknown field and hostile payloads: the page must say critical,
show the payloads as text, and run none of them.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from browser import Seen, chromium, read_dom
from conftest import ROOT, Server
from helpers import settled
from inprocess import hook_client
from processes import Hook, free_port, start_hook, stop_hook

from hook.status import chart, render

SCRIPT_PAYLOAD = "<script>document.title='pwned'</script>"
IMG_PAYLOAD = b"<img src=x onerror=\"document.title='pwned'\">"

STREAM = """
    insert into sync.inbox (received_at, body, content_type)
    select now() - interval '15 minutes' - n * interval '25 seconds',
           convert_to(case
               when n % 37 = 0 then jsonb_build_object('fragrance_id', n, 'cost', -n)
               when n % 53 = 0 then jsonb_build_object('fragrance_id', n, 'name', ' ')
               when n % 41 = 0 then jsonb_build_object('fragrance_id', n, 'forbidden', true,
                                                       'colour', 'amber')
               else jsonb_build_object('fragrance_id', n, 'description', 'Note ' || n || '  ',
                                       'forbidden', n % 2 = 0)
           end::text, 'UTF8'),
           'application/json'
    from generate_series(1, 420) as n
    order by n desc
"""


@pytest.fixture(scope="module")
def page_db(server: Server, shared_dbname: str) -> str:
    """The module's database with a stream that stopped, rejects and hostile payloads."""
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        conn.execute(STREAM)
        hostile = (
            b'{"fragrance_id": 7, "cost": -1, "name": "' + SCRIPT_PAYLOAD.encode() + b'"}',
            IMG_PAYLOAD,
        )
        for raw in hostile:
            conn.execute(
                "insert into sync.inbox (received_at, body) values"
                " (now() - interval '15 minutes' - interval '10 seconds', %s)",
                [raw],
            )
        conn.execute("select sync.apply_pending(100000)")
        conn.execute("select sync.check_catalog()")
        # A CMS snapshot that differs from the library in one row.
        conn.execute("""
            select sync.load_snapshot((
                select jsonb_agg(case when f.fragrance_id = 3 then to_jsonb(f) || '{"cost": 999}'
                                      else to_jsonb(f) end)
                from public.fragrances as f))
        """)
        conn.execute("select sync.run_job('check_drift')")
    return shared_dbname


@pytest.fixture(scope="module")
def hook(server: Server, page_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hook]:
    running = start_hook(
        server.url(page_db, user="sync_hook_login"),
        tmp_path_factory.mktemp("hook"),
        DB_TIMEOUT="30",  # the tests that hold a lock release it well before
    )
    yield running
    stop_hook(running)


@pytest.fixture(scope="module")
def seen(hook: Hook, tmp_path_factory: pytest.TempPathFactory) -> Seen:
    """The page as Chromium rendered it, after any script could have run."""
    tmp_path = tmp_path_factory.mktemp("dump")
    return read_dom(chromium(tmp_path, "--dump-dom", hook.url + "/status").stdout)


def test_the_banner_says_critical_and_why(seen: Seen) -> None:
    assert seen.title == "fragrance sync: critical"
    assert seen.text.startswith("critical no delivery for ")
    assert "changes missed (critical after 10 min)" in seen.text
    assert "no longer has our listener registered" in seen.text


def test_hostile_payloads_are_shown_as_text_and_never_run(seen: Seen) -> None:
    assert SCRIPT_PAYLOAD in seen.text
    assert IMG_PAYLOAD.decode() in seen.text
    assert "script" not in seen.tags and "img" not in seen.tags
    assert "pwned" not in seen.title


def test_the_sections_a_person_looks_for_are_there(seen: Seen) -> None:
    for heading in (
        "Deliveries per minute, last 3 hours",
        "Latest deliveries",
        "Rejected, by code",
        "Unknown CMS fields",
        "Pending backlog",
    ):
        assert heading in seen.text
    assert "svg" in seen.tags and "rect" in seen.tags


def test_rejects_are_grouped_by_code_with_an_example(seen: Seen) -> None:
    for code in ("cost.negative", "name.blank", "body.not_json"):
        assert code in seen.text
    assert "cost is -1; it must be 0 or more" in seen.text


def test_the_page_says_how_many_rows_match_the_last_cms_snapshot(seen: Seen) -> None:
    assert "Rows as in the CMS snapshot4999/5000the snapshot of" in seen.text


def test_findings_are_grouped_by_rule_with_an_example_and_the_query_to_list_them(
    seen: Seen,
) -> None:
    assert "Data quality of the catalog, by rule" in seen.text
    assert "description.untrimmed" in seen.text and "name.duplicate" in seen.text
    assert "select * from sync.open_finding where rule = 'name.duplicate';" in seen.text


def test_unknown_fields_and_the_backlog_are_listed(seen: Seen) -> None:
    assert "colour" in seen.text
    assert "Nothing pending" in seen.text


def test_the_page_reads_a_report_from_a_database_without_the_unknown_field_count(
    server: Server, page_db: str
) -> None:
    """A release being undone leaves the database code older than the hook: the page renders."""
    with psycopg.connect(server.url(page_db)) as conn:
        report = conn.execute("select sync.status_report(3, 10)").fetchone()[0]  # type: ignore[index]
    del report["unknown_fields_total"]
    page = render(report)
    assert f"<dd>{len(report['unknown_fields'])}<small>in the last day</small></dd>" in page


@pytest.mark.parametrize(
    ("checked_ago", "says", "does_not_say"),
    [
        ("as the database says", "The whole catalog has never been checked", ["last checked"]),
        ("2 h", "The whole catalog was last checked 2 h ago", ["never been checked"]),
        ("leave out", "Data quality of the catalog", ["last checked", "never been checked"]),
    ],
    ids=["never checked", "checked", "older database code"],
)
def test_the_page_says_when_the_whole_catalog_was_last_checked(
    server: Server, page_db: str, checked_ago: str, says: str, does_not_say: list[str]
) -> None:
    """Findings come from writes as they happen: a catalog never checked is not a clean one."""
    with psycopg.connect(server.url(page_db)) as conn:
        report = conn.execute("select sync.status_report(3, 10)").fetchone()[0]  # type: ignore[index]
    if checked_ago == "leave out":
        del report["catalog_checked_ago"]
    elif checked_ago != "as the database says":  # page_db's catalog: never checked by the job
        report["catalog_checked_ago"] = checked_ago
    page = render(report)
    assert says in page
    assert not [words for words in does_not_say if words in page]


def test_the_page_counts_apart_the_rows_changed_since_the_snapshot(
    server: Server, page_db: str
) -> None:
    with psycopg.connect(server.url(page_db)) as conn:
        report = conn.execute("select sync.status_report(3, 10)").fetchone()[0]  # type: ignore[index]
    report["catalog"]["changed_since"] = 3
    assert "; 3 more changed since, by a delivery or by hand, not verified" in render(report)


def test_the_page_says_when_the_drift_check_found_the_rows_in_sync(
    server: Server, page_db: str
) -> None:
    with psycopg.connect(server.url(page_db)) as conn:
        report = conn.execute("select sync.status_report(3, 10)").fetchone()[0]  # type: ignore[index]
    report["catalog"]["checked_ago"] = "5 h"
    assert "; as the drift check found them 5 h ago</small>" in render(report)


def test_the_page_asks_for_a_drift_check_of_a_snapshot_loaded_since(
    server: Server, page_db: str
) -> None:
    with psycopg.connect(server.url(page_db)) as conn:
        report = conn.execute("select sync.status_report(3, 10)").fetchone()[0]  # type: ignore[index]
    for figure in ("in_sync", "cms_rows", "library_rows", "changed_since", "extra"):
        del report["catalog"][figure]
    report["catalog"]["checked_at"] = None
    page = render(report)
    assert "has not been compared since it was loaded" in page
    assert "<code>select * from sync.run_job('check_drift');</code>" in page


def test_the_page_is_screenshotted_for_the_readme(hook: Hook, tmp_path: Path) -> None:
    shot = tmp_path / "status-page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1900", hook.url + "/status")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    if os.environ.get("SAVE_STATUS_SCREENSHOT"):
        shutil.copyfile(shot, ROOT / "docs" / "status-page.png")


def test_the_page_forbids_scripts_and_is_not_cached(hook: Hook) -> None:
    answer = httpx.get(hook.url + "/status", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "script-src" not in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


def test_with_the_database_down_the_page_says_so_with_503_and_names_no_connection_detail(
    tmp_path: Path,
) -> None:
    """Anyone may load the page: it quoted psycopg's error, with the host, port and login."""
    port = free_port()
    down = start_hook(
        f"postgresql://sync_hook_login@127.0.0.1:{port}/catalogdb", tmp_path, DB_TIMEOUT="0.5"
    )
    try:
        answer = httpx.get(down.url + "/status", timeout=10)
    finally:
        stop_hook(down)
    assert answer.status_code == 503
    assert "the database cannot be read" in answer.text
    for detail in (str(port), "127.0.0.1", "sync_hook_login", "catalogdb"):
        assert detail not in answer.text


def test_many_loads_at_once_run_one_report_and_leave_the_pool_to_deliveries(
    server: Server, page_db: str, hook: Hook
) -> None:
    """Anyone may load the page: 20 loads at once must not take the pool deliveries need."""
    waiting_reports = (
        "select count(*) from pg_stat_activity"
        " where query like '%%status_report%%' and wait_event_type = 'Lock' and datname = %s"
    )
    with (
        psycopg.connect(server.url(page_db)) as blocker,
        psycopg.connect(server.url(page_db), autocommit=True) as watcher,
        ThreadPoolExecutor(max_workers=20) as loads,
    ):
        # The report reads sync.settings: held here, every report waits in the database.
        blocker.execute("lock table sync.settings in access exclusive mode")
        pages = [loads.submit(httpx.get, hook.url + "/status", timeout=60) for _ in range(20)]
        for _ in range(60):  # until a second report waits too, or 3 s in which one would have
            if watcher.execute(waiting_reports, [page_db]).fetchone()[0] >= 2:
                break
            time.sleep(0.05)
        delivery = httpx.post(hook.url + "/notifications", content=b'{"fragrance_id": 7}')
        reports_in_the_database = watcher.execute(waiting_reports, [page_db]).fetchone()[0]
        blocker.rollback()
        codes = [page.result().status_code for page in pages]
    assert reports_in_the_database == 1
    assert (delivery.status_code, delivery.json()["status"]) == (202, "pending")
    assert codes == [200] * 20


def test_a_dbas_lock_on_what_the_reports_read_makes_the_public_pages_give_up_not_hang(
    server: Server, page_db: str, tmp_path: Path
) -> None:
    """Held by the lock, a page load waited as long as the DBA's transaction lasted."""
    impatient = start_hook(server.url(page_db, user="sync_hook_login"), tmp_path, DB_TIMEOUT="1")
    try:
        with psycopg.connect(server.url(page_db)) as dba:
            dba.execute("lock table sync.settings in access exclusive mode")
            page = httpx.get(impatient.url + "/status", timeout=60)
            scrape = httpx.get(impatient.url + "/metrics", timeout=60)
            dba.rollback()
        again = httpx.get(impatient.url + "/metrics", timeout=60)
    finally:
        stop_hook(impatient)
    assert (page.status_code, "statement timeout" in page.text) == (503, True)
    assert "fragrance_sync_database_up 0.0" in scrape.text
    assert "fragrance_sync_database_up 1.0" in again.text


def test_with_the_database_down_public_routes_log_a_line_per_10_s_not_per_request(
    tmp_path: Path,
) -> None:
    down = start_hook(
        f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/none", tmp_path, DB_TIMEOUT="0.5"
    )
    started = time.monotonic()
    try:
        for _ in range(30):
            for route in ("/healthz", "/metrics", "/status"):
                httpx.get(down.url + route, timeout=10)
    finally:
        elapsed = time.monotonic() - started
        stop_hook(down)
    output = down.output()
    # One line per 10 s window the requests spanned: one, unless a busy
    # machine stretched the 90 requests past 10 s; never one per request.
    windows = 1 + math.floor(elapsed / 10)
    for line in (
        "health check: database unreachable",
        "metrics: cannot read sync.metrics()",
        "status page: cannot read sync.status_report()",
    ):
        assert 1 <= output.count(line) <= min(windows, 29), (line, elapsed, output[-3000:])


def test_the_chart_scales_bars_to_the_busiest_minute() -> None:
    minutes = [
        {"minute": "2026-01-01T12:00:00+00:00", "deliveries": 6, "rejected": 3},
        {"minute": "2026-01-01T12:01:00+00:00", "deliveries": 0, "rejected": 0},
    ]
    drawn = chart(minutes, expected_interval_seconds=25)
    assert [(b["height"], b["rejected_height"]) for b in drawn["bars"]] == [(120, 60), (0, 0)]
    assert drawn["expected"] == 2.4


def test_a_page_is_rendered_once_per_report_however_many_load_it(
    server: Server, page_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering again for each of 400 clients reloading took the worker from deliveries."""
    renders: list[object] = []

    def counting_render(*args: Any, **kwargs: Any) -> str:
        renders.append(args[0])
        return render(*args, **kwargs)

    monkeypatch.setattr("hook.status.render", counting_render)

    async def load_ten() -> list[int]:
        url = server.url(page_db, user="sync_hook_login")
        async with hook_client(url, tmp_path) as http:
            return [(await http.get("/status")).status_code for _ in range(10)]

    assert asyncio.run(load_ten()) == [200] * 10
    assert len(renders) == len({id(report) for report in renders})


def test_names_and_messages_a_sender_chose_are_cut_on_the_page(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """Twenty unknown keys of 1 MB each made the anonymous page 21 MB (0.9 s a load)."""
    keys = [letter * 100_000 for letter in "ABCDEFGHIJKLMNOPQRST"]
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        ids = [
            httpx.post(
                hook.url + "/notifications", content=b'{"fragrance_id": 7, "%s": 1}' % k
            ).json()["inbox_id"]
            for k in (key.encode() for key in keys)
        ]
        ids.append(
            httpx.post(hook.url + "/notifications", content=b"x" * 100_000).json()["inbox_id"]
        )
        for inbox_id in ids:
            settled(db, inbox_id)
        page = httpx.get(hook.url + "/status", timeout=30)
    finally:
        stop_hook(hook)
    assert page.status_code == 200
    assert len(page.content) < 100_000, len(page.content)
    assert f"<code>{keys[-1][:200]}...</code>" in page.text  # the start of each, to tell them apart
    assert "body is not valid JSON at line 1: Token &#34;xxxx" in page.text
