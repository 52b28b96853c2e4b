"""The status page, served at ``GET /status``: the sync's health as a person reads it.

Server-rendered HTML, no JavaScript, no build step. Everything shown comes
from one call to ``sync.status_report()`` (security definer: the hook still
reads no table) and goes through Jinja2's autoescaping, because delivery
bodies are whatever the network sent. A Content-Security-Policy that allows
no script at all backs the escaping up.

Anyone who reaches the CMS's port may load the page, so what deliveries
carried (bodies, the sentences of rejects and findings, which quote values,
unknown fields' names) is shown only to clients from ``STATUS_DETAIL_FROM``,
their address read as the delivery guard reads it; everyone else gets the
same page with counts and figures (ADR 0030). Both pages are rendered once
per report.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from psycopg_pool import PoolTimeout

from hook.guard import in_networks
from hook.ingest import DatabaseDownError
from hook.log_limit import LogLimit
from hook.notifications import client_address
from hook.settings import Network
from hook.shared_read import SharedRead, read_row

log = logging.getLogger("hook.status")

REPORT = "select sync.status_report(%s, %s)"
HOURS = 3
LATEST = 10
#: The page reloads itself this often (a meta refresh: no script needed).
REFRESH_SECONDS = 30
#: A report is reused this long by the page's other loads (it refreshes every 30 s).
REPORT_FRESH_FOR = 2.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
CHART_WIDTH = 720
CHART_HEIGHT = 120

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(value: str | None) -> str:
    """An ISO timestamp from the database as UTC to the second, or a dash."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_templates.filters["when"] = when


def chart(per_minute: list[dict[str, Any]], expected_interval_seconds: float) -> dict[str, Any]:
    """Bars of deliveries per minute (rejected part on top) scaled into the chart's box."""
    expected = 60 / expected_interval_seconds if expected_interval_seconds else 0
    top = max([expected * 1.5, 1, *(m["deliveries"] for m in per_minute)])
    width = CHART_WIDTH / max(len(per_minute), 1)

    def height(count: float) -> float:
        return round(count / top * CHART_HEIGHT, 2)

    bars = []
    for i, minute in enumerate(per_minute):
        total, rejected = height(minute["deliveries"]), height(minute["rejected"])
        bars.append(
            {
                "x": round(i * width, 2),
                "width": round(max(width - 0.5, 0.5), 2),
                "y": round(CHART_HEIGHT - total, 2),
                "height": total,
                "rejected_y": round(CHART_HEIGHT - rejected, 2),
                "rejected_height": rejected,
                "title": f"{when(minute['minute'])}: {minute['deliveries']} deliveries, "
                f"{minute['rejected']} rejected",
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "bars": bars,
        "expected_y": round(CHART_HEIGHT - height(expected), 2),
        "expected": round(expected, 1),
        "top": round(top, 1),
        "first": when(per_minute[0]["minute"]) if per_minute else "-",
        "last": when(per_minute[-1]["minute"]) if per_minute else "-",
    }


def render(
    report: dict[str, Any] | None,
    problem: str | None = None,
    spool: Any | None = None,
    *,
    detail: bool = False,
    detail_anywhere: bool = True,
) -> str:
    """The page for one report, or for a database that could not be read.

    ``spool`` is what the host's spool holds (``depth``, ``set_aside``), or
    None when the hook runs without one. ``detail``: show what deliveries
    carried (bodies, reject and finding sentences, unknown fields' names);
    without it the page says where they are shown (``detail_anywhere``:
    STATUS_DETAIL_FROM names a network at all).
    """
    template = _templates.get_template("status.html")
    if report is None:
        return template.render(report=None, problem=problem, refresh=REFRESH_SECONDS, spool=spool)
    # "" when never checked; None from database code that predates the field.
    checked_ago = (report["catalog_checked_ago"] or "") if "catalog_checked_ago" in report else None
    return template.render(
        report=report,
        health=report["health"],
        # A database whose code predates the count (a release being undone) lists them all.
        unknown_total=report.get("unknown_fields_total", len(report["unknown_fields"])),
        checked_ago=checked_ago,
        chart=chart(report["per_minute"], report["settings"]["expected_interval_seconds"]),
        hours=HOURS,
        refresh=REFRESH_SECONDS,
        problem=None,
        spool=spool,
        detail=detail,
        detail_anywhere=detail_anywhere,
    )


async def _read_report(app: FastAPI) -> dict[str, Any]:
    row = await read_row(app, REPORT, (HOURS, LATEST))
    assert row is not None  # a function call returns one row
    return row[0]


def _why(exc: Exception) -> str:
    """What the public page may say of a failed read: the server's own sentence, if any.

    A server error (it has a SQLSTATE) says what the server did, e.g.
    "canceling statement due to statement timeout". A client's error, a
    failed connection above all, names the database's host, port, login and
    database, and anyone may load this page: that stays in the hook's log.
    """
    if isinstance(exc, psycopg.Error) and exc.sqlstate and exc.diag.message_primary:
        return f": {exc.diag.message_primary}"
    return "; the hook's log says why, and GET /healthz which cause it is"


#: Headers a proxy adds. uvicorn reads X-Forwarded-For only from TRUSTED_PROXIES, and
#: Forwarded never: a request that carries one it did not read came through a proxy the
#: hook was not told of, so its peer's address (the proxy's) is not its client's.
FORWARDED_FOR = b"x-forwarded-for"
FORWARDED = b"forwarded"


def shows_detail(
    scope: dict[str, Any], detail_from: tuple[Network, ...], proxies_trusted: bool
) -> bool:
    """Whether this request's client may see what deliveries carried.

    Its address as the delivery guard reads it (``client_address``: the
    peer's, or the forwarded one from a proxy of TRUSTED_PROXIES, as uvicorn
    set it) must be in ``detail_from``. A forwarded header the hook does not
    read withholds the detail whatever the address: a proxy on a private
    network in front of a hook not told of it would otherwise give every
    client behind it the proxy's address, and the detail. Such a header
    never grants anything.
    """
    for name, _ in scope["headers"]:
        if name == FORWARDED or (name == FORWARDED_FOR and not proxies_trusted):
            return False
    return in_networks(client_address(scope), detail_from)


def install(
    app: FastAPI, detail_from: tuple[Network, ...] = (), proxies_trusted: bool = False
) -> None:
    """Add ``GET /status`` to the hook's app.

    ``detail_from`` is STATUS_DETAIL_FROM (empty: the detail for nobody);
    ``proxies_trusted``: TRUSTED_PROXIES names any proxy.
    """
    # Anyone may load the page: however often, one report at a time per worker,
    # reused for REPORT_FRESH_FOR seconds (hook/shared_read.py).
    reports = SharedRead(lambda: _read_report(app), REPORT_FRESH_FOR)
    limited = LogLimit(log, 10.0)
    # The pages of the last report and spool counts, with and without the detail:
    # rendering again for each of 400 clients reloading took the worker from
    # deliveries (p99 2.1 s, hostile review).
    last: list[Any] = [None, None]
    pages: dict[bool, str] = {}

    @app.get("/status", response_class=HTMLResponse, include_in_schema=False)
    async def status(request: Request) -> HTMLResponse:
        """The status page; 503 with the reason when the database cannot be read."""
        spooling = getattr(request.app.state, "spooling", None)
        spool = None if spooling is None else await spooling.counts()
        try:
            report = await reports.get()
        except (psycopg.Error, PoolTimeout, DatabaseDownError) as exc:
            limited.warning("status page: cannot read sync.status_report(): %s", exc)
            problem = f"the database cannot be read ({type(exc).__name__}){_why(exc)}"
            page = render(None, problem, spool)
            return HTMLResponse(page, status_code=503, headers=SECURITY_HEADERS)
        if last[0] is not report or last[1] != spool:
            last[:] = [report, spool]
            pages.clear()
        detail = shows_detail(request.scope, detail_from, proxies_trusted)
        page = pages.get(detail)
        if page is None:
            page = pages[detail] = render(
                report, spool=spool, detail=detail, detail_anywhere=bool(detail_from)
            )
        return HTMLResponse(page, headers=SECURITY_HEADERS)
