"""What the kept tables grow by per delivery, and the WAL of the scheduled purge.

``python bench/storage_cost.py`` starts its own PostgreSQL with bench's
settings (fsync and synchronous_commit on, never the server on 5432),
migrates a database with the 5,000-row catalog, and sends ``--deliveries``
CMS deltas through the hook's path: ``sync.store_many`` in batches of 50,
then ``sync.apply_received`` until nothing is pending. The mix is the one
docs/operations.md ("What grows") states: 70 % cost changes, 20 %
descriptions of 80 characters, 10 % renames. It reports per row the growth
of ``sync.fragrance_history`` and of ``sync.inbox`` (each with its indexes;
the inbox as left, with the version each merge left behind, and after
``VACUUM FULL``, as a vacuumed inbox packs it).

Then it dates those deliveries 100 days back (a bulk update with the
triggers off, as a superuser: received moments cannot be changed otherwise),
checkpoints, and runs ``CALL sync.purge_inbox()``: the WAL it wrote and the
transactions it committed. It writes bench/results/<time>-storage-cost.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

SIZES = """
select pg_total_relation_size('sync.fragrance_history'),
       pg_total_relation_size('sync.inbox'),
       (select count(*) from sync.fragrance_history),
       (select count(*) from sync.inbox),
       (select avg(length(body)) from sync.inbox)
"""

AGE = """
set session_replication_role = replica;
update sync.inbox set received_at = received_at - interval '100 days',
                      processed_at = processed_at - interval '100 days';
set session_replication_role = origin;
"""


def delta(rng: random.Random) -> bytes:
    """One CMS delta of the mix: a cost, a description of 80 characters, or a name."""
    fragrance_id = rng.randrange(5000)
    pick = rng.random()
    if pick < 0.7:
        change: dict[str, object] = {"cost": rng.randrange(1, 1000)}
    elif pick < 0.9:
        change = {"description": "".join(rng.choice("abcdefghij ") for _ in range(79)) + "."}
    else:
        change = {"name": f"Fragrance {fragrance_id} {rng.randrange(10**6)}"}
    return json.dumps({"fragrance_id": fragrance_id, **change}).encode()


def deliver(conn: psycopg.Connection, count: int, rng: random.Random) -> None:
    """Store ``count`` deltas as the hook does, 50 per call, and apply them as its merger does."""
    for start in range(0, count, 50):
        bodies = [delta(rng) for _ in range(min(50, count - start))]
        n = len(bodies)
        conn.execute(
            "select count(*) from sync.store_many(%s, %s, %s, %s, %s)",
            [
                bodies,
                ["application/json"] * n,
                ["127.0.0.1"] * n,
                ["bench"] * n,
                [uuid.uuid4() for _ in range(n)],
            ],
        )
        while conn.execute("select count(*) from sync.apply_received(1000)").fetchone() != (0,):
            pass


def main() -> int:
    """Deliver, measure the growth, age, purge, write bench/results/<time>-storage-cost.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    with bench.throwaway_postgres() as pg:
        bench.log(f"PostgreSQL on port {pg.settings['port']}; migrating")
        bench.prepare_database(pg, "storage")
        with psycopg.connect(bench.url(pg, "storage"), autocommit=True) as conn:
            history0, inbox0, *_ = conn.execute(SIZES).fetchone() or ()
            bench.log(f"delivering {args.deliveries:,}")
            deliver(conn, args.deliveries, random.Random(7))
            conn.execute("checkpoint")
            history1, inbox1, history_rows, inbox_rows, body = conn.execute(SIZES).fetchone() or ()
            body = float(body)
            statuses = dict(conn.execute("select status, count(*) from sync.inbox group by 1"))
            conn.execute("vacuum full sync.inbox")
            inbox_packed = conn.execute("select pg_total_relation_size('sync.inbox')").fetchone()
            bench.log("purging")
            conn.execute(AGE)
            conn.execute("checkpoint")
            wal0 = conn.execute("select pg_current_wal_lsn()").fetchone() or ()
            conn.execute("call sync.purge_inbox()")
            wal, left, detail = (
                conn.execute(
                    "select (pg_current_wal_lsn() - %s::pg_lsn)::float8,"
                    " (select count(*) from sync.inbox),"
                    " (select detail from sync.job_run where job = 'purge_inbox'"
                    "  order by id desc limit 1)",
                    [str(wal0[0])],
                ).fetchone()
                or ()
            )

    assert inbox_packed is not None
    lines = [
        "# Storage per delivery, and the WAL of the scheduled purge",
        "",
        f"Started {started:%Y-%m-%dT%H:%M:%SZ}; `python bench/storage_cost.py --deliveries "
        f"{args.deliveries}`: bench's PostgreSQL settings, the 5,000-row catalog, deltas "
        "through `sync.store_many` (50 a call) and `sync.apply_received`: 70 % costs, "
        "20 % descriptions of 80 characters, 10 % renames.",
        "",
        f"- Deliveries: {inbox_rows:,} ({statuses}); bodies {body:.0f} bytes on average.",
        f"- `sync.fragrance_history`: {history_rows:,} rows, "
        f"{(history1 - history0) / history_rows:.0f} bytes per row with its indexes.",
        f"- `sync.inbox`: {(inbox1 - inbox0) / inbox_rows:.0f} bytes per delivery with its "
        f"indexes as left (each merge leaves the stored version behind until vacuum), "
        f"{inbox_packed[0] / inbox_rows:.0f} after `VACUUM FULL`.",
        f"- `CALL sync.purge_inbox()` of those {inbox_rows:,} deliveries, dated 100 days back, "
        f"after a checkpoint: {wal / 1e6:.1f} MB of WAL, {wal / inbox_rows:.0f} bytes per "
        f"delivery purged, in steps of 10,000; {left:,} left; the run's detail: "
        f"{json.dumps(detail)}.",
    ]
    bench.write_report(lines, started, "storage-cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
