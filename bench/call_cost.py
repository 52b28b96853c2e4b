"""What one merge call costs the database whatever it holds, and what each delivery adds.

``python bench/call_cost.py`` starts its own durable PostgreSQL with bench's
settings, stages bench's CMS-like backlog and takes its bodies. For each
batch size (``--sizes``), on one connection as the hook makes them: stores
of that many bodies by ``sync.store_many``, each followed by the merger's
``sync.apply_received`` limited to that many, each call its own transaction.
What is measured is the CPU time of the connection's backend (from
``/proc/<pid>/schedstat``, in nanoseconds; else user and system from
``/proc/<pid>/stat``, in clock ticks), the stores and the merges apart, so
neither the client nor the machine's other jobs count. The sizes alternate round by
round, and each size starts from the same fragrances (a fresh copy of the
staged database).

Per size it reports the median over the rounds of the backend's CPU per
call and per delivery, and what each delivery added to a merge call from
the size before (the slope between two sizes). A merge of one pays mostly
for the call itself; where the added cost per delivery stays below the cost
per delivery of the hook's batches, larger merges would cost the database
less per delivery. It writes bench/results/<time>-call-cost.md; compare
figures of one run only.

With ``--baseline GIT_REF``, that commit's database code runs beside
today's in the same server: its migrations build a database of their own,
which then holds the very same fragrances and takes the very same bodies
(the stores are today's ``sync.store_many`` call). Each size of each round
runs on both sides at once, each on its connection, the two taking turns
call by call (whatever else the machine runs falls on both alike), and the
report gives today's merge CPU per call over the baseline's, round by
round: on a shared machine only such pairs compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
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

#: The merger's call, but taking exactly one batch: ``sync.apply_received(size)``.
APPLY = "select inbox_id, status, reasons::text from sync.apply_received(%s)"

#: Clock ticks per second of /proc's CPU times.
TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(pid: int) -> float:
    """CPU time a backend has run so far, in seconds, from the scheduler (nanoseconds).

    ``/proc/<pid>/schedstat``'s first field, where the kernel keeps it: the
    user and system times of ``/proc/<pid>/stat`` are sampled by clock tick
    (10 ms), so a merge of 5 ms is counted whole or not at all, and 125
    ticks a side read about 9% apart between two runs of the same code.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        return sum(bench._stat_fields(pid)[bench.UTIME : bench.CUTIME]) / TICKS


def one_size(
    pg: bench.ThrowawayPostgresql,
    bodies: list[bytes],
    size: int,
    deliveries: int,
    templates: list[str],
) -> list[dict[str, float]]:
    """Store and merge ``deliveries`` bodies in batches of ``size`` on a copy of each template.

    With several templates (today and a baseline), each on its own connection,
    the sides take turns call by call, the side that goes first alternating:
    whatever else the machine runs meanwhile falls on both alike.
    """
    names = [f"cost_{size}_{n}_{time.monotonic_ns()}" for n in range(len(templates))]
    with psycopg.connect(bench.url(pg, "postgres"), autocommit=True) as admin:
        for name, template in zip(names, templates, strict=True):
            admin.execute(f"create database {name} template {template}")
    calls = max(1, deliveries // size)
    batches = [
        bodies[(i * size) % len(bodies) : (i * size) % len(bodies) + size] for i in range(calls)
    ]
    stored = [0.0] * len(names)
    merged = [0.0] * len(names)
    applied = [0] * len(names)
    try:
        conns = [psycopg.connect(bench.url(pg, name), autocommit=True) for name in names]
        try:
            pids = [conn.info.backend_pid for conn in conns]
            for conn in conns:
                conn.execute("update sync.settings set apply_on_receipt = true")
                # Warm the session's plans and caches, as the hook's long-lived connections are.
                for batch in batches[:3]:
                    store(conn, batch)
                    conn.execute(APPLY, [size]).fetchall()
            for i, batch in enumerate(batches):
                sides = list(range(len(conns)))[:: 1 if i % 2 == 0 else -1]
                for side in sides:
                    conn, pid = conns[side], pids[side]
                    before = backend_cpu_seconds(pid)
                    store(conn, batch)
                    middle = backend_cpu_seconds(pid)
                    applied[side] += len(conn.execute(APPLY, [size]).fetchall())
                    stored[side] += middle - before
                    merged[side] += backend_cpu_seconds(pid) - middle
        finally:
            for conn in conns:
                conn.close()
        if any(a != calls * size for a in applied):
            raise SystemExit(f"call_cost: {applied} merged of {calls * size} stored")
    finally:
        with psycopg.connect(bench.url(pg, "postgres"), autocommit=True) as admin:
            for name in names:
                admin.execute(f"drop database {name}")
    return [
        {
            "calls": calls,
            "store_ms_per_call": 1000 * stored[side] / calls,
            "merge_ms_per_call": 1000 * merged[side] / calls,
            "merge_us_per_delivery": 1e6 * merged[side] / (calls * size),
        }
        for side in range(len(names))
    ]


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
    if result.get("baseline"):
        lines += [
            "",
            f"## Today beside `{result['baseline']}`",
            "",
            "Merge CPU per call, today's over the baseline's, one pair per round: the same "
            "bodies on the same fragrances, the two sides taking turns call by call.",
            "",
            "| deliveries per call | today ms | baseline ms | median ratio | pairs |",
            "| ---: | ---: | ---: | ---: | --- |",
        ]
        for size, row in result["baseline_sizes"].items():
            pairs = result["pairs"][size]
            lines.append(
                f"| {size} | {result['sizes'][size]['merge_ms_per_call']:.3f} "
                f"| {row['merge_ms_per_call']:.3f} | {statistics.median(pairs):.3f} "
                f"| {', '.join(f'{p:.3f}' for p in pairs)} |"
            )
    return lines


def main() -> int:
    """Stage, measure each size in turn, write bench/results/<time>-call-cost.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--deliveries", type=int, default=2048, help="per size and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    parser.add_argument(
        "--baseline", default="", metavar="GIT_REF", help="run that commit's database code beside"
    )
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    sides = {"today": "staged"}
    if args.baseline:
        sides["baseline"] = "staged_baseline"
    per_side: dict[str, dict[int, list[dict[str, float]]]] = {
        side: {size: [] for size in args.sizes} for side in sides
    }
    with (
        tempfile.TemporaryDirectory(prefix="call-cost-", ignore_cleanup_errors=True) as tmp,
        bench.throwaway_postgres() as pg,
    ):
        bench.log(f"PostgreSQL on port {pg.settings['port']}; migrating and staging")
        bench.prepare_database(pg, "bench")
        bench.stage_backlog(pg, "staged", args.deliveries)
        if args.baseline:
            tree = bench.export_baseline(args.baseline, Path(tmp))
            bench.prepare_database(pg, "bench_baseline", tree / "migrations")
            bench.stage_same_backlog(pg, "staged", "bench_baseline", "staged_baseline")
        for template in sides.values():
            with psycopg.connect(bench.url(pg, template), autocommit=True) as conn:
                bodies = [row[0] for row in conn.execute("select body from sync.inbox order by id")]
                bench.empty_tables(conn, "sync.inbox")
                conn.execute("vacuum analyze")
        for round_ in range(args.rounds):
            for size in args.sizes[:: 1 if round_ % 2 == 0 else -1]:
                measured = one_size(pg, bodies, size, args.deliveries, list(sides.values()))
                for side, figures in zip(sides, measured, strict=True):
                    per_side[side][size].append(figures)
                    bench.log(
                        f"round {round_ + 1} size {size} {side}: merge "
                        f"{figures['merge_ms_per_call']:.3f} ms per call, "
                        f"store {figures['store_ms_per_call']:.3f}"
                    )
    medians = {
        side: {
            size: {
                key: statistics.median(r[key] for r in runs)
                for key in (
                    "calls",
                    "store_ms_per_call",
                    "merge_ms_per_call",
                    "merge_us_per_delivery",
                )
            }
            for size, runs in sorted(per_size.items())
        }
        for side, per_size in per_side.items()
    }
    result: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deliveries": args.deliveries,
        "rounds": args.rounds,
        "sizes": medians["today"],
    }
    if args.baseline:
        result["baseline"] = args.baseline
        result["baseline_sizes"] = medians["baseline"]
        result["pairs"] = {
            size: [
                t["merge_ms_per_call"] / b["merge_ms_per_call"]
                for t, b in zip(per_side["today"][size], per_side["baseline"][size], strict=True)
            ]
            for size in sorted(args.sizes)
        }
    label = re.sub(r"[^A-Za-z0-9._-]", "_", args.label)
    bench.write_report(markdown(result), started, "call-cost" + (f"-{label}" if label else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
