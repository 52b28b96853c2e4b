"""The whole chain over real HTTP: CMS simulator -> hook -> PostgreSQL -> smart library.

Both programs run as real processes against throwaway databases; the hook
registers itself with the simulator as its listener, exactly as deployed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Server
from processes import free_port, run_cms_into, start_hook

from cms_simulator import journal

Row = tuple[Any, ...]
CATALOG = "select fragrance_id, name, description, cost, forbidden from public.fragrances"


def _catalog(url: str) -> dict[int, Row]:
    with psycopg.connect(url) as conn:
        return {row[0]: row for row in conn.execute(CATALOG).fetchall()}


@dataclass
class Run:
    """What one end-to-end run left behind."""

    entries: list[dict[str, Any]]
    smart_url: str
    cms_url: str


def _run(server: Server, dbname: str, cms_url: str, tmp_path: Path, **sim_env: str) -> Run:
    hook_port, cms_port = free_port(), free_port()
    journal_path = tmp_path / "journal.jsonl"
    hook = start_hook(
        server.url(dbname, user="sync_hook_login"),
        tmp_path,
        port=hook_port,
        CMS_URL=f"http://127.0.0.1:{cms_port}",
        PUBLIC_URL=f"http://127.0.0.1:{hook_port}/notifications",
        CMS_REGISTER_EVERY="1",
    )
    run_cms_into(hook, tmp_path, cms_port, cms_url, journal_path, **sim_env)
    return Run(journal.read(journal_path), server.url(dbname), cms_url)


def _inbox(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select id, body, status, reasons from sync.inbox order by id"
        ).fetchall()


def _repair_from_cms(run: Run) -> None:
    """Load the CMS catalog as a snapshot and repair through the inbox."""
    rows = [
        {"fragrance_id": r[0], "name": r[1], "description": r[2], "cost": r[3], "forbidden": r[4]}
        for r in _catalog(run.cms_url).values()
    ]
    with psycopg.connect(run.smart_url, autocommit=True) as conn:
        conn.execute("select sync.load_snapshot(%s::jsonb, 'e2e')", [json.dumps(rows, default=str)])
        conn.execute("select sync.repair()")


def _replayed(catalog: dict[int, Row], inbox: list[dict[str, Any]]) -> dict[int, Row]:
    """The catalog with every delivery the sync accepted applied in receipt order."""
    fields = ("name", "description", "cost", "forbidden")
    state = {k: list(v) for k, v in catalog.items()}
    for row in inbox:
        if row["status"] not in ("applied", "ignored"):
            continue
        delta = json.loads(bytes(row["body"]))
        if delta["fragrance_id"] not in state:
            state[delta["fragrance_id"]] = [delta["fragrance_id"], None, None, None, None]
        for i, field in enumerate(fields, start=1):
            if field in delta:
                value = delta[field]
                state[delta["fragrance_id"]][i] = Decimal(value) if field == "cost" else value
    return {k: tuple(v) for k, v in state.items()}


@pytest.fixture
def calm_run(server: Server, dbname: str, cms_url: str, tmp_path: Path) -> Iterator[Run]:
    yield _run(server, dbname, cms_url, tmp_path, COUNT="40", SEED="11")


@pytest.fixture
def chaos_run(server: Server, dbname: str, cms_url: str, tmp_path: Path) -> Iterator[Run]:
    yield _run(
        server,
        dbname,
        cms_url,
        tmp_path,
        COUNT="60",
        SEED="23",
        CHAOS="all",
        CHAOS_PROBABILITY="0.5",
    )


def test_every_change_after_registration_arrives_and_is_applied(calm_run: Run) -> None:
    first, *rest = calm_run.entries
    assert first["outcome"] == "no_listener"  # made at start, before anyone listened
    assert rest and {(e["outcome"], e["status"]) for e in rest} == {("answered", 202)}
    inbox = _inbox(calm_run.smart_url)
    assert [bytes(r["body"]) for r in inbox] == [journal.body_bytes(e) for e in rest]
    assert {r["status"] for r in inbox} == {"applied"}


def test_the_two_catalogs_end_identical_row_by_row_and_column_by_column(calm_run: Run) -> None:
    cms, smart = _catalog(calm_run.cms_url), _catalog(calm_run.smart_url)
    lost = json.loads(journal.body_bytes(calm_run.entries[0]))["fragrance_id"]
    differing = {k for k in cms.keys() | smart.keys() if cms.get(k) != smart.get(k)}
    assert differing <= {lost}  # only the change nobody could hear
    _repair_from_cms(calm_run)
    assert _catalog(calm_run.smart_url) == cms


def test_with_chaos_nothing_received_is_missing_from_the_inbox(chaos_run: Run) -> None:
    answered = [journal.body_bytes(e) for e in chaos_run.entries if e["outcome"] == "answered"]
    inbox = _inbox(chaos_run.smart_url)
    assert Counter(bytes(r["body"]) for r in inbox) == Counter(answered)
    assert {e["chaos"] for e in chaos_run.entries} > {None}, "the run made no chaos at all"


def test_with_chaos_every_invalid_delivery_is_quarantined_with_its_reason(chaos_run: Run) -> None:
    invalid = {
        journal.body_bytes(e)
        for e in chaos_run.entries
        if e["outcome"] == "answered" and not e["committed"]
    }
    assert invalid, "the run sent no invalid delivery"
    found = set()
    for row in _inbox(chaos_run.smart_url):
        if bytes(row["body"]) in invalid:
            assert row["status"] == "rejected"
            assert [r for r in row["reasons"] if r["severity"] == "error"]
            found.add(bytes(row["body"]))
    assert found == invalid, "an invalid delivery is not in the inbox at all"


def test_with_chaos_the_smart_library_holds_exactly_the_valid_changes(
    chaos_run: Run, adopted_template: str, server: Server
) -> None:
    inbox = _inbox(chaos_run.smart_url)
    expected = _replayed(_catalog(server.url(adopted_template)), inbox)
    assert _catalog(chaos_run.smart_url) == expected
    _repair_from_cms(chaos_run)
    assert _catalog(chaos_run.smart_url) == _catalog(chaos_run.cms_url)
