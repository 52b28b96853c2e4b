"""What one load of the status page and one Prometheus scrape cost the database, beside a baseline.

``python bench/status_cost.py --baseline <git ref>`` starts its own PostgreSQL
with bench's settings and builds two databases, today's code and the
baseline's, each by its own migrations. Both get the same data: the catalog
grown to ``--fragrances`` rows (bench's GROW_CATALOG), a CMS snapshot of it
that differs in every second row's cost, one drift check run, and an inbox
of ``--kept`` applied deliveries days old with ``--backlog`` pending ones
after them (a merger that stopped); with ``--findings``, the findings of a
whole catalog check open. Then ``sync.status_report(3, 10)`` (what
``GET /status`` calls) and ``sync.metrics()`` (what ``/metrics`` calls) are
called on each side in turn, the order alternating run by run. Per call: the
time the client waited (one local connection, nothing else running) and
the table rows the call read (pg_stat_xact_user_tables: rows of sequential
scans and fetched by index; an index-only scan's entries are not counted,
so the open findings it counts by rule are not either). It writes
bench/results/<time>-status-cost[-findings].md; compare its two columns, not its
figures with another run's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

CALLS = {
    "status": "select sync.status_report(3, 10)",
    "metrics": "select * from sync.metrics()",
}

SNAPSHOT = """
insert into sync.cms_snapshot (fragrance_id, name, description, cost, forbidden, source)
select f.fragrance_id, f.name, f.description,
       case when f.fragrance_id % 2 = 0 then f.cost + 1 else f.cost end, f.forbidden, 'bench'
from public.fragrances as f
"""

INBOX = """
insert into sync.inbox (body, status, processed_at, received_at)
select '\\x7b7d', 'applied', now(), now() - interval '3 days' - g * interval '10 seconds'
from generate_series(1, %(kept)s) as g;
update sync.settings set apply_on_receipt = false;
insert into sync.inbox (body, received_at)
select '\\x7b7d', now() - interval '2 days' - g * interval '1 second'
from generate_series(1, %(backlog)s) as g;
update sync.settings set apply_on_receipt = true;
"""

ROWS_READ = """
select coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0)::bigint
from pg_stat_xact_user_tables where schemaname in ('sync', 'public')
"""


def stage(pg: bench.ThrowawayPostgresql, dbname: str, args: argparse.Namespace) -> None:
    """The catalog grown, a snapshot that differs, one drift check, a kept inbox and a backlog."""
    with psycopg.connect(bench.url(pg, dbname), autocommit=True) as conn:
        copies = args.fragrances // 5000 - 1
        conn.execute(bench.GROW_CATALOG.replace("%(copies)s", str(copies)))
        conn.execute(SNAPSHOT)
        inbox = INBOX.replace("%(kept)s", str(args.kept))
        conn.execute(inbox.replace("%(backlog)s", str(args.backlog)))
        if args.findings:
            conn.execute("select count(*) from sync.check_catalog()")
        conn.execute("vacuum analyze")
        status = conn.execute("select status from sync.run_job('check_drift')").fetchone()
        assert status == ("ok",), status


def call_once(conn: psycopg.Connection, sql: str) -> tuple[float, int]:
    """Milliseconds the client waited for one call, and the table rows it read."""
    conn.execute("select pg_stat_force_next_flush()")
    with conn.transaction():
        started = time.perf_counter()
        conn.execute(sql).fetchall()
        elapsed = (time.perf_counter() - started) * 1000
        row = conn.execute(ROWS_READ).fetchone()
    assert row is not None
    return elapsed, row[0]


def main() -> int:
    """Stage both sides, call each in turn, write bench/results/<time>-status-cost.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="GIT_REF")
    parser.add_argument("--fragrances", type=int, default=200_000)
    parser.add_argument("--kept", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--findings",
        action="store_true",
        help="check the grown catalog first (sync.check_catalog), so its findings are open",
    )
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    sides = {"today": "status_today", args.baseline: "status_baseline"}
    figures: dict[str, dict[str, list[tuple[float, int]]]] = {
        side: {call: [] for call in CALLS} for side in sides
    }
    with (
        tempfile.TemporaryDirectory(
            prefix="fragrance-status-cost-", ignore_cleanup_errors=True
        ) as tmp,
        bench.throwaway_postgres() as pg,
    ):
        workdir = Path(tmp)
        bench.log(f"PostgreSQL on port {pg.settings['port']}; migrating and staging")
        bench.prepare_database(pg, sides["today"])
        tree = bench.export_baseline(args.baseline, workdir)
        bench.prepare_database(pg, sides[args.baseline], tree / "migrations")
        for dbname in sides.values():
            stage(pg, dbname, args)
        conns = {
            side: psycopg.connect(bench.url(pg, db), autocommit=True) for side, db in sides.items()
        }
        try:
            for conn in conns.values():  # one call each first: caches warm alike
                for sql in CALLS.values():
                    call_once(conn, sql)
            for repeat in range(args.runs):
                for side in list(sides)[:: 1 if repeat % 2 == 0 else -1]:
                    for call, sql in CALLS.items():
                        figures[side][call].append(call_once(conns[side], sql))
                bench.log(f"run {repeat + 1} of {args.runs}")
        finally:
            for conn in conns.values():
                conn.close()

    lines = [
        f"# Status page and scrape: database cost, today beside {args.baseline}",
        "",
        f"Started {started:%Y-%m-%dT%H:%M:%SZ}; `python bench/status_cost.py --baseline "
        f"{args.baseline}`: {args.fragrances:,} fragrances, a snapshot differing in every second "
        f"row's cost, one drift check, {args.kept:,} applied deliveries kept and {args.backlog:,} "
        f"pending{'; the catalog checked, its findings open' if args.findings else ''}; "
        f"{args.runs} calls per side, alternating. Medians.",
        "",
        f"| call | today ms | {args.baseline} ms | ratio | today rows read "
        f"| {args.baseline} rows read |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for call, sql in CALLS.items():
        today = figures["today"][call]
        base_runs = figures[args.baseline][call]
        t_ms = statistics.median(ms for ms, _ in today)
        b_ms = statistics.median(ms for ms, _ in base_runs)
        t_rows = statistics.median(rows for _, rows in today)
        b_rows = statistics.median(rows for _, rows in base_runs)
        lines.append(
            f"| `{sql}` | {t_ms:.1f} | {b_ms:.1f} | {t_ms / b_ms:.3f} "
            f"| {t_rows:,.0f} | {b_rows:,.0f} |"
        )
    lines += ["", "Every call, ms / rows read:", ""]
    for side in sides:
        for call in CALLS:
            runs = ", ".join(f"{ms:.1f}/{rows}" for ms, rows in figures[side][call])
            lines.append(f"- {side} {call}: {runs}")
    bench.write_report(lines, started, "status-cost-findings" if args.findings else "status-cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
