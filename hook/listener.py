"""Keep the hook registered as the CMS's one webhook listener.

The CMS holds its listener in memory only: after a restart nobody is
registered and every change is lost until someone registers again. So the
hook registers at start (retrying until the CMS answers) and again on a
timer, which also takes the listener back if someone else replaced it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

import httpx

from hook.log_limit import LogLimit

log = logging.getLogger("hook.listener")


def redacted(public_url: str) -> str:
    """The URL for a log line: the path's token, the only secret the CMS sends, replaced.

    Found in the path as the route reads it (%-decoded): ``/notifications%2F<token>``
    reaches the route too, and its token was logged whole. The prefix is shown
    escaped again, so a decoded line break cannot split the log line.
    """
    parts = urlsplit(public_url)
    prefix, marker, _token = routed_path(parts.path).partition("/notifications/")
    if not marker:
        return public_url
    prefix = quote(prefix, safe="/")
    return parts._replace(path=f"{prefix}/notifications/<token>", query="").geturl()


#: The hook's routes (``hook/notifications.py``), after any prefix a proxy in front strips.
ROUTE_PATH = re.compile(r".*/notifications(?:/(?P<token>[^/]+))?/?")

#: A host name as DNS and the CMS's HTTP client take it (lower case: urlsplit lowers it).
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?")

#: A host's last label that makes it a number (WHATWG's "ends in a number"): digits, or hex.
NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")

#: What urlsplit drops without a word (WHATWG): "fragrance\tsync" became "fragrancesync".
BLANK_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def routed_path(path: str) -> str:
    """The path as the hook's routes see it: %-escapes decoded, as uvicorn does for the app.

    ``/notifications/%733cret...`` reaches ``/notifications/{token}`` with the
    token ``s3cret...``: RFC 3986 makes an escaped unreserved character the
    same URL, and the start-up check must judge what the route will be given.
    """
    return unquote(path) if "%" in path else path


def route_token(public_url: str) -> str | None:
    """The token segment of PUBLIC_URL's route (``/notifications/<token>``), None without one."""
    found = ROUTE_PATH.fullmatch(routed_path(urlsplit(public_url).path))
    return None if found is None else found["token"]


def _valid_host(host: str) -> bool:
    """An IP address (IPv6 came in brackets) or a DNS host name: what a URL's host may be.

    A name whose last label is a number (``999.1.1.1``, ``10.0.0.300``, ``127.1``,
    ``0x7f.0.0.1``) is no DNS name (no top-level domain is numeric): it must be an
    IPv4 address in its usual four-number form. ``999.1.1.1`` passed as a name and
    resolved nowhere; ``127.1`` and ``010.0.0.1`` mean different hosts to
    different clients (WHATWG, inet_aton).
    """
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    if NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return HOST_NAME.fullmatch(host) is not None


def listener_payload(public_url: str) -> dict[str, object]:
    """The CMS's listener body for our public notifications URL.

    The CMS rebuilds the URL as ``host + ":" + port + endpoint``; a URL whose
    rebuilt form could not reach one of the hook's routes is refused here (at
    start, through the settings), since the CMS ignores every answer and the
    changes it sent there would be lost without a word.
    """
    if BLANK_OR_CONTROL.search(public_url):
        raise ValueError(
            "PUBLIC_URL must not contain a space, tab, newline or other control character"
        )
    try:
        parts = urlsplit(public_url)
    except ValueError:  # urlsplit's own sentence names neither the variable nor the rule
        raise ValueError("PUBLIC_URL's host in brackets must be an IPv6 address") from None
    shown = redacted(public_url) if parts.password is None else "<with a password>"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"PUBLIC_URL must be an http(s) URL, got {shown!r}")
    if parts.username is not None:
        raise ValueError("PUBLIC_URL must not carry a user or password: the CMS sends none")
    if not _valid_host(parts.hostname):
        raise ValueError(
            f"PUBLIC_URL's host must be a host name (letters, digits, '-', '_', '.', not "
            f"ending in a number) or an IP address (IPv4 as four numbers 0 to 255, IPv6 in "
            f"brackets), got {parts.hostname!r}"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"PUBLIC_URL's port must be a number from 1 to 65535, got {shown!r}")
    port = port or (443 if parts.scheme == "https" else 80)
    endpoint = parts.path if parts.path not in ("", "/") else "/notifications"
    if not ROUTE_PATH.fullmatch(routed_path(endpoint)):
        raise ValueError(
            "PUBLIC_URL's path must end with /notifications or /notifications/<NOTIFY_TOKEN> "
            f"(a proxy's prefix before it is fine): the hook has no other route, got {shown!r}"
        )
    if parts.query:
        endpoint += "?" + parts.query
    # An IPv6 address keeps its brackets: "http://::1:9098/..." is no URL.
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return {"host": f"{parts.scheme}://{host}", "port": port, "endpoint": endpoint}


#: What one registration came to, the label of ``fragrance_sync_cms_registrations_total``.
OUTCOMES = ("accepted", "refused", "unreachable")


def why(exc: httpx.HTTPError, client: httpx.AsyncClient) -> str:
    """What went wrong, in words: httpx's timeouts carry no text of their own.

    A CMS that took the connection and never answered was warned of as
    "could not reach the CMS at ... to register: ", with nothing after it.
    """
    if isinstance(exc, httpx.TimeoutException):
        step = {
            httpx.ConnectTimeout: ("no connection", client.timeout.connect),
            httpx.WriteTimeout: ("the registration not sent", client.timeout.write),
            httpx.PoolTimeout: ("no connection", client.timeout.pool),
        }.get(type(exc), ("no answer", client.timeout.read))
        what, waited = step
        within = f" within {waited:g} s" if waited is not None else ""
        return f"{what}{within} ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


async def register_once(
    client: httpx.AsyncClient, cms_url: str, public_url: str, warn: LogLimit | None = None
) -> str:
    """Register once; one of OUTCOMES. Failures are warned through ``warn``."""
    say = log if warn is None else warn
    try:
        answer = await client.post(
            cms_url.rstrip("/") + "/listener", json=listener_payload(public_url)
        )
    except httpx.HTTPError as exc:
        say.warning("could not reach the CMS at %s to register: %s", cms_url, why(exc, client))
        return "unreachable"
    if answer.is_success:
        return "accepted"
    say.warning("the CMS refused the listener registration: HTTP %d", answer.status_code)
    return "refused"


async def keep_registered(
    cms_url: str,
    public_url: str,
    every: float,
    retry: float = 2.0,
    observe: Callable[[str], None] = lambda outcome: None,
    timeout: float = 5.0,
) -> None:
    """Register now (retrying every ``retry`` s), then again every ``every`` s, until cancelled.

    ``observe`` is told each registration's outcome (one of OUTCOMES), for /metrics: a
    CMS that refuses or cannot be reached gets no change to us, and the log alone said so.
    ``timeout``: seconds a registration waits for each step (connect, send, answer).
    """
    # httpx logs every request at INFO: a line per registration, every few seconds for
    # good. This function says what matters (registered, or why not) itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # A CMS down for a night is retried every `retry` s: one warning a minute, with a count.
    warn = LogLimit(log, 60.0)
    async with httpx.AsyncClient(timeout=timeout) as client:
        registered = False
        while True:
            outcome = await register_once(client, cms_url, public_url, warn)
            observe(outcome)
            ok = outcome == "accepted"
            if ok and not registered:
                # Logs reach more people than the token may (docker compose logs).
                log.info("registered %s as the CMS listener at %s", redacted(public_url), cms_url)
            registered = ok
            await asyncio.sleep(every if ok else retry)
