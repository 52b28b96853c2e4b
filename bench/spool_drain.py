"""How fast the spool fills during an outage and drains after it, for two trees side by side.

    .venv/bin/python bench/spool_drain.py [--other /path/to/older/tree] [--rounds 3]

For each round and each tree (this one, and ``--other`` when given, e.g. an
older commit unpacked with ``git archive <commit> | tar -x -C /tmp/old``), on
a fresh clone of one migrated database of a durable throwaway PostgreSQL
(bench/run.py's settings): start ``python -m hook`` from that tree, stop
PostgreSQL, load the hook with wrk (16 connections, ``--seconds``) so that
every delivery is spooled, start PostgreSQL again and sample ``/healthz``
and count the inbox's rows every 20 ms until every spooled delivery is in it.
It prints, per run, the deliveries spooled, the spooling rate, and the
drain rate (records over the time from the first row in the inbox to the
last, so the time the hook takes to notice the database is back is not
counted). With ``--under-load`` it instead stops PostgreSQL for 3 s in the
middle of 40 s of wrk (16 connections) and reports the spool's greatest
depth, its depth at the end, and when it was empty again.
Figures are only comparable within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]
from processes import free_port  # noqa: E402
from run import prepare_database, run_wrk, throwaway_postgres, url  # noqa: E402


def start_tree_hook(tree: Path, database_url: str, workdir: Path, tag: str) -> tuple:
    """``python -m hook`` run from ``tree`` (its own code), with a fresh spool directory."""
    port = free_port()
    log = workdir / f"hook-{tag}.log"
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "DB_TIMEOUT": "5",
        "SPOOL_DIR": str(workdir / f"spool-{tag}"),
        "LOG_LEVEL": "warning",
        "PYTHONPATH": str(tree),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hook"], cwd=tree, env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(base + "/healthz", timeout=10).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"hook from {tree} did not start:\n{log.read_text()}")


def one_run(pg, template: str, tree: Path, tag: str, seconds: int, workdir: Path) -> dict:
    """Spool under wrk with the database stopped, then time the drain."""
    with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
        admin.execute(f'drop database if exists "{tag}" with (force)')
        admin.execute(f'create database "{tag}" template "{template}"')
    process, base = start_tree_hook(tree, url(pg, tag, "sync_hook_login"), workdir, tag)
    try:
        pg.terminate()
        load = run_wrk(base, 16, seconds)
        depth = httpx.get(base + "/healthz", timeout=30).json()["spool_depth"]
        pg.start()
        # Count rows in the inbox (as the superuser, beside the hook), until all are there.
        samples = []
        deadline = time.monotonic() + 600
        with psycopg.connect(url(pg, tag), autocommit=True) as watch:
            while time.monotonic() < deadline:
                count = watch.execute("select count(*) from sync.inbox").fetchone()[0]
                samples.append((time.monotonic(), count))
                if count >= depth:
                    break
                time.sleep(0.02)
        started = next(t for t, n in samples if n > 0)
        ended = samples[-1][0]
    finally:
        process.terminate()
        process.wait(30)
    with psycopg.connect(url(pg, tag)) as conn:
        stored = conn.execute("select count(*) from sync.inbox").fetchone()[0]
    return {
        "tree": str(tree),
        "wrk": load,
        "spooled": depth,
        "answered": load["requests"],
        "errors": load["errors"],
        "spool_rps": round(load["rps"]),
        "drain_seconds": round(ended - started, 2),
        "drain_rps": round(depth / max(ended - started, 1e-3)),
        "inbox_rows": stored,
    }


def under_load(pg, template: str, tree: Path, tag: str, workdir: Path) -> dict:
    """A 3 s outage in the middle of 16 connections of wrk: when is the spool empty again."""
    with psycopg.connect(url(pg, "postgres"), autocommit=True) as admin:
        admin.execute(f'drop database if exists "{tag}" with (force)')
        admin.execute(f'create database "{tag}" template "{template}"')
    process, base = start_tree_hook(tree, url(pg, tag, "sync_hook_login"), workdir, tag)
    seconds = 40
    wrk = subprocess.Popen(
        [
            "wrk",
            "-t2",
            "-c16",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(ROOT / "bench" / "ingest.lua"),
            base + "/notifications",
        ],
        stdout=subprocess.DEVNULL,
    )
    samples = []
    try:
        start = time.monotonic()
        time.sleep(3)
        pg.terminate()
        time.sleep(3)
        pg.start()
        back = time.monotonic() - start
        while wrk.poll() is None:
            try:
                depth = httpx.get(base + "/healthz", timeout=30).json()["spool_depth"]
            except httpx.HTTPError:
                depth = None
            samples.append((round(time.monotonic() - start, 2), depth))
            time.sleep(0.1)
    finally:
        wrk.wait()
        process.terminate()
        process.wait(30)
    depths = [d for _, d in samples if d is not None]
    emptied = next((t for t, d in samples if t > back and d == 0), None)
    return {
        "tree": str(tree),
        "database_back_at_s": round(back, 2),
        "max_depth": max(depths),
        "depth_at_end": depths[-1],
        "spool_empty_again_at_s": emptied,
    }


def main() -> int:
    """Alternate the trees for a few rounds and print one JSON line per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, help="another tree to compare (e.g. the old code)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument(
        "--under-load",
        action="store_true",
        help="instead: a 3 s outage during 40 s of wrk; report when the spool is empty again",
    )
    args = parser.parse_args()
    trees = [ROOT] + ([args.other] if args.other else [])
    workdir = Path(os.environ.get("BENCH_TMP") or "/tmp") / f"spool-drain-{os.getpid()}"
    workdir.mkdir(parents=True)
    with throwaway_postgres() as pg:
        prepare_database(pg, "spool_template")
        for n in range(args.rounds):
            for i, tree in enumerate(trees):
                if args.under_load:
                    result = under_load(pg, "spool_template", tree, f"l{n}t{i}", workdir)
                else:
                    result = one_run(pg, "spool_template", tree, f"r{n}t{i}", args.seconds, workdir)
                print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
