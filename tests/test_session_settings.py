"""The caller's session settings: what a login, a role or the database sets that the code did not.

Every caller of the SQL API (a DBA's psql, the hook, pg_cron) brings the
settings of its session: set by itself, by ``ALTER ROLE ... SET`` or by
``ALTER DATABASE ... SET`` (a shared database keeps the settings its older
applications need). The code must answer alike under each, or pin what it
needs. The tests set them on the test's own database, which is dropped after.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import ROOT, Server
from helpers import receive
from inprocess import hook_client

NOT_JSON = b'{"fragrance_id": 7, "name": "' + b"a" * 60
NUL_IN_JSON = b'{"fragrance_id": 7, "name": "a\\u0000b"}'


def _connect(server: Server, dbname: str, user: str = "postgres", **settings: str):
    """An autocommit connection whose session starts with these settings (as a role's would)."""
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    return psycopg.connect(server.url(dbname, user=user), autocommit=True, options=options)


def _judged(conn: psycopg.Connection, raw: bytes) -> tuple[str, str]:
    stored = receive(conn, raw)
    return stored["status"], stored["reasons"][0]["message"]


def test_deliveries_are_judged_alike_without_standard_conforming_strings(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    r"""A database of an older application keeps standard_conforming_strings off.

    Then '\u0000' in a plain string constant is an escape PostgreSQL refuses,
    and the function that parses a body did not even compile: every delivery
    failed to store (the hook answers 500, and the CMS never sends again), and
    a DBA's retry failed too. '\1' was the byte 1 and '\d' a d.
    """
    expected = [_judged(db, NOT_JSON), _judged(db, NUL_IN_JSON)]
    assert expected[0][1].startswith('body is not valid JSON at line 1: Token ""aaaa')
    assert expected[1][0] == "rejected"
    db.execute(f"alter database {dbname} set standard_conforming_strings = off")
    for user in ("postgres", "sync_hook_login"):
        with _connect(server, dbname, user=user, client_min_messages="error") as conn:
            assert [_judged(conn, NOT_JSON), _judged(conn, NUL_IN_JSON)] == expected
    with _connect(server, dbname, user="alice", client_min_messages="error") as conn:
        [rejected] = conn.execute(
            "select id from sync.inbox where body = %s order by id limit 1", [NOT_JSON]
        ).fetchone()
        status, reasons = conn.execute(
            "select status, reasons from sync.retry(%s)", [rejected]
        ).fetchone()
        assert (status, reasons[0]["message"]) == expected[0]


def test_a_weekly_schedule_is_read_alike_without_standard_conforming_strings(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    r"""'\s+' read as 's+' made every schedule daily: a weekly job run 3 days ago was overdue."""
    db.execute("update sync.job set schedule = '5 1 * * 0' where name = 'check_drift'")
    db.execute(
        "insert into sync.job_run (job, started_at, finished_at, status)"
        " select name, now() - ago::interval, now() - ago::interval, 'ok'"
        " from (values ('check_catalog', '1 hour'), ('purge_inbox', '1 hour'),"
        "              ('check_drift', '3 days')) as r (name, ago)"
    )
    health = "select verdict, reason from sync.health_at(now())"
    expected = db.execute(health).fetchone()
    assert "check_drift" not in expected[1]
    with _connect(server, dbname, standard_conforming_strings="off") as conn:
        assert conn.execute(health).fetchone() == expected


# A string constant ('...', continued by another on a later line, comments
# between them), an escape string constant (E'...', continued the same way),
# a quoted identifier, a comment, or a dollar quote, whose body is read as SQL
# too (a function's body is SQL).
_THEN = r"(?:(?:[ \t\r\f]*(?:--[^\n]*)?\n)+\s*"
_PLAIN = r"'(?:[^']|'')*'"
_ESCAPED = r"'(?:[^'\\]|\\.|'')*'"
_TOKEN = re.compile(
    rf"""(?P<comment>--[^\n]*|/\*.*?\*/)
      | (?P<ident>"(?:[^"]|"")*")
      | (?P<escape>(?<![\w$])[eE]{_ESCAPED}{_THEN}{_ESCAPED})*)
      | (?P<plain>{_PLAIN}{_THEN}{_PLAIN})*)
      | (?P<dollar>\$(?:[A-Za-z_]\w*)?\$)
    """,
    re.VERBOSE | re.DOTALL,
)


def plain_constants_with_a_backslash(sql: str) -> Iterator[tuple[int, str]]:
    """Each plain string constant holding a backslash, with its line number."""
    for token in _TOKEN.finditer(sql):
        if token["plain"] is not None and "\\" in token["plain"]:
            yield sql.count("\n", 0, token.start()) + 1, token["plain"][:60]


def test_no_plain_string_constant_of_the_database_code_holds_a_backslash() -> None:
    r"""A backslash means one thing in E'...' and two in '...' (standard_conforming_strings).

    A function's body is compiled in its caller's session: a plain constant
    holding a backslash reads as an escape where the database, the role or
    the session turned standard_conforming_strings off. Write E'\\s+'.
    """
    found = [
        f"{path.name}:{line}: {text}"
        for path in sorted((ROOT / "db").glob("[0-9][0-9]-*.sql"))
        for line, text in plain_constants_with_a_backslash(path.read_text())
    ]
    assert found == []


def test_the_constant_scan_tells_escape_constants_from_plain_ones() -> None:
    assert list(plain_constants_with_a_backslash("select E'\\\\s+', 'a''b'")) == []
    assert list(plain_constants_with_a_backslash("select 'x\\s+' -- it's \\ here")) == [
        (1, "'x\\s+'")
    ]
    assert list(plain_constants_with_a_backslash("select E'^['\n    '\\\\u0001]'")) == []
    commented = "select E'^['\n -- a comment\n '\\\\u0001]'"
    assert list(plain_constants_with_a_backslash(commented)) == []
    assert list(plain_constants_with_a_backslash("select '^['\n -- it's\n '\\u0001]'")) == [
        (1, "'^['\n -- it's\n '\\u0001]'")
    ]
    assert list(plain_constants_with_a_backslash("$$ select '\\d' $$")) == [(1, "'\\d'")]


# A setting with a dot in its name is a placeholder any session may SET, to anything.
_CUSTOM_SETTING_READ = re.compile(r"current_setting\s*\(\s*'[a-z_0-9]+\.", re.IGNORECASE)


def test_no_code_of_ours_decides_by_a_setting_any_session_may_invent(
    db: psycopg.Connection,
) -> None:
    """SET sync.merging = 'on' needs no privilege: the merge marks itself in a table instead.

    (sync_private.merging, which no caller can write: db/40-history.sql.)
    """
    assert _CUSTOM_SETTING_READ.search("x := current_setting( 'sync.merging', true);")
    assert not _CUSTOM_SETTING_READ.search("current_setting('lock_timeout')")
    functions = db.execute("""
        select p.oid::regprocedure::text, p.prosrc from pg_catalog.pg_proc as p
        where p.pronamespace in ('sync'::regnamespace, 'sync_private'::regnamespace)
        order by 1
    """).fetchall()
    assert len(functions) > 100
    assert [name for name, source in functions if _CUSTOM_SETTING_READ.search(source)] == []


# --- the hook's sessions: what the site's database or login sets -----------------------------

SNOWMAN = '{"fragrance_id": 7, "cost": "Winter \u2603"}'.encode()
DELIVERY = b'{"fragrance_id": 7, "description": "from test_session_settings"}'


def _scrape(server: Server, dbname: str, tmp_path: Path) -> tuple[httpx.Response, ...]:
    """A delivery, then /metrics and /status, through the hook's app as sync_hook_login."""

    async def run() -> tuple[httpx.Response, ...]:
        url = server.url(dbname, user="sync_hook_login")
        async with hook_client(url, tmp_path) as http:
            delivered = await http.post("/notifications", content=DELIVERY)
            return delivered, await http.get("/metrics"), await http.get("/status")

    return asyncio.run(run())


def _metric(page: str, name: str) -> float:
    [value] = re.findall(rf"^{name} (\S+)$", page, re.MULTILINE)
    return float(value)


@pytest.mark.parametrize(
    "setting",
    [
        "extra_float_digits = -15",
        "client_encoding = 'LATIN1'",
        # Held when tried (hostile review), kept so: the hook's sessions read moments,
        # ages and bytes alike under these.
        "datestyle = 'SQL, DMY'",
        "intervalstyle = 'iso_8601'",
        "timezone = 'Pacific/Chatham'",
        "bytea_output = 'escape'",
        "default_transaction_isolation = 'serializable'",
    ],
)
def test_the_hooks_pages_read_alike_whatever_the_database_sets_for_numbers_and_text(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path, setting: str
) -> None:
    """Settings a site keeps for its other applications, on the hook's database.

    extra_float_digits -15 read an age of 1,234.5 s as 1,000 in /metrics;
    client_encoding LATIN1 failed /status (503) on a reject whose reason
    quotes a snowman.
    """
    assert receive(db, SNOWMAN)["status"] == "rejected"
    db.execute(
        "insert into sync.inbox (received_at, body) values (now() - interval '1234.5 seconds', %s)",
        [b'{"fragrance_id": 7, "cost": 1}'],
    )
    db.execute(f"alter database {dbname} set {setting}")
    # The hook's merger sweeps at start, and applied the old delivery (and
    # its age with it) before /metrics was read, some of the time: a row
    # held by another transaction keeps its fragrance's deliveries pending.
    with psycopg.connect(server.url(dbname)) as holder:
        holder.execute("select from public.fragrances where fragrance_id = 7 for update")
        delivered, metrics, status = _scrape(server, dbname, tmp_path)
    assert delivered.status_code == 202, delivered.text
    assert metrics.status_code == 200
    assert _metric(metrics.text, "fragrance_sync_database_up") == 1
    assert 1234 < _metric(metrics.text, "fragrance_sync_oldest_pending_age_seconds") < 1300
    assert status.status_code == 200, status.text
    assert "Winter \u2603" in status.text


# --- what a DBA's call stores: the same whatever the DBA's session writes moments as ---------

REPAIR_FROM = "sync.repair by postgres from cms.json taken 2026-11-23 21:00:00 UTC"


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"datestyle": "SQL,DMY"},
        {"datestyle": "Postgres,MDY"},
        {"datestyle": "German"},
        {"timezone": "Asia/Kathmandu"},
        {"timezone": "America/St_Johns", "datestyle": "SQL,MDY"},
    ],
    ids=lambda settings: ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults",
)
def test_a_repair_records_its_snapshot_alike_whatever_the_session_writes_moments_as(
    server: Server, dbname: str, db: psycopg.Connection, settings: dict[str, str]
) -> None:
    """A repair's deliveries name the snapshot they come from, by its moment, in the inbox.

    It was written in the repairing session's DateStyle and TimeZone: under
    'SQL, DMY' as 23/11/2026, which a reader under MDY takes for a month
    that does not exist, and 04/12 for April; read as the DBA wrote it, not
    as it was.
    """
    db.execute(
        "select sync.load_snapshot(jsonb_agg(case when f.fragrance_id = 7"
        " then to_jsonb(f) || '{\"cost\": 77}' else to_jsonb(f) end), 'cms.json',"
        " '2026-11-23 21:00Z') from public.fragrances as f"
    )
    with _connect(server, dbname, **settings) as conn:
        [(inbox_id,)] = conn.execute("select inbox_id from sync.repair()").fetchall()
    stored = db.execute("select user_agent from sync.inbox where id = %s", [inbox_id]).fetchone()
    assert stored == (REPAIR_FROM,)
