"""The README tells the truth about what the database does.

Its rules table is the rules table of the database, row for row; its SQL
one-liners run; the cron lines of docs/operations.md run as a DBA.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import psycopg
from conftest import ROOT, Server

README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
REACH = {"delta": "deltas", "catalog": "catalog", "both": "deltas and catalog"}


def test_the_readme_has_exactly_the_two_commands() -> None:
    block = README.split("## The two commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == [
        "make run",
        "make test",
    ]


def test_the_rules_table_is_the_databases(db: psycopg.Connection) -> None:
    rows = re.findall(
        r"^\| `([a-z_0-9]+\.[a-z_0-9]+)` \| (\w+) \| ([a-z ]+) \| ", README, re.MULTILINE
    )
    rules = db.execute(
        "select code, default_severity, applies_to from sync.rule order by code"
    ).fetchall()
    assert sorted(rows) == sorted((code, severity, REACH[reach]) for code, severity, reach in rules)


def test_the_rules_table_says_what_a_dba_may_tune_and_the_default_limits(
    db: psycopg.Connection,
) -> None:
    """Its "a DBA may tune" column is sync.rule.tunable, each limit with its default."""
    stated = dict(
        re.findall(
            r"^\| `([a-z_0-9]+\.[a-z_0-9]+)` \| \w+ \| [a-z ]+ \| ([^|]+?) \| ",
            README,
            re.MULTILINE,
        )
    )
    rules = db.execute(
        "select code, tunable, default_parameter from sync.rule order by code"
    ).fetchall()
    held = {
        code: ", ".join(
            f"parameter ({default_parameter})" if what == "parameter" else what for what in tunable
        )
        or "-"
        for code, tunable, default_parameter in rules
    }
    assert stated == held


def test_every_sql_one_liner_of_the_runbook_is_valid_sql(db: psycopg.Connection) -> None:
    runbook = README.split("## Runbook", 1)[1].split("## ", 1)[0]
    statements = re.findall(r"`((?:select|update) [^`]+;)`", runbook)
    assert len(statements) >= 15
    for statement in statements:
        # Parsed and planned, never run: some of them change things.
        db.execute("prepare readme_check as " + statement.rstrip(";"))
        db.execute("deallocate readme_check")


def test_the_cron_lines_run_the_jobs_as_a_dba(
    server: Server, dbname: str, dba: psycopg.Connection
) -> None:
    dba.execute(
        'select sync.load_snapshot(\'[{"fragrance_id": 1, "name": "N",'
        ' "description": "D", "cost": 1, "forbidden": false}]\')'
    )  # the drift check needs one
    lines = re.findall(r"^\d+ \d+ \* \* \*  (psql .+)$", OPERATIONS, re.MULTILINE)
    assert len(lines) == 3
    for line in lines:
        words = shlex.split(line.replace('"$FRAGRANCE_DBA_URL"', "URL"))
        argv = [server.url(dbname, user="alice") if word == "URL" else word for word in words]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
    ran = dba.execute("select job, run_by from sync.job_run order by id").fetchall()
    assert ran == [("check_catalog", "alice"), ("purge_inbox", "alice"), ("check_drift", "alice")]


#: How a doc cites a review a newcomer was not at (its findings belong in the text itself).
REVIEW_CITATION = re.compile(r"hostile review|\ba reviewer\b|\breview(?: of|,) step \d+", re.I)


def test_the_docs_a_newcomer_reads_cite_no_review_they_cannot_follow() -> None:
    """A doc says what holds and why; "(review of step 24)" points at nothing a reader has.

    ADRs (docs/decisions/) record history and may say where a decision came from.
    """
    guides = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
    cited = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in guides
        for match in REVIEW_CITATION.finditer(path.read_text())
    ]
    assert cited == []


#: A call of each sync function that takes a moment, given an infinite one.
AT_INFINITY = {
    "due_jobs": "select * from sync.due_jobs('infinity')",
    "fragrance_at": "select * from sync.fragrance_at(7, 'infinity')",
    "health_at": "select * from sync.health_at('infinity')",
    "inbox_position": "select sync.inbox_position('infinity')",
    "receive_spooled": (
        "select sync.receive_spooled(gen_random_uuid(), 'infinity', '{\"fragrance_id\": 7}')"
    ),
    "load_snapshot": (
        'select sync.load_snapshot(\'[{"fragrance_id": 1, "name": "N", "description": "D",'
        " \"cost\": 1, \"forbidden\": false}]', 'json', 'infinity')"
    ),
}


def test_the_readme_names_the_functions_that_refuse_an_infinite_moment(
    db: psycopg.Connection,
) -> None:
    """FS005's note said "a moment as infinity" of every call: only sync.health_at refuses one."""
    taking_a_moment = db.execute(
        "select distinct p.proname from pg_proc as p"
        " where p.pronamespace = 'sync'::regnamespace"
        " and 'timestamptz'::regtype = any (p.proargtypes::oid[]) order by 1"
    ).fetchall()
    assert [name for (name,) in taking_a_moment] == sorted(AT_INFINITY)
    refusing = set()
    for name, call in AT_INFINITY.items():
        try:
            with db.transaction():
                db.execute(call)
        except psycopg.Error as exc:
            assert exc.sqlstate == "FS005", (name, exc)
            refusing.add("sync." + name)
    note = README.split("`FS005`", 1)[1].split("`FS006`", 1)[0]
    assert set(re.findall(r"infinite moment given to `(sync\.\w+)`", note)) == refusing


#: A route a doc or an alert has the person on call ask the CMS ("`GET /healthcheck` on the CMS").
CMS_ROUTE = re.compile(r"`(GET|POST|DELETE) (/[^`\s]*)` on the CMS\b")


def test_the_routes_the_docs_and_alerts_ask_of_the_cms_are_the_cms_routes() -> None:
    """The CMS answers liveness on /healthcheck; "GET /healthz on the CMS" is a 404."""
    from cms_simulator.app import create_app
    from cms_simulator.settings import Settings as CmsSettings

    served = {
        (method, route.path)
        for route in create_app(CmsSettings()).routes
        for method in getattr(route, "methods", None) or ()
    }
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts += sorted((ROOT / "deploy" / "prometheus").glob("*.yml"))
    asked = {
        f"{path.relative_to(ROOT)}: {method} {route}"
        for path in texts
        for method, route in CMS_ROUTE.findall(" ".join(path.read_text().split()))
        if (method, route) not in served
    }
    assert asked == set()
    assert ("GET", "/healthcheck") in served


#: Where a database comment or message sends a DBA: a document, then, if given, its section.
DOC_CITED = re.compile(r"(?<![/\w])(README|docs/[a-z0-9_-]+\.md)(?:, \"([^\"]+)\"|\b)")


def test_the_comments_a_dba_reads_cite_documents_and_sections_that_exist(
    db: psycopg.Connection,
) -> None:
    """The documents and sections a DBA is sent to by comments and messages exist.

    The README is a first screen and a runbook: a comment citing it names
    the section (sync.job said "the cron line in the README", which had
    moved to docs/operations.md).
    """
    comments = db.execute(
        """
        select d.description
        from pg_catalog.pg_description as d
        where d.classoid in ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_proc'::regclass,
                             'pg_catalog.pg_type'::regclass, 'pg_catalog.pg_trigger'::regclass,
                             'pg_catalog.pg_namespace'::regclass)
          and d.description ~ '(README|docs/)'
        union all
        -- The messages and hints of the code, and the notes \\df+ shows.
        select p.prosrc
        from pg_catalog.pg_proc as p
        where p.pronamespace in ('sync'::regnamespace, 'sync_private'::regnamespace)
          and p.prosrc ~ '(README|docs/)'
        """
    ).fetchall()
    wrong = set()
    for (comment,) in comments:
        for document, section in DOC_CITED.findall(comment):
            path = ROOT / ("README.md" if document == "README" else document)
            text = path.read_text() if path.exists() else None
            headings = re.findall(r"^#+ (.+)$", text or "", re.MULTILINE)
            if text is None or (section and section not in headings):
                wrong.add(f"{document}, {section!r}")
            elif document == "README" and not section:
                wrong.add(f"README without a section: {comment[:80]}")
    assert len(comments) >= 5
    assert wrong == set()
