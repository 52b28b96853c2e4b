"""The catalog check with name.lookalike's fold (scripts, spaces), beside a baseline.

``python bench/lookalike_cost.py --baseline <git ref>`` starts its own
PostgreSQL with bench's settings and builds two databases, today's code and
the baseline's, each by its own migrations. Both get the same data: the
catalog grown to ``--fragrances`` rows (bench's GROW_CATALOG: 42 names of
``sql/catalog.sql``'s 5,000 are not ASCII, all Latin), then every
``--foreign-every``-th name written in capitals with the Latin letters that
have a Cyrillic lookalike replaced by it ("ROSE GARDEN" becomes "RОЅЕ GАRDЕN",
of both scripts: the names the fold reads), loaded without the write
triggers, as an adopted catalog arrives.
Then ``sync.check_catalog()`` runs on each side: once where every finding is
new (a first check), then ``--runs`` times where they are open (the nightly
check), the order alternating run by run. Last, today's side times building
the folded-name index anew, as the last migration that builds it does. It writes
bench/results/<time>-lookalike-cost.md; compare its two columns, not its
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

#: Latin capitals and the Cyrillic capitals that look like them (Unicode's confusables).
LATIN = "ABCEHIJKMOPSTXY"
CYRILLIC = (
    "\u0410\u0412\u0421\u0415\u041d\u0406\u0408\u041a\u041c\u041e\u0420\u0405\u0422\u0425\u0423"
)

FOREIGN = """
set session_replication_role = replica;  -- a bulk load: the write triggers do not fire
update public.fragrances
set name = translate(upper(name), '{latin}', '{cyrillic}')
where fragrance_id % {every} = 0;
reset session_replication_role;
"""


def stage(pg: bench.ThrowawayPostgresql, dbname: str, args: argparse.Namespace) -> int:
    """The catalog grown, every n-th name rewritten; returns how many names are not ASCII."""
    with psycopg.connect(bench.url(pg, dbname), autocommit=True) as conn:
        bench.empty_tables(conn, "sync.finding")
        copies = args.fragrances // 5000 - 1
        conn.execute(bench.GROW_CATALOG.replace("%(copies)s", str(copies)))
        if args.foreign_every:
            every = args.foreign_every
            conn.execute(FOREIGN.format(latin=LATIN, cyrillic=CYRILLIC, every=every))
        conn.execute("vacuum analyze")
        row = conn.execute(
            "select count(*) from public.fragrances where octet_length(name) <> char_length(name)"
        ).fetchone()
        return int(row[0]) if row else 0


def check_once(conn: psycopg.Connection) -> tuple[float, dict[str, int]]:
    """One catalog check: seconds, and the fragrances per name rule it reports."""
    started = time.perf_counter()
    rows = conn.execute("select rule, fragrances from sync.check_catalog()").fetchall()
    took = time.perf_counter() - started
    return took, {r[0]: r[1] for r in rows if r[0] in ("name.duplicate", "name.lookalike")}


def index_migration() -> Path:
    """The last migration that builds the folded-name index: today's expression."""
    return max(
        p
        for p in bench.MIGRATIONS.glob("[0-9]*.sql")
        if ".rollback" not in p.name
        and "create index sync_fragrances_name_key_idx" in p.read_text()
    )


def index_build(conn: psycopg.Connection) -> float:
    """Seconds to build the folded-name index anew (as its last migration does), rolled back."""
    migration = index_migration().read_text()
    start = migration.index("drop index public.sync_fragrances_name_key_idx;")
    end = migration.index("comment on index public.sync_fragrances_name_key_idx")
    conn.execute("begin")
    try:
        started = time.perf_counter()
        conn.execute(migration[start:end])
        return time.perf_counter() - started
    finally:
        conn.execute("rollback")


def main() -> int:
    """Stage both sides, check each in turn, write bench/results/<time>-lookalike-cost.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="GIT_REF")
    parser.add_argument("--fragrances", type=int, default=200_000)
    parser.add_argument("--foreign-every", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    sides = {"today": "lookalike_today", args.baseline: "lookalike_baseline"}
    first: dict[str, tuple[float, dict[str, int]]] = {}
    nightly: dict[str, list[float]] = {side: [] for side in sides}
    with (
        tempfile.TemporaryDirectory(
            prefix="fragrance-lookalike-cost-", ignore_cleanup_errors=True
        ) as tmp,
        bench.throwaway_postgres() as pg,
    ):
        workdir = Path(tmp)
        bench.log(f"PostgreSQL on port {pg.settings['port']}; migrating and staging")
        bench.prepare_database(pg, sides["today"])
        tree = bench.export_baseline(args.baseline, workdir)
        bench.prepare_database(pg, sides[args.baseline], tree / "migrations")
        foreign = {side: stage(pg, db, args) for side, db in sides.items()}
        conns = {
            side: psycopg.connect(bench.url(pg, db), autocommit=True) for side, db in sides.items()
        }
        try:
            for side, conn in conns.items():
                first[side] = check_once(conn)
            for repeat in range(args.runs):
                for side in list(sides)[:: 1 if repeat % 2 == 0 else -1]:
                    nightly[side].append(check_once(conns[side])[0])
                bench.log(f"run {repeat + 1} of {args.runs}")
            build = index_build(conns["today"])
        finally:
            for conn in conns.values():
                conn.close()

    today, baseline = first["today"], first[args.baseline]
    lines = [
        f"# The catalog check folding names (name.lookalike), today beside {args.baseline}",
        "",
        f"Started {started:%Y-%m-%dT%H:%M:%SZ}; `python bench/lookalike_cost.py --baseline "
        f"{args.baseline} --fragrances {args.fragrances} --foreign-every {args.foreign_every}"
        f" --runs {args.runs}`: {args.fragrances:,} fragrances, {foreign['today']:,} names not"
        " ASCII (Cyrillic capitals that look Latin, among Latin ones).",
        "",
        f"| `sync.check_catalog()` | today s | {args.baseline} s | ratio |",
        "| --- | --- | --- | --- |",
        f"| first check (every finding new) | {today[0]:.2f} | {baseline[0]:.2f}"
        f" | {today[0] / baseline[0]:.3f} |",
    ]
    t_med, b_med = statistics.median(nightly["today"]), statistics.median(nightly[args.baseline])
    lines += [
        f"| nightly check, median of {args.runs} | {t_med:.2f} | {b_med:.2f}"
        f" | {t_med / b_med:.3f} |",
        "",
        f"Fragrances per rule, first check: today {today[1]}, {args.baseline} {baseline[1]}.",
        "",
        "Every nightly check, s: "
        + "; ".join(f"{side} " + ", ".join(f"{s:.2f}" for s in nightly[side]) for side in sides),
        "",
        f"Building the folded-name index anew ({index_migration().name}'s statements):"
        f" {build:.2f} s.",
    ]
    bench.write_report(lines, started, "lookalike-cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
