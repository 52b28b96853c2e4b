"""What one merge call costs the database whatever it holds, and what each delivery adds.

``python bench/call_cost.py`` starts its own durable PostgreSQL with bench's
settings, stages bench's CMS-like backlog and takes its bodies. For each
batch size (``--sizes``), on one connection as the hook makes them: stores
of that many bodies by ``sync.store_many``, each followed by the merger's
``sync.apply_received`` limited to that many, each call its own transaction.
What is measured is the CPU time of the connection's backend (user and
system, from ``/proc``), the stores and the merges apart, so neither the
client nor the machine's other jobs count. The sizes alternate round by
round, and each size starts from the same fragrances (a fresh copy of the
staged database).

Per size it reports the median over the rounds of the backend's CPU per
call and per delivery, and what each delivery added to a merge call from
the size before (the slope between two sizes). A merge of one pays mostly
for the call itself; where the added cost per delivery stays below the cost
per delivery of the hook's batches, larger merges would cost the database
less per delivery. It writes bench/results/<time>-call-cost.md; compare
figures of one run only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

from hook.ingest import STORE_MANY  # noqa: E402

#: The merger's call, but taking exactly one batch: ``sync.apply_received(size)``.
APPLY = "select inbox_id, status, reasons::text from sync.apply_received(%s)"

#: Clock ticks per second of /proc's CPU times.
TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(pid: int) -> float:
    """User plus system CPU a backend has used so far."""
    return sum(bench._stat_fields(pid)[bench.UTIME : bench.CUTIME]) / TICKS


def one_size(
    pg: bench.ThrowawayPostgresql, bodies: list[bytes], size: int, deliveries: int
) -> dict[str, float]:
    """Store and merge ``deliveries`` bodies in batches of ``size`` on a fresh copy."""
    name = f"cost_{size}_{time.monotonic_ns()}"
    with psycopg.connect(bench.url(pg, "postgres"), autocommit=True) as admin:
        admin.execute(f"create database {name} template staged")
    try:
        with psycopg.connect(bench.url(pg, name), autocommit=True) as conn:
            conn.execute("update sync.settings set apply_on_receipt = true")
            pid = conn.info.backend_pid
            calls = max(1, deliveries // size)
            batches = [
                bodies[(i * size) % len(bodies) : (i * size) % len(bodies) + size]
                for i in range(calls)
            ]
            # Warm the session's plans and caches, as the hook's long-lived connections are.
            for batch in batches[:3]:
                store(conn, batch)
                conn.execute(APPLY, [size]).fetchall()
            stored = merged = 0.0
            applied = 0
            for batch in batches:
                before = backend_cpu_seconds(pid)
                store(conn, batch)
                middle = backend_cpu_seconds(pid)
                applied += len(conn.execute(APPLY, [size]).fetchall())
                stored += middle - before
                merged += backend_cpu_seconds(pid) - middle
            if applied != calls * size:
                raise SystemExit(f"call_cost: {applied} merged of {calls * size} stored")
    finally:
        with psycopg.connect(bench.url(pg, "postgres"), autocommit=True) as admin:
            admin.execute(f"drop database {name}")
    return {
        "calls": calls,
        "store_ms_per_call": 1000 * stored / calls,
        "merge_ms_per_call": 1000 * merged / calls,
        "merge_us_per_delivery": 1e6 * merged / (calls * size),
    }


def store(conn: psycopg.Connection, batch: list[bytes]) -> None:
    """One store as the hook makes it."""
    n = len(batch)
    keys = [uuid.uuid4() for _ in batch]
    conn.execute(STORE_MANY, [batch, ["application/json"] * n, [None] * n, [None] * n, keys])


def markdown(result: dict[str, Any]) -> list[str]:
    """The report's lines."""
    lines = [
        f"# Merge call cost, {result['started_at']}",
        "",
        f"{result['deliveries']:,} CMS-like deliveries per size and round, {result['rounds']} "
        "rounds, sizes alternating; each store and each merge its own transaction, on one "
        "connection. CPU time of that connection's backend, median over the rounds.",
        "",
        "| deliveries per call | calls | store ms per call | merge ms per call "
        "| merge us per delivery | merge us per delivery added from the size before |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    before: tuple[int, float] | None = None
    for size, row in result["sizes"].items():
        added = (
            "-"
            if before is None or size == before[0]
            else f"{1000 * (row['merge_ms_per_call'] - before[1]) / (size - before[0]):.0f}"
        )
        lines.append(
            f"| {size} | {row['calls']} | {row['store_ms_per_call']:.3f} "
            f"| {row['merge_ms_per_call']:.3f} | {row['merge_us_per_delivery']:.0f} | {added} |"
        )
        before = (size, row["merge_ms_per_call"])
    return lines


def main() -> int:
    """Stage, measure each size in turn, write bench/results/<time>-call-cost.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--deliveries", type=int, default=2048, help="per size and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    per_size: dict[int, list[dict[str, float]]] = {size: [] for size in args.sizes}
    with bench.throwaway_postgres() as pg:
        bench.log(f"PostgreSQL on port {pg.settings['port']}; migrating and staging")
        bench.prepare_database(pg, "bench")
        bench.stage_backlog(pg, "staged", args.deliveries)
        with psycopg.connect(bench.url(pg, "staged"), autocommit=True) as conn:
            bodies = [row[0] for row in conn.execute("select body from sync.inbox order by id")]
            conn.execute("truncate sync.inbox")
            conn.execute("vacuum analyze")
        for round_ in range(args.rounds):
            for size in args.sizes[:: 1 if round_ % 2 == 0 else -1]:
                measured = one_size(pg, bodies, size, args.deliveries)
                per_size[size].append(measured)
                bench.log(
                    f"round {round_ + 1} size {size}: merge {measured['merge_ms_per_call']:.3f} "
                    f"ms per call, store {measured['store_ms_per_call']:.3f}"
                )
    sizes = {
        size: {
            key: statistics.median(r[key] for r in runs)
            for key in ("calls", "store_ms_per_call", "merge_ms_per_call", "merge_us_per_delivery")
        }
        for size, runs in per_size.items()
    }
    result = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deliveries": args.deliveries,
        "rounds": args.rounds,
        "sizes": dict(sorted(sizes.items())),
    }
    label = re.sub(r"[^A-Za-z0-9._-]", "_", args.label)
    bench.write_report(markdown(result), started, "call-cost" + (f"-{label}" if label else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
