"""The hook keeps itself registered as the CMS's listener."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Server
from processes import Hook, free_port, start_hook, stop_hook

from cms_simulator.app import Listener
from hook.listener import keep_registered, listener_payload, redacted
from hook.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("public_url", "payload"),
    [
        (
            "http://fragrance_sync:9098/notifications",
            {"host": "http://fragrance_sync", "port": 9098, "endpoint": "/notifications"},
        ),
        (
            "https://sync.example.org/notifications/s3cret",
            {"host": "https://sync.example.org", "port": 443, "endpoint": "/notifications/s3cret"},
        ),
        ("http://10.0.0.5", {"host": "http://10.0.0.5", "port": 80, "endpoint": "/notifications"}),
    ],
)
def test_the_listener_body_rebuilds_our_url_by_concatenation(
    public_url: str, payload: dict[str, object]
) -> None:
    assert listener_payload(public_url) == payload


def test_the_cms_concatenation_gives_back_our_url() -> None:
    payload = listener_payload("http://fragrance_sync:9098/notifications")
    rebuilt = f"{payload['host']}:{payload['port']}{payload['endpoint']}"
    assert rebuilt == "http://fragrance_sync:9098/notifications"


@pytest.mark.parametrize("bad", ["fragrance_sync:9098", "ftp://x/notifications", "http://"])
def test_a_public_url_that_is_not_http_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="PUBLIC_URL must be an http"):
        listener_payload(bad)


class FakeCms:
    """Records listener registrations, as the CMS's in-memory listener does."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.registrations: list[dict[str, object]] = []
        recorded = self.registrations

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", "0"))
                recorded.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int) -> None:
        for _ in range(300):
            if len(self.registrations) >= count:
                return
            time.sleep(0.05)
        pytest.fail(f"expected {count} registrations, got {self.registrations}")


@pytest.fixture
def cms_port() -> int:
    return free_port()


def _registering(server: Server, dbname: str, tmp_path: Path, cms_port: int) -> Hook:
    """A hook that registers with the CMS on ``cms_port`` every second."""
    return start_hook(
        server.url(dbname, user="sync_hook_login"),
        tmp_path,
        CMS_URL=f"http://127.0.0.1:{cms_port}",
        PUBLIC_URL="http://fragrance_sync:9098/notifications",
        CMS_REGISTER_EVERY="1",
    )


@pytest.fixture
def registering_hook(server: Server, dbname: str, tmp_path: Path, cms_port: int) -> Iterator[None]:
    hook = _registering(server, dbname, tmp_path, cms_port)
    yield
    stop_hook(hook)


def test_the_hook_registers_once_the_cms_comes_up(registering_hook: None, cms_port: int) -> None:
    cms = FakeCms(cms_port)  # the CMS starts after the hook
    try:
        cms.wait_for(1)
        assert cms.registrations[0] == {
            "host": "http://fragrance_sync",
            "port": 9098,
            "endpoint": "/notifications",
        }
    finally:
        cms.stop()


def test_the_hook_registers_again_after_the_cms_restarts(
    registering_hook: None, cms_port: int
) -> None:
    first = FakeCms(cms_port)
    first.wait_for(1)
    first.stop()  # a restart: the new CMS remembers no listener
    second = FakeCms(cms_port)
    try:
        second.wait_for(1)
    finally:
        second.stop()


class _Lines(logging.Handler):
    """The messages a logger writes, whatever the logging set-up of other tests."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def listener_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Lines]:
    """What hook.listener logs at INFO and above during the test."""
    logger = logging.getLogger("hook.listener")
    lines = _Lines()
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(lines)
    yield lines
    logger.removeHandler(lines)


def test_the_registration_log_line_does_not_carry_the_token(
    cms_port: int, listener_lines: _Lines
) -> None:
    """Logs reach more people than the token may (docker compose logs)."""
    cms = FakeCms(cms_port)

    async def register_then_stop() -> None:
        task = asyncio.create_task(
            keep_registered(
                f"http://127.0.0.1:{cms_port}",
                "http://fragrance_sync:9098/notifications/s3cret-token",
                every=60,
            )
        )
        await asyncio.to_thread(cms.wait_for, 1)
        # The CMS has the registration before the hook has its answer and logs.
        for _ in range(500):
            if listener_lines.messages:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    try:
        asyncio.run(register_then_stop())
    finally:
        cms.stop()
    assert cms.registrations[0]["endpoint"] == "/notifications/s3cret-token"
    assert listener_lines.messages == [
        "registered http://fragrance_sync:9098/notifications/<token> as the CMS listener"
        f" at http://127.0.0.1:{cms_port}"
    ]


def test_the_hook_says_it_registered_once_not_at_every_registration(
    server: Server, dbname: str, tmp_path: Path, cms_port: int
) -> None:
    """Every POST /listener was logged by httpx at INFO: a line every 5 s, 17,280 a day."""
    cms = FakeCms(cms_port)
    hook = _registering(server, dbname, tmp_path, cms_port)
    try:
        cms.wait_for(3)
    finally:
        stop_hook(hook)
        cms.stop()
    lines = [line for line in hook.output().splitlines() if "listener" in line]
    assert len(lines) == 1, lines
    assert "registered http://fragrance_sync:9098/notifications" in lines[0]


def test_a_cms_that_stays_down_is_not_a_warning_every_two_seconds(
    cms_port: int, listener_lines: _Lines
) -> None:
    """The first failure is said at once; the next ones are counted into the next line."""
    attempts = 20  # counted, not timed: 20 failures, each past the first kept quiet
    outcomes: list[str] = []

    async def fail_for_a_while() -> None:
        failed = asyncio.Event()

        def observe(outcome: str) -> None:
            outcomes.append(outcome)
            if len(outcomes) == attempts:
                failed.set()

        task = asyncio.create_task(
            keep_registered(
                f"http://127.0.0.1:{cms_port}",  # nothing listens there
                "http://fragrance_sync:9098/notifications",
                every=60,
                retry=0.01,
                observe=observe,
            )
        )
        await asyncio.wait_for(failed.wait(), 60)
        task.cancel()

    asyncio.run(fail_for_a_while())
    assert outcomes[:attempts] == ["unreachable"] * attempts
    assert len(listener_lines.messages) == 1, listener_lines.messages
    assert listener_lines.messages[0].startswith(
        f"could not reach the CMS at http://127.0.0.1:{cms_port}"
    )


@pytest.mark.parametrize(
    "public_url",
    [
        "http://[::1]:9098/notifications",
        "http://[fd00::5]/notifications/s3cret-token-0123456",
        "https://[2001:db8::7]/sync/notifications",
    ],
)
def test_an_ipv6_public_url_keeps_its_brackets_in_the_url_the_cms_rebuilds(
    public_url: str,
) -> None:
    """``http://::1:9098/notifications`` was registered: no URL, every change lost."""
    payload = listener_payload(public_url)
    # The simulator's Listener is the real CMS's concatenation.
    rebuilt = urlsplit(Listener.model_validate(payload).url())
    assert rebuilt.hostname == urlsplit(public_url).hostname
    assert rebuilt.port == (urlsplit(public_url).port or (443 if "https" in public_url else 80))
    assert rebuilt.path == urlsplit(public_url).path


@pytest.mark.parametrize(
    ("public_url", "rebuilt"),
    [
        # A trailing slash on a bare host meant endpoint "/": the hook has no such route.
        ("http://fragrance_sync:9098/", "http://fragrance_sync:9098/notifications"),
        ("HTTPS://Sync.Example.org/notifications/", "https://sync.example.org:443/notifications/"),
        (
            "http://proxy.internal/sync/notifications/s3cret-token-0123456",
            "http://proxy.internal:80/sync/notifications/s3cret-token-0123456",
        ),
        (
            "http://10.0.0.5:9098/notifications?from=cms",
            "http://10.0.0.5:9098/notifications?from=cms",
        ),
    ],
)
def test_the_url_the_cms_rebuilds_reaches_a_hook_route(public_url: str, rebuilt: str) -> None:
    assert Listener.model_validate(listener_payload(public_url)).url() == rebuilt


@pytest.mark.parametrize(
    ("public_url", "message"),
    [
        ("http://fragrance_sync:9098/notification", "PUBLIC_URL's path must end with"),
        ("http://fragrance_sync:9098/hooks", "PUBLIC_URL's path must end with"),
        ("http://fragrance_sync:99999/notifications", "PUBLIC_URL's port must be a number"),
        ("http://fragrance_sync:0/notifications", "PUBLIC_URL's port must be a number"),
        ("http://cms:pw@fragrance_sync/notifications", "PUBLIC_URL must not carry a user"),
    ],
)
def test_a_public_url_the_cms_could_not_reach_us_by_stops_the_hook_at_start(
    public_url: str, message: str
) -> None:
    """A bad PUBLIC_URL is said at start, naming the variable.

    The CMS ignores every answer: a 404 route, port 80 for ':0' or a dropped password
    lost every change without a word; an out-of-range port said only 'Port out of range'.
    """
    with pytest.raises(SettingsError, match=message) as refused:
        Settings.from_env({"CMS_URL": "http://cms:8080", "PUBLIC_URL": public_url})
    assert "pw" not in str(refused.value)


def _registrations(hook_url: str) -> dict[str, float]:
    """fragrance_sync_cms_registrations_total by outcome, from the hook's /metrics."""
    text = httpx.get(hook_url + "/metrics", timeout=10).text
    found = re.findall(
        r'^fragrance_sync_cms_registrations_total\{outcome="(\w+)"\} (\S+)$', text, re.M
    )
    return {outcome: float(value) for outcome, value in found}


def test_metrics_count_the_registrations_the_cms_refused(
    server: Server, dbname: str, tmp_path: Path, cms_port: int
) -> None:
    """A CMS answering 500 on /listener sent nothing and said so only in the log.

    Deliveries simply stopped: the cadence alert fires after 10 minutes, naming no cause.
    """
    cms = FakeCms(cms_port, status=500)
    hook = _registering(server, dbname, tmp_path, cms_port)
    try:
        cms.wait_for(1)
        for _ in range(100):
            counts = _registrations(hook.url)
            if counts.get("refused"):
                break
            time.sleep(0.05)
        assert counts == {"accepted": 0.0, "refused": counts["refused"], "unreachable": 0.0}
        assert counts["refused"] >= 1
    finally:
        stop_hook(hook)
        cms.stop()


VALIDATION_TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(
    ("public_url", "token", "refusal"),
    [
        ("http://fragrance_sync:9098/notifications", "", None),
        ("http://fragrance_sync:9098/notifications/", "", None),
        (f"http://fragrance_sync:9098/notifications/{VALIDATION_TOKEN}", VALIDATION_TOKEN, None),
        # The route /notifications/{token}/ answers it (tests/test_guard.py): no reason to refuse.
        (f"http://fragrance_sync:9098/notifications/{VALIDATION_TOKEN}/", VALIDATION_TOKEN, None),
        (f"http://proxy.internal/sync/notifications/{VALIDATION_TOKEN}", VALIDATION_TOKEN, None),
        (f"http://10.0.0.5/notifications/{VALIDATION_TOKEN}?from=cms", VALIDATION_TOKEN, None),
        ("http://10.0.0.5:9098/notifications", "", None),
        ("http://[fd00::5]:9098/notifications", "", None),
        ("http://sync-1.example.org/notifications", "", None),
        ("http://fragrance_sync:9098/notifications", VALIDATION_TOKEN, "must end with"),
        (f"http://fragrance_sync:9098/hooks/{VALIDATION_TOKEN}", VALIDATION_TOKEN, "path must"),
        (
            f"http://fragrance_sync:9098/notifications/x{VALIDATION_TOKEN}",
            VALIDATION_TOKEN,
            "must end with",
        ),
        # The route /notifications/{token}/more answers 404 (tests/test_guard.py).
        (
            f"http://fragrance_sync:9098/notifications/{VALIDATION_TOKEN}/more",
            VALIDATION_TOKEN,
            "path must",
        ),
        ("http://fragrance sync:9098/notifications", "", "PUBLIC_URL must not contain a space"),
        # urlsplit drops a tab without a word: "fragrancesync" would have been registered.
        ("http://fragrance\tsync:9098/notifications", "", "PUBLIC_URL must not contain a space"),
        ("http://frag<rance>:9098/notifications", "", "PUBLIC_URL's host"),
        ("http://frag%20rance:9098/notifications", "", "PUBLIC_URL's host"),
        ("http://fragrance_sync\\@evil/notifications", "", "PUBLIC_URL"),
        ("http://[not-an-address]:9098/notifications", "", "PUBLIC_URL's host in brackets"),
        # Without NOTIFY_TOKEN the guard answers a path with a token 404.
        (f"http://fragrance_sync:9098/notifications/{VALIDATION_TOKEN}", "", "NOTIFY_TOKEN is"),
        # A host ending in a number is an IPv4 address or nothing: 999.1.1.1 passed as a
        # name and resolved nowhere; 127.1 and 010.0.0.1 mean other hosts to other clients.
        ("http://999.1.1.1:9098/notifications", "", "PUBLIC_URL's host"),
        ("http://10.0.0.300/notifications", "", "PUBLIC_URL's host"),
        ("http://1.2.3.4.5/notifications", "", "PUBLIC_URL's host"),
        ("http://127.1:9098/notifications", "", "PUBLIC_URL's host"),
        ("http://010.0.0.1/notifications", "", "PUBLIC_URL's host"),
        ("http://0x7f.0.0.1/notifications", "", "PUBLIC_URL's host"),
        ("http://sync.example.0x1f/notifications", "", "PUBLIC_URL's host"),
        ("http://2130706433/notifications", "", "PUBLIC_URL's host"),
        ("http://10.0.0.5./notifications", "", "PUBLIC_URL's host"),
        ("http://255.255.255.255/notifications", "", None),
        ("http://9to5.example/notifications", "", None),
        ("http://sync.1e3/notifications", "", None),
        # The route is given the path %-decoded (uvicorn, as RFC 3986 reads escapes of
        # unreserved characters): the token written with escapes reached it, yet was refused.
        (f"http://10.0.0.5/notifications/%73{VALIDATION_TOKEN[1:]}", VALIDATION_TOKEN, None),
        (f"http://10.0.0.5/notifications%2F{VALIDATION_TOKEN}%2F", VALIDATION_TOKEN, None),
        ("http://10.0.0.5/%6Eotifications", "", None),
        (f"http://10.0.0.5/notifications/{VALIDATION_TOKEN}%3F", VALIDATION_TOKEN, "must end"),
        (f"http://10.0.0.5/notifications/{VALIDATION_TOKEN}%2Fmore", VALIDATION_TOKEN, "path"),
        ("http://10.0.0.5/notifications%2F", "", None),
        ("http://10.0.0.5/notifications%2F%2F", "", "path must"),
    ],
)
def test_public_url_is_accepted_exactly_when_the_cms_reaches_a_route_by_it(
    public_url: str, token: str, refusal: str | None
) -> None:
    """PUBLIC_URL is checked at start, and every refusal is a sentence naming it.

    A host a URL may not carry (a space, '<', a percent sign) was registered: the CMS
    rebuilt a URL no HTTP client sends to, and every change was lost without a word.
    """
    environ = {"CMS_URL": "http://cms:8080", "PUBLIC_URL": public_url, "NOTIFY_TOKEN": token}
    if refusal is None:
        assert Settings.from_env(environ).public_url == public_url
    else:
        with pytest.raises(SettingsError, match=re.escape(refusal)) as refused:
            Settings.from_env(environ)
        assert str(refused.value).startswith("PUBLIC_URL")


#: Paths (and queries) a PUBLIC_URL may end with: the start-up check and the route must agree.
ROUTED = [
    "/notifications",
    "/notifications/",
    "/notifications?from=cms",
    f"/notifications/{VALIDATION_TOKEN}",
    f"/notifications/{VALIDATION_TOKEN}/",
    f"/notifications/{VALIDATION_TOKEN}?from=cms",
    f"/notifications/%73{VALIDATION_TOKEN[1:]}",
    f"/notifications/{VALIDATION_TOKEN[:-1]}%{ord(VALIDATION_TOKEN[-1]):02X}",
    f"/notifications%2F{VALIDATION_TOKEN}",
    f"/notifications/{VALIDATION_TOKEN}%2F",
    f"/%6Eotifications/{VALIDATION_TOKEN}",
    "/%6Eotifications",
    "/notifications%2F",
    f"/notifications/x{VALIDATION_TOKEN}",
    f"/notifications/{VALIDATION_TOKEN}%3F",
    f"/notifications/{VALIDATION_TOKEN}%00",
    f"/notifications/{VALIDATION_TOKEN}%252F",
    f"/notifications/{VALIDATION_TOKEN}/more",
    f"/notifications/{VALIDATION_TOKEN}%2Fmore",
    "/notifications%2F%2F",
    "/notification",
]


@pytest.mark.parametrize("token", [VALIDATION_TOKEN, ""], ids=["token", "no-token"])
def test_the_start_up_check_accepts_a_path_exactly_when_the_running_route_stores_by_it(
    server: Server, dbname: str, tmp_path: Path, token: str
) -> None:
    """The check judged the path as written, the route takes it %-decoded (uvicorn).

    A token written with escapes reached the route but stopped the hook at start.
    Each path is sent as the CMS sends it (the simulator's concatenation, httpx)
    to a running hook; 202 must come exactly for the paths the check accepts.
    """
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, NOTIFY_TOKEN=token)
    try:
        port = urlsplit(hook.url).port
        disagreements = []
        for path in ROUTED:
            public_url = "http://127.0.0.1:9098" + path
            try:
                Settings.from_env(
                    {"CMS_URL": "http://cms:8080", "PUBLIC_URL": public_url, "NOTIFY_TOKEN": token}
                )
                accepted = True
            except SettingsError:
                accepted = False
            payload = {**listener_payload("http://127.0.0.1:9098/notifications"), "port": port}
            url = Listener.model_validate({**payload, "endpoint": path}).url()
            answer = httpx.post(url, content=b'{"fragrance_id": 1, "cost": 3}', timeout=10)
            if accepted != (answer.status_code == 202):
                disagreements.append((path, accepted, answer.status_code))
    finally:
        stop_hook(hook)
    assert disagreements == []


@pytest.mark.parametrize(
    "path",
    [
        f"/notifications/{VALIDATION_TOKEN}",
        f"/notifications%2F{VALIDATION_TOKEN}",
        f"/sync%2Fnotifications%2F%73{VALIDATION_TOKEN[1:]}%2F?from=cms",
    ],
)
def test_a_logged_public_url_carries_its_token_in_no_form(path: str) -> None:
    """The start-up check takes a token written with %-escapes: the log line must hide it too."""
    shown = redacted("http://fragrance_sync:9098" + path)
    assert shown.endswith("/notifications/<token>"), shown
    assert VALIDATION_TOKEN[1:] not in shown


def test_a_cms_that_does_not_answer_in_time_is_named_as_such_in_the_warning(
    listener_lines: _Lines,
) -> None:
    """A CMS that took the connection and never answered was warned of with nothing after ':'.

    httpx's timeouts carry no text: make run's log said "could not reach the CMS at
    http://127.0.0.1:9090 to register: " and stopped there.
    """
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        outcomes: list[str] = []

        async def one_attempt() -> None:
            tried = asyncio.Event()

            def observe(outcome: str) -> None:
                outcomes.append(outcome)
                tried.set()

            task = asyncio.create_task(
                keep_registered(
                    f"http://127.0.0.1:{port}",
                    "http://fragrance_sync:9098/notifications",
                    every=60,
                    retry=60,
                    observe=observe,
                    timeout=0.2,
                )
            )
            await asyncio.wait_for(tried.wait(), 30)
            task.cancel()

        asyncio.run(one_attempt())
    assert outcomes == ["unreachable"]
    (message,) = listener_lines.messages
    assert message == (
        f"could not reach the CMS at http://127.0.0.1:{port} to register: "
        "no answer within 0.2 s (ReadTimeout)"
    )
