"""Prometheus metrics of the hook, served at ``GET /metrics``.

Two kinds of numbers. The hook's own, counted in this process since it
started: deliveries by outcome, rejects by reason code, request latency and
body sizes. And the database's, read at each scrape through
``sync.metrics()`` (a security-definer function: the hook still reads no
table): health verdict, pending and quarantined deliveries, how long the
oldest pending one has waited, the last delivery's time and age, what the
last drift check found and when, and the CMS snapshot's age. Every
label value comes from a fixed list, so a hostile payload cannot create
series.

With ``WORKERS`` above 1 a scrape reaches one worker, and the counters are
the sum over every worker of the host: the workers run in prometheus_client's
multiprocess mode, each writing its counts into files of one directory
(``hook.serve.workers_metrics_dir``, emptied at start), which any worker's
``/metrics`` reads whole. Each worker once exported its own counts, and
scrapes that reached one then the other saw counters go down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from psycopg_pool import PoolTimeout

from hook import connections
from hook.ingest import DatabaseDownError
from hook.listener import OUTCOMES as REGISTRATION_OUTCOMES
from hook.log_limit import LogLimit
from hook.serve import METRICS_DIR_VARIABLE
from hook.shared_read import SharedRead, read_row

log = logging.getLogger("hook.metrics")

# The *_created series double the output and no dashboard of ours reads them.
disable_created_metrics()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Every reason code the data rules can write (sync.rule; README, "Data rules"). Others count
#: as "other", so neither a payload nor a new rule can create series.
KNOWN_CODES = frozenset(
    {
        "body.empty",
        "body.not_utf8",
        "body.unsupported_unicode",
        "body.not_json",
        "body.number_out_of_range",
        "body.duplicate_key",
        "body.not_object",
        "fragrance_id.missing",
        "fragrance_id.null",
        "fragrance_id.not_integer",
        "fragrance_id.out_of_range",
        "fragrance_id.unknown",
        "field.unknown",
        "name.null",
        "name.not_string",
        "name.blank",
        "name.too_long",
        "name.control_character",
        "name.bidi_control",
        "name.invisible_character",
        "name.untrimmed",
        "name.not_normalized",
        "name.stacked_marks",
        "name.mixed_script",
        "name.leading_mark",
        "name.unassigned_character",
        "name.replacement_character",
        "name.spreadsheet_formula",
        "name.double_encoded",
        "name.placeholder",
        "name.html",
        "name.duplicate",
        "name.lookalike",
        "description.null",
        "description.not_string",
        "description.too_long",
        "description.control_character",
        "description.c1_control",
        "description.bidi_control",
        "description.invisible_character",
        "description.untrimmed",
        "description.not_normalized",
        "description.stacked_marks",
        "description.mixed_script",
        "description.leading_mark",
        "description.unassigned_character",
        "description.replacement_character",
        "description.spreadsheet_formula",
        "description.double_encoded",
        "description.placeholder",
        "description.html",
        "cost.null",
        "cost.not_number",
        "cost.negative",
        "cost.not_finite",
        "cost.too_large",
        "cost.too_precise",
        "cost.fractional",
        "cost.implausible",
        "forbidden.null",
        "forbidden.not_boolean",
        "internal.error",
    }
)
#: Outcomes of a stored delivery, as sync.receive answers them.
STORED = ("applied", "ignored", "rejected", "pending", "spooled")
#: Outcomes of applying a delivery (sync.apply_received).
APPLIED = ("applied", "ignored", "rejected")
#: Outcomes of a delivery the hook did not store, by HTTP status (404, 403 and 429 come
#: from the delivery guard, when its checks are on).
REFUSED = {
    # The sender closed its connection before its whole body arrived: nothing was stored
    # (it may parse as half a change), and the CMS never sends it again. Counted nowhere,
    # such lost changes showed only as a log line (hostile review).
    400: "cut_short",
    404: "not_found",  # a missing or wrong token (with NOTIFY_TOKEN), or no such path
    403: "forbidden",
    408: "too_slow",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
    500: "error",
}
#: Answers written below the app (hook/connections.py) before a request's head was read
#: whole, counted whatever their path, since that is unknown: headers past
#: MAX_HEADER_BYTES (431), the 503 to a connection past MAX_CONNECTIONS with every
#: connection busy and as many waiting (the CMS never retries: a change lost, which
#: showed only as a limited log line, hostile review), and the parser's 400 to a request
#: HTTP/1.1 does not allow (a fragment, two framings, two Hosts: counted nowhere, or as
#: cut_short when its body's framing broke mid-body, hostile review).
BELOW_APP = (
    connections.HEADERS_TOO_LARGE,
    connections.TOO_MANY_CONNECTIONS,
    connections.BAD_REQUEST,
)
#: Routes timed under their own label; anything else is "other".
ROUTES = frozenset({"/notifications", "/metrics", "/status", "/healthz"})
VERDICTS = ("ok", "warn", "critical")

# The last column is this session's own: whether the database takes writes from the
# hook at all. A standby not yet promoted, or default_transaction_read_only, answers
# every read (so database_up says 1) and refuses every delivery and every spooled one
# (so they wait in the spool): without it, the only alert was a "stuck drain" page
# that sent the person on call to the hook's grants and a restart (hostile review).
SNAPSHOT = (
    "select verdict, extract(epoch from last_received_at)::float8, seconds_since_last_delivery,"
    " pending, quarantined, open_findings, oldest_pending_age_seconds,"
    " current_setting('transaction_read_only') = 'off',"
    " drift_differences, drift_check_age_seconds, snapshot_age_seconds from sync.metrics()"
)


def code_label(code: object) -> str:
    """A reason code as a label value: one of the known codes, else ``other``."""
    return code if isinstance(code, str) and code in KNOWN_CODES else "other"


def status_label(status: object) -> str:
    """A receipt status as a label value: one of the known outcomes, else ``other``."""
    return status if isinstance(status, str) and status in STORED else "other"


class _Children(dict[str, Any]):
    """A labelled metric's series by label value, made up front (exported from 0) or on first use.

    prometheus_client's ``labels()`` builds a key and takes a lock at every
    call: 2% of the hook's own CPU per request (py-spy, bench/README.md step 36).
    """

    def __init__(self, metric: Counter | Histogram, values: Iterable[str]) -> None:
        super().__init__((value, metric.labels(value)) for value in values)
        self.metric = metric

    def __missing__(self, value: str) -> Any:
        child = self[value] = self.metric.labels(value)
        return child


class HookMetrics:
    """The hook's own counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        """Create every series up front, so each one is exported from 0."""
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "fragrance_sync_deliveries",
            "Deliveries answered by this hook process, by outcome: pending (stored), spooled "
            "(kept on the host's disk), or cut_short (the sender closed before its whole body "
            "arrived), not_found, forbidden, too_slow, too_large, headers_too_large (any path), "
            "too_many_connections (a 503 past MAX_CONNECTIONS, any path), bad_request (a 400 "
            "of the HTTP parser, any path), rate_limited, "
            "unavailable, error (not stored); applied, ignored, rejected only "
            "from a hook of an earlier release.",
            ["status"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "fragrance_sync_outcomes",
            "Deliveries this hook process applied (its merger, sync.apply_received), by "
            "outcome: applied, ignored, rejected.",
            ["status"],
            registry=self.registry,
        )
        self.rejects = Counter(
            "fragrance_sync_rejects",
            "Error reasons on deliveries this hook process rejected when applying them, by "
            "reason code (a code outside the known list counts as other).",
            ["code"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "fragrance_sync_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.body_size = Histogram(
            "fragrance_sync_delivery_body_bytes",
            "Size of stored delivery bodies.",
            buckets=(64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576),
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "fragrance_sync_spool_depth",
            "Deliveries waiting in this host's spool (fsynced, answered 202) "
            "until the database takes them.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.spool_set_aside = Gauge(
            "fragrance_sync_spool_set_aside",
            "Spooled deliveries the database refused (not an outage), set aside in this "
            "host's spool until someone replays or drops them (python -m hook.spool list).",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.spool_damaged = Gauge(
            "fragrance_sync_spool_damaged",
            "Records of this host's spool that it could not read (a damaged page) or make a "
            "delivery of (a damaged key, time or text), moved aside with what could be read "
            "(python -m hook.spool damaged).",
            registry=self.registry,
            # Of the host's spool, set by the worker a scrape reaches just before it reads
            # them: with WORKERS above 1, the value that worker set, not one per worker.
            multiprocess_mode="mostrecent",
        )
        self.registrations = Counter(
            "fragrance_sync_cms_registrations",
            "POST /listener calls this hook process made to the CMS (CMS_URL), by outcome: "
            "accepted, refused (an HTTP error status), unreachable (no answer within 5 s).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in REGISTRATION_OUTCOMES:
            self.registrations.labels(outcome)
        self.delivered = _Children(self.deliveries, (*STORED, *REFUSED.values(), *BELOW_APP))
        #: What /metrics exports of these: this process's registry, or with WORKERS above 1
        #: (the multiprocess directory set), the sum over every worker's files.
        self.exported = self.registry
        if os.environ.get(METRICS_DIR_VARIABLE):
            self.exported = CollectorRegistry()
            MultiProcessCollector(self.exported)
        self.applied = _Children(self.outcomes, APPLIED)
        self.durations = _Children(self.request_duration, (*ROUTES, "other"))

    def observe_registration(self, outcome: str) -> None:
        """Count one listener registration by its outcome (hook.listener.OUTCOMES)."""
        self.registrations.labels(outcome).inc()

    def observe_receipt(self, size: int, status: str) -> None:
        """Count one answered delivery by the status it was answered with, and its body size."""
        self.delivered[status_label(status)].inc()
        self.body_size.observe(size)

    def observe_outcome(self, status: str, reasons: Iterable[dict[str, Any]]) -> None:
        """Count one delivery this process applied, by outcome and, when rejected, error codes."""
        self.applied[status_label(status)].inc()
        if status == "rejected":
            for reason in reasons:
                if reason.get("severity") == "error":
                    self.rejects.labels(code_label(reason.get("code"))).inc()


class _DatabaseSnapshot(Collector):
    """The database's numbers for one scrape (or database_up 0 when it cannot be read)."""

    def __init__(self, row: tuple[Any, ...] | None) -> None:
        self.row = row

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "fragrance_sync_database_up",
            "1 when the hook could read sync.metrics() for this scrape, else 0.",
            value=0 if self.row is None else 1,
        )
        yield up
        if self.row is None:
            return
        verdict, last_at, age, pending, quarantined, open_findings, oldest, writable = self.row[:8]
        differences, check_age, snapshot_age = self.row[8:]
        yield GaugeMetricFamily(
            "fragrance_sync_database_writable",
            "1 when the database takes writes from this hook, 0 when it refuses every one "
            "(read-only: a standby not promoted, or default_transaction_read_only), so "
            "deliveries wait in the spool.",
            value=1 if writable else 0,
        )
        health = GaugeMetricFamily(
            "fragrance_sync_health",
            "Verdict of sync.health: 1 on the current verdict (ok, warn, critical), 0 on others.",
            labels=["verdict"],
        )
        for name in VERDICTS:
            health.add_metric([name], 1 if verdict == name else 0)
        yield health
        yield GaugeMetricFamily(
            "fragrance_sync_pending_deliveries",
            "Deliveries stored but not yet applied (sync.inbox status pending).",
            value=pending,
        )
        yield GaugeMetricFamily(
            "fragrance_sync_oldest_pending_age_seconds",
            "Seconds the oldest pending webhook delivery has waited since it was received, "
            "while sync.settings.apply_on_receipt is on: what the merger (sync.apply_received) "
            "has yet to apply; 0 when none waits. Growing: the merger stalled, or a "
            "transaction holds a fragrance. Deliveries a DBA holds back do not count (all "
            "of them while apply_on_receipt is off, a repair staged with p_apply => false): "
            "sync.health warns about those.",
            value=oldest,
        )
        yield GaugeMetricFamily(
            "fragrance_sync_quarantined_deliveries",
            "Rejected deliveries waiting for a retry or a discard (sync.quarantine).",
            value=quarantined,
        )
        findings = GaugeMetricFamily(
            "fragrance_sync_open_findings",
            "Fragrances breaking each data rule now (sync.open_finding), one series per rule "
            "that judges the catalog (a fixed list from sync.rule).",
            labels=["rule"],
        )
        by_label: dict[str, float] = {}
        for rule, count in (open_findings or {}).items():
            by_label[code_label(rule)] = by_label.get(code_label(rule), 0) + count
        for rule, count in sorted(by_label.items()):
            findings.add_metric([rule], count)
        yield findings
        if differences is not None:
            yield GaugeMetricFamily(
                "fragrance_sync_drift_differences",
                "Fragrances the last successful drift check found off the CMS snapshot: missing, "
                "extra, or differing by what the library did not set after the snapshot was "
                "taken (sync.health.drift_differences; absent: no check). Above 0: repair.",
                value=differences,
            )
        if check_age is not None:
            yield GaugeMetricFamily(
                "fragrance_sync_drift_check_age_seconds",
                "Seconds since the last successful drift check finished (absent: none ever).",
                value=check_age,
            )
        if snapshot_age is not None:
            yield GaugeMetricFamily(
                "fragrance_sync_snapshot_age_seconds",
                "Seconds since the CMS snapshot loaded now was taken (absent: none loaded); "
                "past sync.settings.snapshot_warn_after, sync.health warns.",
                value=snapshot_age,
            )
        if last_at is not None:
            yield GaugeMetricFamily(
                "fragrance_sync_last_delivery_timestamp_seconds",
                "When the last delivery was received, in Unix seconds (absent: none ever).",
                value=last_at,
            )
            yield GaugeMetricFamily(
                "fragrance_sync_last_delivery_age_seconds",
                "Seconds since the last delivery was received (absent: none ever).",
                value=age,
            )


def _route(path: str) -> str:
    """The route label of a path; a secret suffix on /notifications never reaches a label."""
    if path.startswith("/notifications/"):
        return "/notifications"
    return path if path in ROUTES else "other"


class _ClientGoneError(Exception):
    """The connection closed under an answer being written: nobody is left to answer."""


def _closed_under_us(exc: RuntimeError) -> bool:
    """Whether uvloop refused a write because its transport had just closed.

    uvicorn checks for a disconnect before it writes, but uvloop closes the
    transport a moment before it reports the loss: a client that leaves
    while its answers wait (400 stuck connections, hostile review) wrote a
    traceback per answer, 62,543 log lines in one run.
    """
    return "the handler is closed" in str(exc)


#: Seconds to wait for uvloop to report a connection it has closed under an answer.
GONE_REPORTED_WITHIN = 1.0


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Timing:
    """ASGI middleware: times every request and counts deliveries that were not stored.

    It also ends quietly (one limited log line) a request whose client left
    while its answer was being written.
    """

    def __init__(self, app: ASGIApp, metrics: HookMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.gone = LogLimit(log, 10.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = message["status"]
            try:
                await send(message)
            except RuntimeError as exc:
                if _closed_under_us(exc):
                    raise _ClientGoneError from exc
                raise

        try:
            await self.app(scope, receive, send_and_watch)
        except _ClientGoneError:
            # uvloop reports the loss on a later turn of the loop: once uvicorn has
            # seen it (receive says so), it does not log an unfinished answer either.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_until_disconnected(receive), GONE_REPORTED_WITHIN)
            self.gone.log(
                logging.INFO,
                "a client left while its answer to %s was being written",
                _route(scope["path"]),
            )
        finally:
            route = _route(scope["path"])
            self.metrics.durations[route].observe(time.perf_counter() - started)
            below = scope.get(connections.REFUSED_BELOW)
            if below is not None:
                self.metrics.delivered[below].inc()
            elif route == "/notifications" and scope["method"] == "POST" and answered in REFUSED:
                self.metrics.delivered[REFUSED[answered]].inc()


def install(app: FastAPI) -> None:
    """Add the timing middleware and the ``GET /metrics`` route to the hook's app."""
    metrics = HookMetrics()
    app.state.metrics = metrics
    # What hook/connections.py answers below the app, counted like the app's refusals.
    connections.observe_refusal = lambda label: metrics.delivered[label].inc()
    app.add_middleware(_Timing, metrics=metrics)

    # Anyone may scrape: one sync.metrics() at a time per worker, its result shared by
    # the scrapes that came meanwhile, never reused after (hook/shared_read.py).
    snapshots = SharedRead(lambda: read_row(app, SNAPSHOT, ()), 0.0)
    limited = LogLimit(log, 10.0)

    @app.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        """Prometheus text format: this process's counters, then the database's numbers."""
        spooling = getattr(request.app.state, "spooling", None)
        depth, set_aside, damaged = (0, 0, 0) if spooling is None else await spooling.counts()
        metrics.spool_depth.set(depth)
        metrics.spool_set_aside.set(set_aside)
        metrics.spool_damaged.set(damaged)
        try:
            snapshot = await snapshots.get()
        except (psycopg.Error, PoolTimeout, DatabaseDownError) as exc:
            limited.warning("metrics: cannot read sync.metrics(), exporting database_up 0: %s", exc)
            snapshot = None
        database = CollectorRegistry()
        database.register(_DatabaseSnapshot(snapshot))
        body = generate_latest(metrics.exported) + generate_latest(database)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
