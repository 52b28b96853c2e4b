"""Where the merge's time goes, statement by statement, today beside a baseline.

``make bench-profile`` (``BENCH_ARGS="--baseline c5f8f8b"`` to compare) starts
its own durable PostgreSQL with pg_stat_statements tracking nested statements,
stages one CMS-like backlog (the one ``make bench`` merges) in today's
database and, with ``--baseline``, the very same bodies and fragrances in a
database the baseline's migrations built. Each run merges a fresh copy with
``sync.apply_pending``; the two sides alternate run by run. It reports, per
side, every statement's median time per 1,000 changes.

``--hook N`` profiles the hook's path instead: the first N bodies of the
backlog, stored 16 at a time by the hook's own ``sync.store_many`` call, each
store followed by the merger's ``sync.apply_received`` (a side without those
functions cannot be profiled so).

Nested statements are counted inside the statement that calls them too: a
function's line includes what it calls. Tracking costs both sides alike, so
compare the two columns of one report, never a figure with ``make bench``'s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

from hook.ingest import STORE_MANY  # noqa: E402
from hook.merger import APPLY_RECEIVED  # noqa: E402

#: Deliveries per store on the hook's path: what one batch of the hook holds at 16 connections.
HOOK_BATCH = 16

#: bench's server settings, with every statement (nested ones too) counted.
POSTGRES_ARGS = (
    bench.POSTGRES_ARGS + " -c shared_preload_libraries=pg_stat_statements"
    " -c pg_stat_statements.track=all -c pg_stat_statements.max=10000"
)

#: The statements of one database, by total time; calls and time summed over plans.
STATEMENTS = """
select regexp_replace(s.query, '\\s+', ' ', 'g') as query, sum(s.calls)::bigint,
       sum(s.total_exec_time)
from pg_stat_statements as s
join pg_catalog.pg_database as d on d.oid = s.dbid
where d.datname = %s and s.query !~* 'pg_stat_statements_reset'
group by 1
"""


def merge_once(
    pg: bench.ThrowawayPostgresql, template: str, batch: int, hook: int, hook_batch: int
) -> dict[str, Any]:
    """Merge a fresh copy of ``template``: elapsed ms per 1,000 changes, and each statement's.

    With ``hook``, its first ``hook`` pending bodies go through the hook's two
    calls instead, ``hook_batch`` at a time, on an empty inbox.
    """
    name = f"{template}_profiled"
    with psycopg.connect(bench.url(pg, "postgres"), autocommit=True) as admin:
        admin.execute(f"drop database if exists {name}")
        admin.execute(f"create database {name} template {template}")
    try:
        with psycopg.connect(bench.url(pg, name), autocommit=True) as conn:
            conn.execute("create extension if not exists pg_stat_statements")
            if hook:
                count, elapsed = through_the_hook(conn, hook, hook_batch)
            else:
                count, elapsed = through_apply_pending(conn, batch)
            rows = conn.execute(STATEMENTS, [name]).fetchall()
    finally:
        with psycopg.connect(bench.url(pg, "postgres"), autocommit=True) as admin:
            admin.execute(f"drop database if exists {name}")
    per_thousand = 1000 / count
    return {
        "ms": elapsed * 1000 * per_thousand,
        "statements": {q: (calls, ms * per_thousand) for q, calls, ms in rows},
    }


def through_apply_pending(conn: psycopg.Connection, batch: int) -> tuple[int, float]:
    """Merge every pending change with ``apply_pending(batch)``: how many, and the seconds."""
    count = conn.execute("select count(*) from sync.inbox where status = 'pending'").fetchone()[0]
    conn.execute("select pg_stat_statements_reset()")
    started = time.perf_counter()
    while conn.execute("select processed from sync.apply_pending(%s)", [batch]).fetchone()[0]:
        pass
    return count, time.perf_counter() - started


def through_the_hook(
    conn: psycopg.Connection, count: int, batch_size: int = HOOK_BATCH
) -> tuple[int, float]:
    """Store the first ``count`` pending bodies again as the hook does, merging after each store."""
    bodies = [
        row[0]
        for row in conn.execute(
            "select body from sync.inbox where status = 'pending' order by id limit %s", [count]
        )
    ]
    bench.empty_tables(conn, "sync.inbox")
    conn.execute("update sync.settings set apply_on_receipt = true")
    conn.execute("select pg_stat_statements_reset()")
    started = time.perf_counter()
    for first in range(0, len(bodies), batch_size):
        batch = bodies[first : first + batch_size]
        n = len(batch)
        keys = [uuid.uuid4() for _ in batch]
        conn.execute(STORE_MANY, [batch, ["application/json"] * n, [None] * n, [None] * n, keys])
        conn.execute(APPLY_RECEIVED, [1000]).fetchall()
    return len(bodies), time.perf_counter() - started


def median_statements(runs: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
    """Each statement's median ms per 1,000 changes over the runs (0 where a run lacks it)."""
    queries = {q for r in runs for q in r["statements"]}
    table = []
    for query in queries:
        ms = [r["statements"].get(query, (0, 0.0))[1] for r in runs]
        calls = max(r["statements"].get(query, (0, 0.0))[0] for r in runs)
        table.append((query, calls, statistics.median(ms)))
    return sorted(table, key=lambda row: row[2], reverse=True)


def markdown(result: dict[str, Any], top: int) -> list[str]:
    """The report's lines: totals side by side, then each side's heaviest statements."""
    if result["hook"]:
        what = (
            f"The hook's path: {result['hook']:,} changes stored {result['hook_batch']} at a "
            "time by "
            "`sync.store_many`, each store followed by `sync.apply_received`"
        )
    else:
        what = f"{result['backlog']:,} staged changes, `apply_pending({result['batch']})`"
    lines = [
        f"# Merge profile, {result['started_at']}",
        "",
        f"{what}, {result['runs']} runs per side, alternating. Times are medians in ms per "
        "1,000 changes; a statement's line includes the statements it calls.",
        "",
        "| side | ms per 1,000 changes (runs) |",
        "| --- | --- |",
    ]
    for side in result["sides"]:
        runs = ", ".join(f"{r['ms']:.0f}" for r in side["runs"])
        lines.append(f"| {side['name']} | {side['median_ms']:.0f} ({runs}) |")
    for side in result["sides"]:
        lines += [
            "",
            f"## {side['name']}",
            "",
            "| ms | calls | statement |",
            "| ---: | ---: | --- |",
        ]
        for query, calls, ms in side["statements"][:top]:
            text = query[:140].replace("|", "\\|")
            lines.append(f"| {ms:.1f} | {calls} | `{text}` |")
    return lines


def main() -> int:
    """Stage, merge each side in turn, write bench/results/<time>-profile.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--hook", type=int, default=0, metavar="N", help="profile the hook's path for N changes"
    )
    parser.add_argument(
        "--hook-batch",
        type=int,
        default=HOOK_BATCH,
        metavar="N",
        help="deliveries per store and merge on the hook's path",
    )
    parser.add_argument("--baseline", default="", metavar="GIT_REF")
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    with (
        tempfile.TemporaryDirectory(prefix="fragrance-profile-", ignore_cleanup_errors=True) as tmp,
        bench.throwaway_postgres(POSTGRES_ARGS) as pg,
    ):
        workdir = Path(tmp)
        bench.log(f"PostgreSQL on port {pg.settings['port']}; migrating and staging")
        bench.prepare_database(pg, "bench")
        bench.stage_backlog(pg, "staged_today", args.backlog)
        sides = {"today": "staged_today"}
        if args.baseline:
            tree = bench.export_baseline(args.baseline, workdir)
            bench.prepare_database(pg, "bench_baseline", tree / "migrations")
            bench.stage_same_backlog(pg, "staged_today", "bench_baseline", "staged_baseline")
            sides[args.baseline] = "staged_baseline"
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for repeat in range(args.runs):
            for name in list(sides)[:: 1 if repeat % 2 == 0 else -1]:
                runs[name].append(
                    merge_once(pg, sides[name], args.batch, args.hook, args.hook_batch)
                )
                bench.log(f"profile run {repeat + 1} {name}: {runs[name][-1]['ms']:.0f} ms/1000")
    result = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "backlog": args.backlog,
        "batch": args.batch,
        "hook": args.hook,
        "hook_batch": args.hook_batch,
        "runs": args.runs,
        "sides": [
            {
                "name": name,
                "runs": rs,
                "median_ms": statistics.median(r["ms"] for r in rs),
                "statements": median_statements(rs),
            }
            for name, rs in runs.items()
        ],
    }
    label = re.sub(r"[^A-Za-z0-9._-]", "_", args.label)
    bench.write_report(
        markdown(result, args.top), started, "profile" + (f"-{label}" if label else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
