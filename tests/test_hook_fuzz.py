"""Fuzzing the running hook over HTTP: any bytes, any headers, never a 5xx, always kept exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import Server
from helpers import fuzz_settings, settled
from hypothesis import given
from hypothesis import strategies as st
from processes import Hook, start_hook, stop_hook

LIMIT = 2048
FUZZ = fuzz_settings(60)
# Header values as HTTP carries them: visible latin-1 text (no CR/LF, which no client sends).
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=80,
).map(str.strip)


@pytest.fixture(scope="module")
def fuzz_hook(
    server: Server, shared_dbname: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hook]:
    tmp: Path = tmp_path_factory.mktemp("hook-fuzz")
    running = start_hook(
        server.url(shared_dbname, user="sync_hook_login"), tmp, MAX_BODY_BYTES=str(LIMIT)
    )
    yield running
    stop_hook(running)


@pytest.fixture(scope="module")
def inbox(server: Server, shared_dbname: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        yield conn


@FUZZ
@given(
    data=st.binary(max_size=LIMIT + 64),
    content_type=st.none() | header_text,
    user_agent=st.none() | header_text,
)
def test_any_request_is_answered_without_a_5xx_and_kept_exactly(
    fuzz_hook: Hook,
    inbox: psycopg.Connection,
    data: bytes,
    content_type: str | None,
    user_agent: str | None,
) -> None:
    headers: dict[str, bytes] = {}  # bytes: the values are latin-1, as HTTP carries them
    if content_type is not None:
        headers["content-type"] = content_type.encode("latin-1")
    if user_agent is not None:
        headers["user-agent"] = user_agent.encode("latin-1")
    answer = httpx.post(fuzz_hook.url + "/notifications", content=data, headers=headers, timeout=30)
    if len(data) > LIMIT:
        assert answer.status_code == 413
        return
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["status"] == "pending"
    assert settled(inbox, receipt["inbox_id"])["status"] in {"applied", "ignored", "rejected"}
    stored = inbox.execute(
        "select body, content_type, user_agent from sync.inbox where id = %s",
        [receipt["inbox_id"]],
    ).fetchone()
    assert stored is not None
    assert bytes(stored[0]) == data
    assert stored[1] == (content_type if content_type is not None else None)
    if user_agent is not None:
        assert stored[2] == user_agent
