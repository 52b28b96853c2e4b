"""A deployment at an earlier release, used and tuned by a DBA, upgrades to this one intact.

test_migrations.py upgrades a database from the landed 0018 (whose
migrations still held the code). A real deployment is more likely at a later
release: its numbered migrations and its own db/ code, loaded by its own
9999-database-code.py. These tests install such a release from its
migrations/ and db/ as that commit held them (``tests/releases/``), use it through
its API as a site would (deliveries applied, rejected, pending, discarded; a
hand edit that opens findings; a revert; rules and settings a DBA tuned; a
job a DBA rescheduled), then run this release's one command and require
every row that was there before unchanged, the DBA's tunings still in force,
and a catalog identical to a fresh install's.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from catalog import describe_catalog
from conftest import ROOT, Server, load_smart_library, run_yoyo
from helpers import body

# The last commit of each release: the one before the next migration landed.
RELEASES = {
    "0041": "ecfb9e6",  # before 0042-stacked-marks
    "0058": "7bb8ce7",  # before 0059-pg-cron-jobids
}

RELEASE_FILES = ROOT / "tests" / "releases"

# Columns a later migration may rewrite in a row that was there: the rules'
# descriptions, which migrations 0045 to 0053 restate (a sentence, no tuning).
REWRITTEN = {"sync.rule": {"description"}}
# Rules a later migration makes judge more, by design: 0069 makes fragrance_id.out_of_range
# judge the catalog too (a negative id written by hand). Every other column stays.
RESCOPED = {"fragrance_id.out_of_range": "both"}


def install_release(server: Server, dbname: str, commit: str, into: Path) -> None:
    """Apply a release's own migrations and db/ code, as its deploy did.

    The release's files are kept as a tarball (``git archive --format=tar
    COMMIT migrations db | gzip -9 -n > tests/releases/NNNN-COMMIT.tar.gz``),
    not read from git's history: CI may test a shallow clone, which has none.
    """
    (archive,) = RELEASE_FILES.glob(f"*-{commit}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    yoyo = Path(sys.executable).with_name("yoyo")
    done = subprocess.run(
        [
            str(yoyo),
            "apply",
            "--batch",
            "--database",
            server.yoyo_url(dbname),
            str(into / "migrations"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def use_and_tune(conn: psycopg.Connection) -> None:
    """Leave rows of every kind and a DBA's tunings, through the release's API."""

    def receive(payload: dict[str, Any]) -> None:
        conn.execute("select sync.receive(%s)", [body(payload)])

    receive({"fragrance_id": 7, "cost": 41, "name": "Seven"})
    receive({"fragrance_id": 8, "cost": -1})  # rejected: quarantined
    receive({"fragrance_id": 9, "name": "Nine"})
    receive({"fragrance_id": 90000, "name": "New", "description": "", "cost": 1, "forbidden": True})
    receive({"fragrance_id": 10, "name": "Ten", "cost": 5})
    conn.execute("select * from sync.revert(3)")
    # Hand edits that break rules at rest: findings open.
    conn.execute("update public.fragrances set name = 'Rose' || chr(8203) where fragrance_id = 11")
    conn.execute("update public.fragrances set name = 'CHANEL' where fragrance_id = 12")
    conn.execute("update public.fragrances set name = 'Chanel' where fragrance_id = 13")
    conn.execute("select * from sync.check_catalog()")
    # A DBA's tunings: rules (severity and parameter), settings, a job's schedule.
    conn.execute("update sync.rule set severity = 'off' where code = 'name.lookalike'")
    conn.execute("update sync.rule set severity = 'error' where code = 'name.invisible_character'")
    conn.execute("update sync.rule set parameter = 100 where code = 'name.too_long'")
    conn.execute(
        "update sync.settings set purge_after = '30 days', discarded_purge_after = '2 years'"
    )
    conn.execute("update sync.job set schedule = '17 3 * * *' where name = 'check_catalog'")
    # Rejected under the tuned rules, then discarded by the DBA; one left pending.
    receive({"fragrance_id": 14, "name": "X" * 120})
    receive({"fragrance_id": 15, "cost": -2})
    conn.execute(
        "select sync.discard(max(id), 'bad cost from the CMS') from sync.inbox"
        " where fragrance_id = 15"
    )
    conn.execute("update sync.settings set apply_on_receipt = false")
    receive({"fragrance_id": 16, "cost": 77})
    conn.execute("update sync.settings set apply_on_receipt = true")


TABLES = """
select format('%I.%I', n.nspname, c.relname)
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and (n.nspname in ('sync', 'sync_private')
                                   or c.oid = 'public.fragrances'::regclass)
order by 1
"""


def every_row(conn: psycopg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of our tables and public.fragrances, as JSON objects, in a stable order."""
    tables = [row[0] for row in conn.execute(TABLES)]
    return {
        table: [
            row[0]
            for row in conn.execute(
                f"select to_jsonb(t) from {table} as t order by to_jsonb(t)::text"  # noqa: S608
            )
        ]
        for table in tables
    }


def kept(before: list[dict[str, Any]], after: list[dict[str, Any]], skip: set[str]) -> list[Any]:
    """The rows of before that are not in after, as they were, on before's columns."""
    columns = set(before[0]) - skip if before else set()
    now = [{k: v for k, v in row.items() if k in columns} for row in after]
    return [
        row
        for row in ({k: v for k, v in r.items() if k in columns} for r in before)
        if row not in now
    ]


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_a_used_and_tuned_release_upgrades_keeping_every_row_and_tuning(
    server: Server, bare_dbname: str, empty_dbname: str, tmp_path: Path, release: str
) -> None:
    load_smart_library(server, bare_dbname)
    install_release(server, bare_dbname, RELEASES[release], tmp_path)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        use_and_tune(conn)
        before = every_row(conn)
        before["sync.rule"] = [
            {**r, "applies_to": RESCOPED.get(r["code"], r["applies_to"])}
            for r in before["sync.rule"]
        ]
        statuses = conn.execute(
            "select status, count(*) from sync.inbox group by 1 order by 1"
        ).fetchall()
        assert [s for s, _ in statuses] == ["applied", "discarded", "pending", "rejected"], statuses
        assert conn.execute("select count(*) from sync.finding").fetchone()[0] >= 2

    run_yoyo(server, bare_dbname, "apply")

    with psycopg.connect(server.url(bare_dbname), autocommit=True) as upgraded:
        after = every_row(upgraded)
        lost = {
            table: missing
            for table, rows in before.items()
            if (missing := kept(rows, after.get(table, []), REWRITTEN.get(table, set())))
        }
        assert lost == {}
        in_force = upgraded.execute("""
            select v.rules->'name.lookalike'->>'severity',
                   v.rules->'name.invisible_character'->>'severity',
                   v.rules->'name.too_long'->>'parameter'
            from sync.rule_version as v order by v.version desc limit 1
        """).fetchone()
        assert in_force == ("off", "error", "100")
        with psycopg.connect(server.url(empty_dbname)) as fresh:
            assert describe_catalog(upgraded) == describe_catalog(fresh)
        # Today's code takes over: the pending delivery is applied, a new one merges.
        assert upgraded.execute("select applied from sync.apply_pending()").fetchone() == (1,)
        receipt = upgraded.execute(
            "select status from sync.receive(%s)", [body({"fragrance_id": 17, "cost": 3})]
        ).fetchone()
        assert receipt == ("applied",)


# Names a release's name.lookalike folded apart and this one folds alike: (names of two
# fragrances, the fold that makes them one). Written by hand at the release, whose
# findings say nothing of them; the first catalog check after the upgrade opens both.
FOLDED_ONLY_NOW = [
    (("\u03a1\u039f\u0394\u039f\u03a3", "\u03c1\u03bf\u03b4\u03bf\u03c2"), "final sigma"),
    (("\u0414\u041e\u041c", "\u1c81\u043e\u043c"), "old Cyrillic de"),
]


def test_names_that_fold_alike_only_after_an_upgrade_are_lookalikes_at_the_next_check(
    server: Server, bare_dbname: str, tmp_path: Path
) -> None:
    """Migration 0070's fold: the existing rows' findings are right after the catalog check."""
    load_smart_library(server, bare_dbname)
    install_release(server, bare_dbname, RELEASES["0058"], tmp_path)
    ids = {}
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        for n, (names, _) in enumerate(FOLDED_ONLY_NOW):
            for k, name in enumerate(names):
                ids[name] = 100 + 2 * n + k
                conn.execute(
                    "update public.fragrances set name = %s where fragrance_id = %s",
                    [name, ids[name]],
                )
        conn.execute("select * from sync.check_catalog()")
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as upgraded:
        upgraded.execute("select * from sync.run_job('check_catalog')")
        found = dict(
            upgraded.execute(
                "select fragrance_id, shared_with from sync.open_finding"
                " where rule = 'name.lookalike' and fragrance_id = any(%s)",
                [list(ids.values())],
            ).fetchall()
        )
    expected = {}
    for (a, b), _ in FOLDED_ONLY_NOW:
        expected[ids[a]] = [ids[b]]
        expected[ids[b]] = [ids[a]]
    assert found == expected


# --- Logins that existed before the sync, with rights of their own ----------------------------


def test_a_deploy_names_the_rights_a_login_that_existed_before_holds_beyond_its_role(
    own_server: Server,
) -> None:
    """Roles are made only where missing, and one that existed kept whatever it had.

    A smart library's login that may write the catalog, or a hook's login
    made NOINHERIT (it then gets nothing of sync_hook: every call of the hook
    fails with permission denied), passed the deploy without a word.
    """
    with psycopg.connect(own_server.url("test"), autocommit=True) as conn:
        conn.execute("grant update, delete on public.fragrances to smart_library_login")
        conn.execute("alter role sync_hook_login noinherit createdb")
        conn.execute("alter role sync_dba login")
    done = run_yoyo(own_server, "test", "apply")
    warnings = [line for line in done.stderr.splitlines() if "beyond" in line]
    assert warnings == [
        "NOTICE: smart_library_login may delete, update public.fragrances, beyond its role:"
        " revoke delete, update on public.fragrances from smart_library_login;",
        "NOTICE: sync_dba can log in, beyond its role: alter role sync_dba nologin;",
        "NOTICE: sync_hook_login does not inherit sync_hook's rights, so it can call nothing"
        " of the sync, and can create databases, beyond its role:"
        " alter role sync_hook_login inherit nocreatedb;",
    ], done.stderr


def test_a_deploy_says_nothing_of_logins_that_hold_only_their_roles_rights(
    own_server: Server,
) -> None:
    done = run_yoyo(own_server, "test", "apply")
    assert "beyond" not in done.stderr, done.stderr


# --- Rolled back, then applied again ----------------------------------------------------------

FRAGRANCES = (
    "select md5(string_agg(f::text, '|' order by fragrance_id)) from public.fragrances as f"
)
# Sorted: an ACL's order is the order of its grants, which a rollback and apply reshuffle.
GRANTS = (
    "select string_agg(a::text, ',' order by a::text) from pg_class as c,"
    " unnest(c.relacl) as a where c.oid = 'public.fragrances'::regclass"
)


def without_table_grants(catalog: list[str]) -> list[str]:
    """A catalog description without its line of grants on public.fragrances."""
    return [line for line in catalog if not line.startswith("grant on public.fragrances ")]


def test_the_last_migration_rolled_back_and_applied_again_gives_a_fresh_install(
    server: Server, bare_dbname: str, empty_dbname: str
) -> None:
    load_smart_library(server, bare_dbname)
    run_yoyo(server, bare_dbname, "apply")
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        last = conn.execute("select max(migration_id) from _yoyo_migration").fetchone()[0]
        conn.execute("select sync.receive(%s)", [body({"fragrance_id": 7, "cost": 41})])
        before = conn.execute(FRAGRANCES).fetchone()
    run_yoyo(server, bare_dbname, "rollback", "--revision", last)
    run_yoyo(server, bare_dbname, "apply")
    with (
        psycopg.connect(server.url(bare_dbname)) as again,
        psycopg.connect(server.url(empty_dbname)) as fresh,
    ):
        assert again.execute(FRAGRANCES).fetchone() == before
        assert describe_catalog(again) == describe_catalog(fresh)


def test_everything_rolled_back_and_applied_again_keeps_the_catalog_and_its_grants(
    server: Server, bare_dbname: str, empty_dbname: str
) -> None:
    load_smart_library(server, bare_dbname)
    with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
        # A site's own grant on its table, made before the sync.
        conn.execute("create role site_reporting_upgrades nologin")
        conn.execute("grant select on public.fragrances to site_reporting_upgrades")
    try:
        run_yoyo(server, bare_dbname, "apply")
        with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
            conn.execute("select sync.receive(%s)", [body({"fragrance_id": 7, "cost": 41})])
            rows = conn.execute(FRAGRANCES).fetchone()
            grants = conn.execute(GRANTS).fetchone()
        run_yoyo(server, bare_dbname, "rollback", "--all")
        with psycopg.connect(server.url(bare_dbname)) as conn:
            assert conn.execute(FRAGRANCES).fetchone() == rows
            assert "site_reporting_upgrades=r/" in conn.execute(GRANTS).fetchone()[0]
        run_yoyo(server, bare_dbname, "apply")
        with (
            psycopg.connect(server.url(bare_dbname)) as again,
            psycopg.connect(server.url(empty_dbname)) as fresh,
        ):
            assert again.execute(FRAGRANCES).fetchone() == rows
            assert again.execute(GRANTS).fetchone() == grants
            # The site's grant aside (asserted above), a fresh install's catalog.
            assert without_table_grants(describe_catalog(again)) == without_table_grants(
                describe_catalog(fresh)
            )
    finally:
        with psycopg.connect(server.url(bare_dbname), autocommit=True) as conn:
            conn.execute("drop owned by site_reporting_upgrades")
            conn.execute("drop role site_reporting_upgrades")
