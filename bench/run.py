"""The benchmark suite behind ``make bench``: ingest, merge, lag and memory, side by side.

It starts its own PostgreSQL (devtools/throwaway_pg.py, never the server on
5432) with production durability (fsync on, synchronous_commit on), migrates
it with the deploy's command (hook.migrate), loads sql/catalog.sql, and measures:

- ingest: wrk posting CMS deltas to ``python -m hook``, set beside pgbench
  inserting the same bodies into a plain bytea table (the database's
  durable-insert limit), pgbench calling ``sync.receive``, a naive FastAPI
  hook (one INSERT per request, ``bench/naive_hook.py``), the hook with no
  database work (``bench/nodb_hook.py``) and a minimal FastAPI route
  (``bench/minimal_route.py``), all on the same server stack;
- merge: 100,000 pending changes through ``sync.apply_pending`` against one
  set-based ``UPDATE ... FROM`` that writes the same final values;
- lag: a paced asyncio client at steady rates, time until the change is visible;
- memory: the hook's peak RSS (VmHWM) per worker under the 64-connection load;
- catalog: ``sync.check_catalog()`` on the 5,000-row catalog and on 1,000,000 rows.

``--variant NAME=VALUE ...`` adds today's hook with those settings to the
ingest rounds, reported beside the hook as deployed, pair by pair: a
setting's effect measured side by side.

Every figure is the median of several runs, with min and max. Results are
printed and written to bench/results/ as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import operator
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from load import post_at_once  # noqa: E402
from processes import Hook, start_service, stop_hook  # noqa: E402

from devtools.throwaway_pg import ThrowawayPostgresql  # noqa: E402
from hook.connections import new_uvloop  # noqa: E402
from hook.migrate import command_line  # noqa: E402
from hook.settings import Settings  # noqa: E402

BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DDL = ROOT / "deploy" / "initdb" / "10-smart-library.sql"
CATALOG = ROOT / "sql" / "catalog.sql"
MIGRATIONS = ROOT / "migrations"

#: What the bench runs PostgreSQL with: production durability, enough connections.
POSTGRES_ARGS = (
    "-h 127.0.0.1 -c logging_collector=off -c fsync=on -c synchronous_commit=on "
    "-c full_page_writes=on -c max_connections=200 -c shared_buffers=256MB"
)

#: Issue 16's targets, each a ratio measured side by side in one run (or a bound).
TARGETS = {
    "ingest_vs_insert": 0.25,
    "ingest_vs_naive": 2.0,
    "own_cpu_vs_minimal": 1.3,
    "merge_vs_floor": 0.6,
    "lag_p99_ms": {200: 20.0, 2000: 100.0},
    "rss_mb": 150.0,
    # Issue 12's: with --baseline, no worse than the code it started from, pair by pair.
    "ingest_vs_baseline": 1.0,
    "merge_vs_baseline": 1.0,
}

#: The plain table the naive hook and pgbench's plain insert write (bench/naive_hook.py).
NAIVE_TABLE = """
create schema bench;
create table bench.naive_inbox (
    id bigint generated always as identity primary key,
    body bytea not null,
    content_type text,
    received_at timestamptz not null default now()
);
"""


@dataclass
class Figure:
    """One measured quantity over several runs."""

    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median of the runs."""
        return statistics.median(self.runs) if self.runs else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Median, min, max and every run, rounded for the report."""
        return {
            "median": round(self.median, 3),
            "min": round(min(self.runs), 3) if self.runs else None,
            "max": round(max(self.runs), 3) if self.runs else None,
            "runs": [round(r, 3) for r in self.runs],
        }


def write_report(lines: list[str], started: dt.datetime, name: str) -> Path:
    """Print a small benchmark's report and keep it as bench/results/<UTC time>-<name>.md."""
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{started:%Y%m%dT%H%M%SZ}-{name}.md"
    out.write_text(text)
    print(text)
    print(f"written: bench/results/{out.name}")
    return out


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """A PostgreSQL or load tool on PATH, or in the server's bin directory."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise SystemExit(f"bench: {name} not found; run `make bench`, which installs it")


# --- the database -------------------------------------------------------------------------


@contextmanager
def throwaway_postgres(postgres_args: str = POSTGRES_ARGS) -> Iterator[ThrowawayPostgresql]:
    """A durable throwaway server on disk (not tmpfs), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="fragrance-bench-", dir=os.environ.get("BENCH_TMP")))
    base.chmod(0o755)
    pg = ThrowawayPostgresql(base_dir=str(base), postgres_args=postgres_args)
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def empty_tables(conn: psycopg.Connection, tables: str) -> None:
    """TRUNCATE tables of ours on a bench database, past the triggers that refuse it (FS092).

    A DBA's TRUNCATE of the inbox, the history or the findings is refused;
    staging a benchmark empties them on a throwaway database, as a superuser
    whose session fires no ordinary trigger in replica mode.
    """
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(f"truncate {tables}")


def url(pg: ThrowawayPostgresql, dbname: str, user: str = "postgres") -> str:
    """A libpq URL for one database of the bench server as one user."""
    return f"postgresql://{user}@127.0.0.1:{pg.settings['port']}/{dbname}"


def prepare_database(pg: ThrowawayPostgresql, dbname: str, migrations: Path = MIGRATIONS) -> None:
    """Create the production table by its DDL, load the catalog, migrate as a deploy does.

    ``migrations`` another checkout's (``--baseline``): its hook then runs on
    the database its own code built, beside today's.
    """
    with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
        admin.execute(f'create database "{dbname}"')
    with psycopg.connect(url(pg, dbname), autocommit=True) as conn:
        conn.execute(DDL.read_text())
        conn.execute(CATALOG.read_text())
        conn.execute(NAIVE_TABLE)
    # Today's deploy command for both sides: a baseline's migrations are
    # deployed as production deploys them (hook.migrate's session settings).
    subprocess.run(
        command_line(url(pg, dbname), migrations),
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    # As autovacuum leaves a production database after a load: statistics known.
    with psycopg.connect(url(pg, dbname), autocommit=True) as conn:
        conn.execute("vacuum analyze")


def server_settings(pg: ThrowawayPostgresql) -> dict[str, str]:
    """The durability settings the server really runs with, for the report."""
    with psycopg.connect(url(pg, "postgres")) as conn:
        rows = conn.execute(
            "select name, setting from pg_settings where name = any(%s)",
            [
                [
                    "fsync",
                    "synchronous_commit",
                    "full_page_writes",
                    "wal_sync_method",
                    "shared_buffers",
                    "max_connections",
                    "server_version",
                ]
            ],
        ).fetchall()
    return dict(rows)


# --- the hook -------------------------------------------------------------------------------


def worker_pids(hook: Hook) -> list[int]:
    """The processes that serve requests: the workers under uvicorn's supervisor, or itself."""
    pid = hook.process.pid
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    # The supervisor also starts multiprocessing's resource tracker; keep the servers.
    workers = [p for p in children if "spawn_main" in _cmdline(p)]
    return workers or [pid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of one process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def start_bench_hook(
    database_url: str, workdir: Path, module: str = "hook", cwd: Path = ROOT, **env: str
) -> Hook:
    """``python -m hook`` as the tests start it (production's entry point), quiet, then healthy.

    ``module`` ``bench.nodb_hook`` serves the same app without a database; ``cwd``
    another checkout of the code (``--baseline``).
    """
    hook = start_service(
        module,
        workdir,
        "/healthz",
        cwd=cwd,
        DATABASE_URL=database_url,
        SPOOL_DIR=str(workdir / f"spool-{module}-{time.monotonic_ns()}"),
        LOG_LEVEL="warning",
        DB_TIMEOUT="5",
        **env,  # production's HTTP stack by default (requirements.txt: httptools, uvloop)
    )
    for _ in range(100):
        if httpx.get(hook.url + "/healthz", timeout=5).status_code == 200:
            return hook
        time.sleep(0.1)
    stop_hook(hook)
    raise SystemExit(f"the hook never reached its database:\n{hook.output()}")


# --- ingest -----------------------------------------------------------------------------------


def run_wrk(target: str, connections: int, seconds: int) -> dict[str, float]:
    """One wrk run; requests/s, p50 and p99 in ms, and every kind of error."""
    threads = min(connections, 2)
    done = subprocess.run(
        [
            tool("wrk"),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(BENCH / "ingest.lua"),
            target + "/notifications",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line[len("WRK_JSON ") :])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": errors,
    }


def start_plain_server(module: str, database_url: str, workdir: Path, **env: str) -> Hook:
    """A bench-only server (``bench.naive_hook``, ``bench.minimal_route``), once healthy."""
    return start_service(
        module, workdir, "/healthz", DATABASE_URL=database_url, LOG_LEVEL="warning", **env
    )


def run_pgbench(
    dsn: str, connections: int, seconds: int, workdir: Path, script: str = "receive.pgbench"
) -> dict[str, float]:
    """One pgbench run of ``script`` (the same delivery); p50/p99 from its log."""
    logdir = workdir / f"pgbench-{connections}-{time.monotonic_ns()}"
    logdir.mkdir()
    done = subprocess.run(
        [
            tool("pgbench"),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(connections),
            "-j",
            str(min(connections, 2)),
            "-T",
            str(seconds),
            "-f",
            str(BENCH / script),
            "-l",
            "--log-prefix",
            str(logdir / "tx"),
            dsn,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    tps = float(re.search(r"tps = ([\d.]+) \(without initial", done.stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    latencies = sorted(
        int(line.split()[2]) for f in logdir.iterdir() for line in f.read_text().splitlines()
    )
    shutil.rmtree(logdir)
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    return {
        "requests": int(processed.group(1)),
        "rps": tps,
        "p50_ms": latencies[len(latencies) // 2] / 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] / 1000,
        "errors": int(failed.group(1)) if failed else 0,
    }


def cpu_ticks(pids: list[int]) -> list[int]:
    """User plus system CPU ticks each process has used so far."""
    return [sum(_stat_fields(pid)[UTIME:CUTIME]) for pid in pids]


#: Where utime, stime, cutime and cstime sit in ``_stat_fields`` (proc(5) fields 14 to 17).
UTIME, CUTIME, AFTER_CSTIME = 10, 12, 14


def _stat_fields(pid: int) -> list[int]:
    """The numeric fields of /proc/<pid>/stat from ppid on (name and state dropped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return [int(x) for x in fields[1:]]


def cluster_cpu_ticks(pg: ThrowawayPostgresql) -> int:
    """CPU ticks of the whole bench server: postmaster, live backends, and exited ones."""
    return tree_cpu_ticks(pg.child_process.pid)


def tree_cpu_ticks(pid: int) -> int:
    """CPU ticks of a process, its live children, and the children it has reaped."""
    while True:
        # utime, stime, cutime, cstime: a child's ticks move into cutime when reaped.
        before = _stat_fields(pid)[UTIME:AFTER_CSTIME]
        total = sum(before)
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            try:
                total += sum(_stat_fields(int(child))[UTIME:CUTIME])
            except OSError:
                continue  # exited since the listing: seen in cutime, or retried below
        # A child reaped while we read the others would be counted nowhere, or twice.
        if _stat_fields(pid)[CUTIME:AFTER_CSTIME] == before[CUTIME - UTIME :]:
            return total


@dataclass
class CpuMeter:
    """Where the CPU of one load run went: server workers, database, load generator.

    Per request, in microseconds of one core; ``cpu_bound_rate`` turns them
    into the most requests/s the machine and the server's workers allow.
    """

    pg: ThrowawayPostgresql
    server_pids: list[int]

    def measure(self, run: Callable[[], dict[str, float]]) -> dict[str, float]:
        """Run the load and add the CPU figures (and the busiest worker's share) to its result."""
        tick = os.sysconf("SC_CLK_TCK")
        workers_before = cpu_ticks(self.server_pids)
        db_before = cluster_cpu_ticks(self.pg)
        children_before = os.times()
        started = time.monotonic()
        measured = run()
        wall = time.monotonic() - started
        children_after = os.times()
        db_ticks = cluster_cpu_ticks(self.pg) - db_before
        used = [
            after - first
            for after, first in zip(cpu_ticks(self.server_pids), workers_before, strict=True)
        ]
        # The load generator (wrk or pgbench) is our only child that ends in the window.
        client = (children_after.children_user - children_before.children_user) + (
            children_after.children_system - children_before.children_system
        )
        requests = measured["requests"]
        if self.server_pids:
            measured["busiest_worker_share"] = max(used) / sum(used) if sum(used) else 1.0
        measured["cpu_server_us"] = sum(used) / tick / requests * 1e6
        measured["cpu_db_us"] = db_ticks / tick / requests * 1e6
        measured["cpu_client_us"] = client / requests * 1e6
        measured["cores_busy"] = (sum(used) / tick + db_ticks / tick + client) / wall
        return measured


#: The order of one round of ingest runs; a baseline runs right after what it is compared with.
INGEST_ORDER = (
    "hook",
    "baseline",
    "variant",
    "pgbench_insert",
    "naive",
    "pgbench",
    "nodb",
    "baseline_nodb",
    "minimal",
)

#: The pgbench scripts, by the kind of run they are.
PGBENCH_SCRIPTS = {"pgbench": "receive.pgbench", "pgbench_insert": "insert.pgbench"}


def round_order(kinds: list[str], repeat: int) -> list[str]:
    """The kinds of one round, each pair (today, baseline) swapped every other round.

    Run back to back, a pair sees the same machine; swapping which goes first
    keeps an order effect from favouring either side.
    """
    order = [k for k in INGEST_ORDER if k in kinds]
    if repeat % 2:
        # The hook and what it is compared with lead each round: reversed as a block.
        lead = [k for k in ("hook", "baseline", "variant") if k in order]
        order[: len(lead)] = lead[::-1]
        if "nodb" in order and "baseline_nodb" in order:
            i, j = order.index("nodb"), order.index("baseline_nodb")
            order[i], order[j] = order[j], order[i]
    return order


def bench_ingest(
    pg: ThrowawayPostgresql,
    servers: dict[str, Hook],
    pgbench_dsn: str,
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[dict[str, Any], float]:
    """Every server and pgbench, interleaved round by round, at each concurrency."""
    results: dict[str, Any] = {}
    peak_rss = 0.0
    meters = {kind: CpuMeter(pg, worker_pids(server)) for kind, server in servers.items()}
    for kind in PGBENCH_SCRIPTS:
        meters[kind] = CpuMeter(pg, [])

    def run(kind: str, connections: int) -> dict[str, float]:
        if kind in PGBENCH_SCRIPTS:
            dsn = (
                pgbench_dsn
                if kind == "pgbench"
                else pgbench_dsn.replace("sync_hook_login@", "postgres@")
            )
            return run_pgbench(dsn, connections, args.seconds, workdir, PGBENCH_SCRIPTS[kind])
        measured = run_wrk(servers[kind].url, connections, args.seconds)
        if kind in APPLIED_IN:
            measured.update(wait_applied(url(pg, APPLIED_IN[kind]), measured))
        return measured

    for connections in args.connections:
        kinds: dict[str, dict[str, Figure]] = {}
        for repeat in range(args.runs):
            for kind in round_order(list(meters), repeat):
                measured = meters[kind].measure(lambda k=kind, c=connections: run(k, c))
                if kind in ("naive", "pgbench_insert"):
                    # Hundreds of thousands of rows a run: left there, autovacuum would
                    # spend the next runs' CPU on a table no other server uses.
                    with psycopg.connect(url(pg, "bench"), autocommit=True) as conn:
                        conn.execute("truncate bench.naive_inbox")
                log(
                    f"ingest c={connections} run {repeat + 1} {kind}: "
                    + ", ".join(f"{k}={v:.1f}" for k, v in measured.items())
                )
                for key, value in measured.items():
                    kinds.setdefault(kind, {}).setdefault(key, Figure()).runs.append(value)
                if kind == "hook" and connections == max(args.connections):
                    peak_rss = max(peak_rss, *(vm_hwm_mb(p) for p in worker_pids(servers[kind])))
        results[str(connections)] = {
            kind: {k: f.as_dict() for k, f in figs.items()} for kind, figs in kinds.items()
        }
    return results, peak_rss


#: Servers whose deliveries are applied in a database after the answer, and that database.
APPLIED_IN = {"hook": "bench", "variant": "bench", "baseline": "bench_baseline"}


def wait_applied(dsn: str, measured: dict[str, float], within: float = 300.0) -> dict[str, float]:
    """Wait until nothing is pending: the seconds it took, and the rate of applied deliveries.

    The hook answers once a delivery is stored and applies it right after
    (ADR 0022): a run counts as done when the last delivery is applied, and
    ``applied_rps`` divides the requests by the load's time plus that wait.
    The baseline applied on receipt: it waits 0 s.
    """
    started = time.monotonic()
    pending = "select count(*) from sync.inbox where status = 'pending'"
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute(pending).fetchone()[0]:
            if time.monotonic() - started > within:
                raise SystemExit(f"bench: deliveries still pending {within:.0f} s after the load")
            time.sleep(0.01)
    drain = time.monotonic() - started
    duration = measured["requests"] / measured["rps"] if measured["rps"] else 0.0
    return {
        "drain_s": drain,
        "applied_rps": measured["requests"] / (duration + drain) if duration + drain else 0.0,
    }


def export_baseline(ref: str, workdir: Path) -> Path:
    """The code of git ``ref`` in a directory of its own (git archive), to run beside today's."""
    tree = workdir / f"baseline-{re.sub(r'[^A-Za-z0-9._-]', '_', ref)}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def start_baseline(tree: Path, database_url: str, workdir: Path, **env: str) -> tuple[Hook, Hook]:
    """The baseline's hook and its no-database server, each as that code starts it."""
    hook = start_bench_hook(database_url, workdir, cwd=tree, **env)
    if (tree / "bench" / "nodb_hook.py").exists():
        nodb = start_bench_hook(database_url, workdir, "bench.nodb_hook", cwd=tree, **env)
    else:  # before the no-database app moved to bench/, a switch of the hook turned it on
        nodb = start_bench_hook(database_url, workdir, cwd=tree, HOOK_BENCH_NO_DATABASE="1", **env)
    return hook, nodb


# --- memory under large bodies -----------------------------------------------------------------

LARGE_BODIES = 256
MIB = 1024 * 1024


def bench_large_bodies(servers: dict[str, Hook]) -> dict[str, Any]:
    """256 bodies of 1 MiB at once to each hook (and its baseline): answers and peak RSS."""
    results: dict[str, Any] = {}
    for kind in ("hook", "baseline"):
        if kind not in servers:
            continue
        host, port = servers[kind].url.removeprefix("http://").split(":")
        statuses = asyncio.run(post_at_once(host, int(port), b" " * MIB, LARGE_BODIES))
        peak = max(vm_hwm_mb(p) for p in worker_pids(servers[kind]))
        results[kind] = {"answered_2xx": sum(1 for s in statuses if s == 202), "peak_rss_mb": peak}
        log(f"large bodies {kind}: {results[kind]}")
    return {"bodies": LARGE_BODIES, "size": MIB, **results}


# --- merge --------------------------------------------------------------------------------------

STAGE_BACKLOG = """
update sync.settings set apply_on_receipt = false;
insert into sync.inbox (body, content_type)
select convert_to(case
        -- about 1 in 10 breaks a rule: unknown id, negative cost, overlong name, bad type
        when r.bad < 0.025 then format('{"fragrance_id": %s, "description": "x"}', 100000 + r.fid)
        when r.bad < 0.05
            then format('{"fragrance_id": %s, "cost": -%s, "forbidden": true}', r.fid, r.cost)
        when r.bad < 0.075
            then format('{"fragrance_id": %s, "name": "%s"}', r.fid, repeat('N', 151))
        when r.bad < 0.1 then format('{"fragrance_id": %s, "forbidden": "yes"}', r.fid)
        else concat_ws(', ',
            format('{"fragrance_id": %s', r.fid),
            case when r.has_name then format('"name": "Name%sHOOOOOOOOOOLAAA"', r.n) end,
            format('"description": "Produced from animals %s  "', r.n),
            case when r.has_cost then format('"cost": %s', r.cost) end,
            format('"forbidden": %s', case when r.forbidden then 'true' else 'false' end)) || '}'
    end, 'UTF8'), 'application/json'
from (
    select g as n, (random() * 4999)::int as fid, random() as bad,
           random() < 0.5 as has_name, random() < 0.5 as has_cost,
           5 + (random() * 105)::int as cost, random() < 0.5 as forbidden
    from generate_series(1, %(count)s) as g
) as r
order by r.n;
"""

# The floor: the same final values in one statement, from the same bodies. Valid means
# what the rules above make invalid is left out; the last valid value per field wins.
SET_BASED_UPDATE = """
with parsed as (
    select i.id, convert_from(i.body, 'UTF8')::jsonb as d from sync.inbox as i
    where i.status = 'pending'
), valid as (
    select p.id, (p.d ->> 'fragrance_id')::int as fid, p.d
    from parsed as p
    where (p.d ->> 'fragrance_id')::int < 5000
      and coalesce((p.d ->> 'cost')::numeric, 0) >= 0
      and coalesce(length(p.d ->> 'name'), 0) <= 150
      and coalesce(jsonb_typeof(p.d -> 'forbidden'), 'boolean') = 'boolean'
), last as (
    select v.fid,
        (array_agg(v.d ->> 'name' order by v.id desc) filter (where v.d ? 'name'))[1] as name,
        (array_agg(v.d ->> 'description' order by v.id desc) filter (where v.d ? 'description'))[1]
            as description,
        (array_agg((v.d ->> 'cost')::numeric order by v.id desc) filter (where v.d ? 'cost'))[1]
            as cost,
        (array_agg((v.d ->> 'forbidden')::boolean order by v.id desc)
            filter (where v.d ? 'forbidden'))[1] as forbidden
    from valid as v
    group by v.fid
)
update public.fragrances as f
set name = coalesce(l.name, f.name),
    description = coalesce(l.description, f.description),
    cost = coalesce(l.cost, f.cost),
    forbidden = coalesce(l.forbidden, f.forbidden)
from last as l
where f.fragrance_id = l.fid
"""

CATALOG_DIGEST = (
    "select md5(string_agg(f::text, '|' order by fragrance_id)) from public.fragrances as f"
)


def paired_ratios(mine: list[float], floor: list[float]) -> list[float]:
    """Each run's rate over its own floor's: the pair ran back to back on the same machine."""
    return [m / f for m, f in zip(mine, floor, strict=True)]


def stage_backlog(pg: ThrowawayPostgresql, name: str, count: int) -> None:
    """A copy of the migrated ``bench`` database holding ``count`` pending CMS-like bodies."""
    with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
        admin.execute(f"create database {name} template bench")
    with psycopg.connect(url(pg, name), autocommit=True) as conn:
        empty_tables(conn, "sync.inbox, sync.fragrance_history")
        conn.execute(STAGE_BACKLOG.replace("%(count)s", str(count)))
        conn.execute("vacuum analyze")


def stage_same_backlog(pg: ThrowawayPostgresql, source: str, template: str, name: str) -> None:
    """A copy of ``template`` holding ``source``'s fragrances and, pending, its very bodies.

    The fragrances are copied too: the ingest runs changed each database's
    own at random, and the final values of both merges are compared.
    """
    with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
        admin.execute(f"create database {name} template {template}")
    with psycopg.connect(url(pg, source)) as src:
        fragrances = src.execute("select * from public.fragrances order by 1").fetchall()
        bodies = src.execute("select body, content_type from sync.inbox order by id").fetchall()
    with psycopg.connect(url(pg, name), autocommit=True) as conn:
        with conn.transaction():
            # A bulk load, not a change: no trigger (history, findings) fires.
            conn.execute("set local session_replication_role = replica")
            conn.execute("delete from public.fragrances")
            with conn.cursor() as cur, cur.copy("copy public.fragrances from stdin") as copy:
                for row in fragrances:
                    copy.write_row(row)
        empty_tables(conn, "sync.inbox, sync.fragrance_history")
        conn.execute("update sync.settings set apply_on_receipt = false")
        copy_in = "copy sync.inbox (body, content_type) from stdin"
        with conn.cursor() as cur, cur.copy(copy_in) as copy:
            for row in bodies:
                copy.write_row(row)
        conn.execute("vacuum analyze")


def bench_merge(pg: ThrowawayPostgresql, args: argparse.Namespace) -> dict[str, Any]:
    """apply_pending over a staged backlog against the set-based floor, each on a fresh copy.

    With ``--baseline``, the baseline's own apply_pending runs too, on its own
    database holding the same bodies: today / baseline pair by pair (issue 12).
    """
    stage_backlog(pg, "merge_staged", args.backlog)
    if args.baseline:
        stage_same_backlog(pg, "merge_staged", "bench_baseline", "merge_staged_baseline")
    # Two floors: the UPDATE with every trigger of fragrances (history and findings, what
    # any write pays now), and with the history triggers only (what the floor paid when
    # issue 16 measured 0.33: the findings triggers came with issue 13). The target
    # compares with the second.
    figures = {
        "apply_pending": Figure(),
        "set_based_update": Figure(),
        "set_based_update_history_only": Figure(),
    }
    if args.baseline:
        figures["baseline_apply_pending"] = Figure()
    digests: dict[str, set[str]] = {kind: set() for kind in figures}
    for repeat in range(args.merge_runs):
        # Alternate which goes first, so an order effect cannot favour either side.
        for kind in list(figures)[:: 1 if repeat % 2 == 0 else -1]:  # order alternates
            name = f"merge_{kind}_{repeat}"
            template = "merge_staged_baseline" if kind.startswith("baseline") else "merge_staged"
            with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
                admin.execute(f"create database {name} template {template}")
            with psycopg.connect(url(pg, name), autocommit=True) as conn:
                started = time.perf_counter()
                if kind in ("apply_pending", "baseline_apply_pending"):
                    while conn.execute(
                        "select processed from sync.apply_pending(%s)", [args.batch]
                    ).fetchone()[0]:
                        pass
                elif kind == "set_based_update":
                    conn.execute(SET_BASED_UPDATE)
                else:
                    with conn.transaction():
                        conn.execute(
                            "alter table public.fragrances disable trigger _950_check_update"
                        )
                        conn.execute(SET_BASED_UPDATE)
                elapsed = time.perf_counter() - started
                digests[kind].add(conn.execute(CATALOG_DIGEST).fetchone()[0])
            figures[kind].runs.append(args.backlog / elapsed)
            log(f"merge run {repeat + 1} {kind}: {args.backlog / elapsed:.0f} changes/s")
            with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
                admin.execute(f"drop database {name}")
    same = len(set().union(*digests.values())) == 1
    # Each run's pair ran back to back: the ratio within a pair is what the
    # machine's drift (the floor alone moved 31k to 59k/s in one hour) affects least.
    mine = figures["apply_pending"].runs
    merge = {
        "backlog": args.backlog,
        "batch": args.batch,
        "same_final_values": same,
        **{k: f.as_dict() for k, f in figures.items()},
        "paired_ratio": Figure(
            paired_ratios(mine, figures["set_based_update_history_only"].runs)
        ).as_dict(),
        "paired_ratio_all_triggers": Figure(
            paired_ratios(mine, figures["set_based_update"].runs)
        ).as_dict(),
    }
    if args.baseline:
        merge["baseline"] = args.baseline
        merge["paired_ratio_baseline"] = Figure(
            paired_ratios(mine, figures["baseline_apply_pending"].runs)
        ).as_dict()
    return merge


# --- lag ------------------------------------------------------------------------------------------

#: A change not applied this many seconds after its answer counts as invisible.
VISIBLE_WITHIN = 5.0
#: How often the lag client's watcher asks which awaited changes are applied.
WATCH_EVERY = 0.001


class _Connections:
    """Keep-alive HTTP/1.1 connections to the hook over plain asyncio streams (a light client)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        """One POST on an idle connection (or a new one); status and body of the answer."""
        # uvicorn closes a connection idle for 5 s: never reuse one idle for 4 s or more.
        while self.idle and time.monotonic() - self.idle[-1][2] >= 4:
            self.idle.pop()[1].close()
        # One the hook has closed meanwhile is dropped, not written to.
        while self.idle and (self.idle[-1][1].is_closing() or self.idle[-1][0].at_eof()):
            self.idle.pop()[1].close()
        if self.idle:
            reader, writer, _ = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"User-Agent: bench-lag\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        answer = await reader.readexactly(length)
        self.idle.append((reader, writer, time.monotonic()))
        return status, answer

    def close(self) -> None:
        """Close every idle connection."""
        for _, writer, _ in self.idle:
            writer.close()


async def paced_lag(hook_url: str, dsn: str, rate: int, seconds: int) -> dict[str, Any]:
    """Open loop: change i is sent at start + i/rate, however slow earlier answers are.

    Lag counts from that moment to the answer (answered means committed), and
    to the change being applied and committed (the merger applies it right
    after the answer): one watcher asks for the inbox rows still awaited every
    ``WATCH_EVERY`` seconds, and checks at the end that each applied value is
    in fragrances unless a later delivery superseded it.

    One pacer starts each change's task at its moment. Creating every task up
    front (20,000 at 2,000/s) made the client itself up to 200 ms late in its
    first half second: every task's first step ran in one turn of the loop,
    and that lateness counted as the hook's lag. How late the client still is
    (its CPU shares two cores with the hook and the database) is reported.
    """
    rng = random.Random(7)
    total = rate * seconds
    answered: list[float] = []
    visible: list[float] = []
    late: list[float] = []
    errors = invisible = 0
    error_kinds: dict[str, int] = {}
    awaited: dict[int, tuple[float, asyncio.Future[None]]] = {}
    applied: list[tuple[int, int, str]] = []
    host, port = hook_url.removeprefix("http://").split(":")
    http = _Connections(host, int(port))
    pool = AsyncConnectionPool(dsn, min_size=2, max_size=4, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    start = time.perf_counter() + 0.2
    sending = True

    async def watch() -> None:
        async with pool.connection() as conn:
            while sending or awaited:
                if awaited:
                    cur = await conn.execute(
                        "select id from sync.inbox where id = any(%s) and status <> 'pending'",
                        [list(awaited)],
                    )
                    now = time.perf_counter()
                    for (inbox_id,) in await cur.fetchall():
                        # Given up on meanwhile (VISIBLE_WITHIN passed during the query).
                        if (entry := awaited.pop(inbox_id, None)) is None:
                            continue
                        due, done = entry
                        # Or given up on just now: wait_for cancelled it before its
                        # sender could take it out of awaited (an overloaded run
                        # once stopped the whole bench here with InvalidStateError).
                        if done.done():
                            continue
                        visible.append((now - due) * 1000)
                        done.set_result(None)
                await asyncio.sleep(WATCH_EVERY)

    async def one(i: int, due: float) -> None:
        nonlocal errors, invisible
        late.append((time.perf_counter() - due) * 1000)
        fid = rng.randrange(5000)
        description = f"lag probe {i} {rng.random():.6f}  "
        payload = {"fragrance_id": fid, "description": description, "forbidden": i % 2 == 0}
        try:
            status, answer = await http.post("/notifications", json.dumps(payload).encode())
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            errors += 1
            error_kinds[type(exc).__name__] = error_kinds.get(type(exc).__name__, 0) + 1
            return
        answered.append((time.perf_counter() - due) * 1000)
        receipt = json.loads(answer)
        if status != 202 or receipt["status"] not in ("pending", "applied"):
            errors += 1
            kind = f"{status} {receipt.get('status')} {receipt.get('reasons') or receipt}"[:200]
            error_kinds[kind] = error_kinds.get(kind, 0) + 1
            return
        done = asyncio.get_running_loop().create_future()
        awaited[receipt["inbox_id"]] = (due, done)
        try:
            await asyncio.wait_for(done, VISIBLE_WITHIN)
        except TimeoutError:
            awaited.pop(receipt["inbox_id"], None)
            invisible += 1
            return
        applied.append((receipt["inbox_id"], fid, description))

    async def pace() -> None:
        running: set[asyncio.Task[None]] = set()
        for i in range(total):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(one(i, due))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)

    watcher = asyncio.create_task(watch())
    try:
        await pace()
        sending = False
        await watcher
        async with pool.connection() as conn:
            cur = await conn.execute(
                "select count(*) from unnest(%s::bigint[], %s::int[], %s::text[]) as c (id, fid, d)"
                " join public.fragrances as f on f.fragrance_id = c.fid"
                " left join sync.field_version as v on v.fragrance_id = c.fid"
                " where not (f.description = c.d"
                "            or coalesce((v.versions ->> 'description')::bigint, 0) > c.id)",
                [[a[0] for a in applied], [a[1] for a in applied], [a[2] for a in applied]],
            )
            (lost,) = await cur.fetchone()
        invisible += lost
    finally:
        sending = False
        watcher.cancel()
        http.close()
        await pool.close()
    answered.sort()
    visible.sort()
    late.sort()
    return {
        "client_late_p99_ms": late[int(len(late) * 0.99)],
        "answered_p50_ms": answered[len(answered) // 2],
        "answered_p99_ms": answered[int(len(answered) * 0.99)],
        "p50_ms": visible[len(visible) // 2],
        "p99_ms": visible[int(len(visible) * 0.99)],
        "errors": errors,
        "invisible": invisible,
        "sent": total,
        "error_kinds": error_kinds,
    }


def bench_lag(
    hooks: dict[str, Hook], dsn: str, rate: int, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Several paced runs at ``rate`` per hook, alternating: p50 and p99 until visible."""
    figures: dict[str, dict[str, Figure]] = {kind: {} for kind in hooks}
    error_kinds: dict[str, dict[str, int]] = {kind: {} for kind in hooks}
    for repeat in range(args.lag_runs):
        kinds = list(hooks) if repeat % 2 == 0 else list(hooks)[::-1]
        for kind in kinds:
            # The client on uvloop too: on two cores its CPU is part of what the hook competes with.
            with asyncio.Runner(loop_factory=new_uvloop) as runner:
                measured = runner.run(paced_lag(hooks[kind].url, dsn, rate, args.lag_seconds))
            errors = measured.pop("error_kinds")
            log(
                f"lag {rate}/s run {repeat + 1} {kind}: "
                + ", ".join(f"{k}={v:.1f}" for k, v in measured.items())
            )
            for error, count in errors.items():
                log(f"lag {rate}/s run {repeat + 1} {kind}: {count} x {error}")
                error_kinds[kind][error] = error_kinds[kind].get(error, 0) + count
            for key, value in measured.items():
                figures[kind].setdefault(key, Figure()).runs.append(value)
    return {
        kind: {
            "rate": rate,
            "error_kinds": error_kinds[kind],
            **{k: f.as_dict() for k, f in figures[kind].items()},
        }
        for kind in hooks
    }


# --- the catalog check ---------------------------------------------------------------------------

#: Copies of the real-shaped catalog under new ids. A copy keeps each row's
#: shape (whitespace, costs, lengths, duplicates among its own names); the
#: copy number in front of a name keeps copies from duplicating each other.
GROW_CATALOG = """
set session_replication_role = replica;  -- a bulk load: the write triggers do not fire
insert into public.fragrances (fragrance_id, name, description, cost, forbidden)
select f.fragrance_id + c.copy * 5000, left(c.copy || ' ' || f.name, 150),
       f.description, f.cost, f.forbidden
from public.fragrances as f
cross join generate_series(1, %(copies)s) as c(copy)
where f.fragrance_id < 5000;
reset session_replication_role;
"""


def bench_catalog(pg: ThrowawayPostgresql, args: argparse.Namespace) -> dict[str, Any]:
    """sync.check_catalog() on the catalog as loaded and grown to ``--catalog-rows`` rows.

    Each size is checked twice in a row: the first call opens every finding
    (the catalog adopted), the second finds them open already (a nightly run).
    """
    results: dict[str, Any] = {}
    for rows in (5000, args.catalog_rows):
        name = f"catalog_{rows}"
        with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
            admin.execute(f"create database {name} template bench")
        with psycopg.connect(url(pg, name), autocommit=True) as conn:
            empty_tables(conn, "sync.finding")
            if rows > 5000:
                conn.execute(GROW_CATALOG.replace("%(copies)s", str(rows // 5000 - 1)))
            conn.execute("vacuum analyze public.fragrances")
            total = conn.execute("select count(*) from public.fragrances").fetchone()[0]
            timings = []
            for _ in range(2):
                started = time.perf_counter()
                found = conn.execute("select * from sync.check_catalog()").fetchall()
                timings.append(time.perf_counter() - started)
            open_findings = conn.execute(
                "select count(*) from sync.finding where closed_at is null"
            ).fetchone()[0]
        with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
            admin.execute(f"drop database {name}")
        results[str(total)] = {
            "first_s": round(timings[0], 3),
            "again_s": round(timings[1], 3),
            "rules_broken": len(found),
            "open_findings": open_findings,
        }
        log(f"catalog check {total} rows: {results[str(total)]}")
    return results


# --- report --------------------------------------------------------------------------------------


ONE_SIDED = 0.9


def balanced_rps(figs: dict[str, Any]) -> float:
    """Median requests/s of the runs that used every worker (all runs if none did).

    A run whose connections all landed on one worker measures one core, not
    the server; the no-database server is the framework's limit only when
    balanced. (The hook's own figure keeps every run: that only lowers it.)
    """
    shares = figs.get("busiest_worker_share", {}).get("runs")
    if not shares:
        return figs["rps"]["median"]
    runs = zip(figs["rps"]["runs"], shares, strict=True)
    balanced = [rps for rps, share in runs if share <= ONE_SIDED]
    return statistics.median(balanced) if balanced else figs["rps"]["median"]


#: How a target's rule reads, and what it checks.
COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
}


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and PASS/FAIL."""
    c16 = result["ingest"].get("16", {})
    checks: list[tuple[str, float, str, float]] = []
    if "hook" in c16:
        hook = c16["hook"]
        # Deliveries applied per second (answered, then applied by the merger, ADR 0022).
        applied = hook.get("applied_rps", hook["rps"])
        ingest = applied["median"]
        if "pgbench_insert" in c16:
            checks.append(
                (
                    "ingest c16, applied / pgbench plain INSERT c16",
                    ingest / c16["pgbench_insert"]["rps"]["median"],
                    ">=",
                    TARGETS["ingest_vs_insert"],
                )
            )
        if "naive" in c16:
            checks.append(
                (
                    "ingest c16, applied / naive hook c16",
                    ingest / c16["naive"]["rps"]["median"],
                    ">=",
                    TARGETS["ingest_vs_naive"],
                )
            )
        checks.append(("ingest c16 errors", max(hook["errors"]["runs"]), "==", 0))
        if "baseline" in c16:
            theirs = c16["baseline"]
            checks.append(
                (
                    "issue 12: ingest c16, applied, today / baseline (median of paired runs)",
                    statistics.median(
                        paired_ratios(
                            applied["runs"],
                            theirs.get("applied_rps", theirs["rps"])["runs"],
                        )
                    ),
                    ">=",
                    TARGETS["ingest_vs_baseline"],
                )
            )
    if "nodb" in c16 and "minimal" in c16 and "cpu_server_us" in c16["nodb"]:
        checks.append(
            (
                "hook's own CPU per request (no database) / minimal FastAPI route's, c16",
                c16["nodb"]["cpu_server_us"]["median"] / c16["minimal"]["cpu_server_us"]["median"],
                "<=",
                TARGETS["own_cpu_vs_minimal"],
            )
        )
    if "merge" in result:
        m = result["merge"]
        checks.append(
            (
                "merge / set-based UPDATE with history triggers (median of paired runs)",
                m["paired_ratio"]["median"],
                ">=",
                TARGETS["merge_vs_floor"],
            )
        )
        if "paired_ratio_baseline" in m:
            checks.append(
                (
                    "issue 12: merge, today / baseline apply_pending (median of paired runs)",
                    m["paired_ratio_baseline"]["median"],
                    ">=",
                    TARGETS["merge_vs_baseline"],
                )
            )
    for rate, lag in result.get("lag", {}).items():
        bound = TARGETS["lag_p99_ms"].get(int(rate))
        if bound is not None:
            checks.append(
                (
                    f"lag p99 at {rate} changes/s (ms)",
                    lag["p99_ms"]["median"],
                    "<=",
                    bound,
                )
            )
    if result.get("peak_rss_mb"):
        checks.append(
            (
                "peak RSS per worker (MB)",
                result["peak_rss_mb"],
                "<=",
                TARGETS["rss_mb"],
            )
        )
    if "large_bodies" in result and "hook" in result["large_bodies"]:
        checks.append(
            (
                f"peak RSS per worker, {result['large_bodies']['bodies']} x 1 MiB at once (MB)",
                result["large_bodies"]["hook"]["peak_rss_mb"],
                "<=",
                TARGETS["rss_mb"],
            )
        )
    return [
        {
            "target": name,
            "value": round(value, 3),
            "rule": f"{op} {target}",
            "verdict": "PASS" if COMPARE[op](value, target) else "FAIL",
        }
        for name, value, op, target in checks
    ]


def shares(figs: dict[str, Any]) -> str:
    """The busiest worker's CPU share, run by run, or a dash for pgbench."""
    runs = figs.get("busiest_worker_share", {}).get("runs")
    return " / ".join(f"{r:.2f}" for r in runs) if runs else "-"


CPU_PARTS = ("cpu_server_us", "cpu_db_us", "cpu_client_us")


def cpu_total(figs: dict[str, Any]) -> float:
    """Median CPU per request of one kind of run, all parts together (us of one core)."""
    return sum(figs[part]["median"] for part in CPU_PARTS)


def cpu_bound_rate(figs: dict[str, Any], cores: int, workers: int) -> float:
    """The most requests/s this CPU per request allows: the machine, or the workers, full.

    Everything (server, database, load generator) shares the cores, and the
    server's own part runs in at most ``workers`` processes of one core each.
    """
    return min(cores / cpu_total(figs), workers / figs["cpu_server_us"]["median"]) * 1e6


def cpu_ceiling(c16: dict[str, Any], cores: int, workers: int) -> float:
    """The best hook / no-database ratio the measured CPU per request allows."""
    return cpu_bound_rate(c16["hook"], cores, workers) / cpu_bound_rate(c16["nodb"], cores, workers)


def cpu_section(result: dict[str, Any]) -> list[str]:
    """Where each kind of run spent its CPU, per request, and what that bounds."""
    rows = [
        (connections, kind, figs)
        for connections, kinds in result["ingest"].items()
        for kind, figs in kinds.items()
        if "cpu_db_us" in figs
    ]
    if not rows:
        return []
    lines = [
        "",
        "### Where the CPU went, per request (us of one core, medians)",
        "",
        "| connections | server | hook workers | database | wrk / pgbench | total | cores busy |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for connections, kind, figs in rows:
        lines.append(
            f"| {connections} | {kind} | "
            + " | ".join(f"{figs[part]['median']:.0f}" for part in CPU_PARTS)
            + f" | {cpu_total(figs):.0f} | {figs['cores_busy']['median']:.2f} |"
        )
    c16 = result["ingest"].get("16")
    if c16 and all("cpu_db_us" in c16[k] for k in ("hook", "nodb")):
        cores, workers = result["machine"]["cores"], result["config"]["workers"]
        hook_max = cpu_bound_rate(c16["hook"], cores, workers)
        lines += [
            "",
            f"Everything here shares {cores} cores and the server runs {workers} worker "
            "process(es), so its rate is at most the smaller of cores / total and "
            "workers / its own part. At 16 connections that is "
            f"{hook_max:.0f} requests/s for the hook and "
            f"{cpu_bound_rate(c16['nodb'], cores, workers):.0f} for the no-database server: "
            f"with this work per request, hook / no-database cannot exceed "
            f"{cpu_ceiling(c16, cores, workers):.2f} on this machine. The hook measured "
            f"{c16['hook']['rps']['median']:.0f}, {c16['hook']['rps']['median'] / hook_max:.0%} "
            "of its CPU bound; below 100% it waits (on its one batch in flight) "
            "rather than computes.",
        ]
    return lines


def paired_rows(result: dict[str, Any], pairs: tuple[tuple[str, str, str], ...]) -> list[str]:
    """One table row per pair of servers, connections and figure: each pair's ratio, the median."""
    rows = []
    for connections, kinds in result["ingest"].items():
        for mine, theirs, label in pairs:
            if mine not in kinds or theirs not in kinds:
                continue
            for figure, name in PAIRED_FIGURES:
                if figure not in kinds[mine] or figure not in kinds[theirs]:
                    continue
                if 0 in kinds[theirs][figure]["runs"]:  # no database: no CPU there to compare
                    continue
                ratios = paired_ratios(kinds[mine][figure]["runs"], kinds[theirs][figure]["runs"])
                rows.append(ratio_row(f"| {connections} | {label} | {name}", ratios))
    return rows


def ratio_row(cells: str, ratios: list[float]) -> str:
    """A table row: its first ``cells``, then the median of ``ratios`` and each of them."""
    each = " / ".join(f"{r:.3f}" for r in ratios)
    return f"{cells} | {statistics.median(ratios):.3f} | {each} |"


def paired_table(title: str, sentence: str, first: str, ratio: str, rows: list[str]) -> list[str]:
    """A section of pair-by-pair ratios; nothing when there are no rows."""
    if not rows:
        return []
    return [
        "",
        f"### {title}",
        "",
        sentence,
        "",
        f"| {first} | server | figure | median of {ratio} | each pair |",
        "| ---: | --- | --- | ---: | --- |",
        *rows,
    ]


#: The figures compared pair by pair, and their names in the report.
PAIRED_FIGURES = (
    ("rps", "requests/s"),
    ("applied_rps", "applied/s"),
    ("cpu_db_us", "database CPU per request"),
    ("p99_ms", "p99"),
)


def baseline_section(result: dict[str, Any]) -> list[str]:
    """Today over the baseline, pair by pair (each pair ran back to back), with the median."""
    rows = paired_rows(
        result, (("hook", "baseline", "hook"), ("nodb", "baseline_nodb", "no database"))
    )
    return paired_table(
        f"Today against the baseline ({result['config']['baseline']})",
        "Each run of today's server and the baseline's ran back to back (which one first "
        "alternates); a ratio above 1 means today is higher.",
        "connections",
        "today / baseline",
        rows,
    )


def variant_section(result: dict[str, Any]) -> list[str]:
    """The hook as deployed over the variant, pair by pair, with the median."""
    rows = paired_rows(result, (("hook", "variant", "hook"),))
    for rate, theirs in result.get("lag_variant", {}).items():
        mine = result["lag"][rate]
        for figure, name in (("p50_ms", "lag p50"), ("p99_ms", "lag p99")):
            if figure not in mine or figure not in theirs:
                continue
            ratios = paired_ratios(mine[figure]["runs"], theirs[figure]["runs"])
            label = f"{name} ({fmt(mine[figure], 1)} against {fmt(theirs[figure], 1)} ms)"
            rows.append(ratio_row(f"| {rate}/s | hook | {label}", ratios))
    return paired_table(
        f"The hook as deployed against {variant_name(result['config'].get('variant') or {})}",
        "Each run of the two ran back to back (which one first alternates); a ratio above 1 "
        "means the hook as deployed is higher.",
        "connections or rate",
        "deployed / variant",
        rows,
    )


def variant_name(settings: dict[str, str]) -> str:
    """``the hook with MERGE_LINGER=0``."""
    return "the hook with " + ", ".join(f"{k}={v}" for k, v in settings.items())


def parse_variant(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs as a dict; SystemExit naming the one that is not one."""
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"bench: --variant takes NAME=VALUE settings, got {pair!r}")
        settings[name] = value
    return settings


def fmt(fig: dict[str, Any], digits: int = 1) -> str:
    """A figure as ``median (min-max)``."""
    return f"{fig['median']:.{digits}f} ({fig['min']:.{digits}f}-{fig['max']:.{digits}f})"


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: machine, tables, targets."""
    m = result["machine"]
    lines = [
        f"# Bench results {result['started_at']}",
        "",
        f"Machine: {m['cores']} cores, {m['platform']}; Python {m['python']}; "
        f"PostgreSQL {m['postgres']['server_version']} (fsync={m['postgres']['fsync']}, "
        f"synchronous_commit={m['postgres']['synchronous_commit']}); {m['wrk']}; {m['pgbench']}; "
        f"hook workers={result['config']['workers']}, pool={result['config']['pool']}.",
        f"Runs: {result['config']['runs']} x {result['config']['seconds']} s per ingest figure, "
        f"{result['config']['merge_runs']} per merge figure, {result['config']['lag_runs']} x "
        f"{result['config']['lag_seconds']} s per lag figure; each is median (min-max).",
        "",
        "## Ingest",
        "",
        "| connections | server | requests/s | p50 ms | p99 ms | errors | busiest worker |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    baseline = result["config"].get("baseline")
    names = {
        "hook": "hook (python -m hook)",
        "pgbench_insert": "pgbench plain INSERT",
        "naive": "naive hook (one INSERT per request)",
        "pgbench": "pgbench sync.receive",
        "nodb": "hook, no database",
        "minimal": "minimal FastAPI route",
        "baseline": f"baseline hook ({baseline})",
        "baseline_nodb": f"baseline, no database ({baseline})",
        "variant": variant_name(result["config"].get("variant") or {}),
    }
    for connections, kinds in result["ingest"].items():
        for kind, figs in kinds.items():
            lines.append(
                f"| {connections} | {names[kind]} | {fmt(figs['rps'], 0)} "
                f"| {fmt(figs['p50_ms'], 2)} | {fmt(figs['p99_ms'], 2)} "
                f"| {int(max(figs['errors']['runs']))} | {shares(figs)} |"
            )
    lines += [
        "",
        "Busiest worker: its share of the workers' CPU in each run (0.5 is even). "
        f"Above {ONE_SIDED} wrk's connections all landed on one worker; the "
        "no-database figure in the targets is the median of the other runs.",
    ]
    applied = [
        f"| {connections} | {names[kind]} | {fmt(figs['rps'], 0)} "
        f"| {fmt(figs['drain_s'], 2)} | {fmt(figs['applied_rps'], 0)} |"
        for connections, kinds in result["ingest"].items()
        for kind, figs in kinds.items()
        if "applied_rps" in figs
    ]
    if applied:
        lines += [
            "",
            "Answered, then applied: each run lasts until nothing is pending (the hook applies "
            "right after its answers, ADR 0022; the baseline applied before answering). "
            "Applied/s divides the requests by the load's time plus that wait, and is the "
            "rate the targets judge.",
            "",
            "| connections | server | answered/s | pending at the end, s to apply | applied/s |",
            "| ---: | --- | ---: | ---: | ---: |",
            *applied,
        ]
    lines += cpu_section(result)
    lines += baseline_section(result)
    lines += variant_section(result)
    if "merge" in result:
        mg = result["merge"]
        lines += [
            "",
            f"## Merge ({mg['backlog']:,} pending changes, apply_pending({mg['batch']}))",
            "",
            "| method | changes/s |",
            "| --- | ---: |",
            f"| sync.apply_pending in batches | {fmt(mg['apply_pending'], 0)} |",
            "| one set-based UPDATE ... FROM, history triggers only (the floor) | "
            f"{fmt(mg['set_based_update_history_only'], 0)} |",
            "| the same UPDATE with every trigger (history and findings) | "
            f"{fmt(mg['set_based_update'], 0)} |",
            "",
            "Each run applies the backlog every way, back to back; the target uses the "
            "median of the runs' ratios to the floor: "
            + " / ".join(f"{r:.3f}" for r in mg["paired_ratio"]["runs"])
            + "; to the UPDATE with every trigger: "
            + " / ".join(f"{r:.3f}" for r in mg["paired_ratio_all_triggers"]["runs"])
            + ".",
            "",
            f"Same final values in fragrances: {mg['same_final_values']}.",
        ]
        if "paired_ratio_baseline" in mg:
            lines += [
                "",
                f"The baseline ({mg['baseline']}) applied the same bodies with its own "
                f"apply_pending({mg['batch']}) on a database its migrations built: "
                f"{fmt(mg['baseline_apply_pending'], 0)} changes/s. Today / baseline, pair by "
                "pair: "
                + " / ".join(f"{r:.3f}" for r in mg["paired_ratio_baseline"]["runs"])
                + f" (median {mg['paired_ratio_baseline']['median']:.3f}).",
            ]
    for lg in result.get("lag", {}).values():
        lines += [
            "",
            f"## Lag at {lg['rate']} changes/s (paced asyncio client, open loop)",
            "",
            f"Until visible in fragrances (read by another connection): p50 "
            f"{fmt(lg['p50_ms'], 2)} ms, p99 {fmt(lg['p99_ms'], 2)} ms. Until answered: p50 "
            f"{fmt(lg['answered_p50_ms'], 2)} ms, p99 {fmt(lg['answered_p99_ms'], 2)} ms; "
            f"errors {int(lg['errors']['max'])}, not visible {int(lg['invisible']['max'])} "
            f"of {int(lg['sent']['median'])} per run."
            + (
                f" The client sent a change p99 {fmt(lg['client_late_p99_ms'], 2)} ms after "
                "its moment (counted in both lags)."
                if "client_late_p99_ms" in lg
                else ""
            ),
            *(f"- {count} x {kind}" for kind, count in lg["error_kinds"].items()),
        ]
    if result.get("peak_rss_mb"):
        lines += [
            "",
            "## Memory",
            "",
            f"Peak RSS per worker (VmHWM) under the "
            f"{max(result['config']['connections'])}-connection load: "
            f"{result['peak_rss_mb']:.1f} MB.",
        ]
    if "catalog" in result:
        lines += [
            "",
            "## Catalog check (sync.check_catalog())",
            "",
            "| rows | first call, s (opens every finding) | again, s | rules broken "
            "| open findings |",
            "| ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {int(rows):,} | {c['first_s']:.3f} | {c['again_s']:.3f} | "
                f"{c['rules_broken']} | {c['open_findings']:,} |"
                for rows, c in result["catalog"].items()
            ),
        ]
    if "large_bodies" in result:
        lb = result["large_bodies"]
        lines += [
            "",
            f"{lb['bodies']} bodies of 1 MiB at once (after the runs above), peak RSS per worker: "
            + "; ".join(
                f"{names[kind]} {lb[kind]['peak_rss_mb']:.1f} MB, "
                f"{lb[kind]['answered_2xx']} of {lb['bodies']} answered 202"
                for kind in ("hook", "baseline")
                if kind in lb
            )
            + ".",
        ]
    lines += [
        "",
        "## Targets",
        "",
        "| target | value | rule | verdict |",
        "| --- | ---: | --- | --- |",
    ]
    lines += [
        f"| {v['target']} | {v['value']} | {v['rule']} | {v['verdict']} |"
        for v in result["verdicts"]
    ]
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    """Versions of the load tools and the hook's stack."""

    def first_line(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).splitlines()[0].strip()

    import fastapi
    import uvicorn

    return {
        "wrk": first_line([tool("wrk"), "--version"]).split(" [")[0],
        "pgbench": first_line([tool("pgbench"), "--version"]),
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "psycopg": psycopg.__version__,
    }


def main() -> int:
    """Run every part of the suite and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 5)))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)))
    parser.add_argument(
        "--workers",
        type=int,
        # As deployed: the hook's own default (one worker), unless WORKERS says otherwise.
        default=int(os.environ.get("WORKERS", Settings.model_fields["workers"].default)),
    )
    parser.add_argument("--pool", type=int, default=int(os.environ.get("DB_POOL_MAX_SIZE", 10)))
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--merge-runs", type=int, default=5)
    parser.add_argument("--lag-rates", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--lag-seconds", type=int, default=10)
    parser.add_argument("--lag-runs", type=int, default=5)
    parser.add_argument("--catalog-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["ingest", "merge", "lag", "memory", "catalog"]
    )
    parser.add_argument("--label", default="", help="suffix of the results file names")
    parser.add_argument(
        "--baseline",
        default="",
        metavar="GIT_REF",
        help="also run the hook (and its no-database server) of this commit, interleaved "
        "run by run with today's, and report today / baseline per pair",
    )
    parser.add_argument(
        "--variant",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="also run today's hook with these settings in the ingest rounds, and report "
        "the hook as deployed / this variant per pair",
    )
    args = parser.parse_args()
    variant = parse_variant(args.variant)

    started = dt.datetime.now(dt.UTC)
    result: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "connections": args.connections,
            "seconds": args.seconds,
            "runs": args.runs,
            "lag_runs": args.lag_runs,
            "merge_runs": args.merge_runs,
            "workers": args.workers,
            "pool": args.pool,
            "backlog": args.backlog,
            "batch": args.batch,
            "lag_seconds": args.lag_seconds,
            "catalog_rows": args.catalog_rows,
            "postgres_args": POSTGRES_ARGS,
            "baseline": args.baseline,
            "variant": variant,
        },
    }
    workdir = Path(tempfile.mkdtemp(prefix="fragrance-bench-work-"))
    with throwaway_postgres() as pg:
        log(f"PostgreSQL on port {pg.settings['port']}; migrating and loading the catalog")
        prepare_database(pg, "bench")
        result["machine"] = {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "postgres": server_settings(pg),
            **versions(),
        }
        hook_env = {
            "WORKERS": str(args.workers),
            "DB_POOL_MAX_SIZE": str(args.pool),
        }
        hook_url = url(pg, "bench", "sync_hook_login")
        hook = start_bench_hook(hook_url, workdir, **hook_env)
        nodb = start_bench_hook(hook_url, workdir, "bench.nodb_hook", **hook_env)
        servers = {
            "hook": hook,
            "nodb": nodb,
            "naive": start_plain_server("bench.naive_hook", url(pg, "bench"), workdir, **hook_env),
            "minimal": start_plain_server("bench.minimal_route", "", workdir),
        }
        if variant:
            servers["variant"] = start_bench_hook(hook_url, workdir, **(hook_env | variant))
        if args.baseline:
            tree = export_baseline(args.baseline, workdir)
            # As that code was deployed: a commit whose requirements had neither httptools
            # nor uvloop (c5f8f8b) ran on h11 and asyncio's loop, and today's stack is part
            # of what the comparison shows; a later one runs on the stack it installed.
            prepare_database(pg, "bench_baseline", tree / "migrations")
            deployed = (
                {}
                if "httptools" in (tree / "requirements.txt").read_text()
                else {"HTTP_PARSER": "h11"}
            )
            servers["baseline"], servers["baseline_nodb"] = start_baseline(
                tree, url(pg, "bench_baseline", "sync_hook_login"), workdir, **deployed, **hook_env
            )
        try:
            if "ingest" not in args.skip:
                result["ingest"], result["peak_rss_mb"] = bench_ingest(
                    pg, servers, hook_url, args, workdir
                )
            else:
                result["ingest"] = {}
            if "lag" not in args.skip:
                lagging = {kind: servers[kind] for kind in ("hook", "variant") if kind in servers}
                lags = {
                    str(rate): bench_lag(lagging, url(pg, "bench"), rate, args)
                    for rate in args.lag_rates
                }
                result["lag"] = {rate: by_kind["hook"] for rate, by_kind in lags.items()}
                if variant:
                    result["lag_variant"] = {
                        rate: by_kind["variant"] for rate, by_kind in lags.items()
                    }
            if "memory" not in args.skip:
                result["large_bodies"] = bench_large_bodies(servers)
        finally:
            for server in servers.values():
                stop_hook(server)
        if "merge" not in args.skip:
            result["merge"] = bench_merge(pg, args)
        if "catalog" not in args.skip:
            result["catalog"] = bench_catalog(pg, args)
    shutil.rmtree(workdir, ignore_errors=True)
    result["verdicts"] = verdicts(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y%m%dT%H%M%SZ") + (f"-{args.label}" if args.label else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    print(f"written: bench/results/{stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
