"""The guides point at what exists, and state the settings the programs have.

A newcomer follows a file a guide names in backticks, or a link, and
expects to find it; a settings table names every variable its program
reads, with the default it really has. (The hook's table is held to
hook/settings.py by tests/test_settings.py.) A SQLSTATE, a `sync.` object or
a `make` target a guide names is one the code has.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from conftest import ROOT

import cms_simulator.settings
import smart_library.settings

#: What a newcomer reads as guidance. ADRs (docs/decisions/) and the benchmark's
#: history record what was, and may name a file that has been renamed since.
GUIDES = [
    ROOT / "README.md",
    ROOT / "DEVELOPERS.md",
    ROOT / "db" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
#: A path in backticks: no spaces, at least one slash, and not a URL route.
PATH_IN_TICKS = re.compile(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.*<>-]*)+)`")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _tracked() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(listed.split())


def _exists(path: str, tracked: set[str]) -> bool:
    """A file or directory of the repository (as committed, or, outside git, on disk)."""
    path = path.rstrip("/")
    if "*" in path or "<" in path:
        pattern = re.sub(r"<[^>]*>", "*", path)  # tests/test_rules_<rule>.py: any rule's
        return any(Path(name).match(pattern) for name in tracked)
    return (
        path in tracked
        or any(name.startswith(path + "/") for name in tracked)
        or (not tracked and (ROOT / path).exists())
    )


def test_every_repository_path_a_guide_names_exists() -> None:
    """`docs/x.md`, `tests/test_y.py`, `db/10-rules.sql`: each names a file of the repository."""
    tracked = _tracked()
    top = {name.split("/", 1)[0] for name in tracked}
    missing = [
        f"{guide.relative_to(ROOT)}: {path}"
        for guide in GUIDES
        for path in PATH_IN_TICKS.findall(guide.read_text())
        if path.split("/", 1)[0] in top and not _exists(path, tracked)
    ]
    assert missing == []


def test_every_relative_link_of_a_guide_resolves() -> None:
    links = [
        (guide, target.split("#", 1)[0])
        for guide in GUIDES
        for target in MARKDOWN_LINK.findall(guide.read_text())
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    ]
    broken = [
        f"{guide.relative_to(ROOT)}: {target}"
        for guide, target in links
        if not (guide.parent / target).exists()
    ]
    assert broken == []


def test_no_guide_sends_a_reader_outside_the_repository() -> None:
    """A path such as ../shared/x or /work/y exists on one machine, not in a clone."""
    outside = re.compile(r"(?<![\w.])\.\./[\w.-]|`/(?:work|home|root|tmp)/")
    found = [
        f"{guide.relative_to(ROOT)}: {match.group(0)}"
        for guide in GUIDES
        for match in outside.finditer(guide.read_text())
    ]
    assert found == []


def _settings_table(doc: str) -> dict[str, str]:
    """A doc's "## Settings" table: each variable with the default it states ("" if none)."""
    table = (ROOT / "docs" / doc).read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        # "`20` / `25`" states two defaults; "random (shown on `GET /`)" states none.
        defaults = re.findall(r"`([^`]*)`", cells[1]) if cells[1].startswith("`") else []
        if len(defaults) != len(names):
            defaults = [""] * len(names)
        documented.update(zip(names, defaults, strict=True))
    return documented


def _variables_read(module: Any) -> set[str]:
    """The environment variables a settings module reads: its literal upper-case names."""
    source = Path(module.__file__).read_text()
    return set(re.findall(r"\"([A-Z][A-Z_]{2,})\"", source))


PROGRAMS = {
    "cms-simulator.md": (cms_simulator.settings, cms_simulator.settings.Settings.from_env),
    "smart-library.md": (smart_library.settings, smart_library.settings.Settings.from_env),
}


@pytest.mark.parametrize("doc", sorted(PROGRAMS))
def test_a_programs_settings_table_names_every_variable_it_reads(doc: str) -> None:
    module, _ = PROGRAMS[doc]
    assert set(_settings_table(doc)) == _variables_read(module)


@pytest.mark.parametrize("doc", sorted(PROGRAMS))
def test_a_programs_settings_table_states_the_defaults_it_has(doc: str) -> None:
    """Setting a variable to the default the table states changes nothing."""
    _, from_env = PROGRAMS[doc]
    read: Callable[[Mapping[str, str]], object] = from_env
    defaults = read({})
    stated = {name: value for name, value in _settings_table(doc).items() if value}
    assert stated, doc
    differing = {name: value for name, value in stated.items() if read({name: value}) != defaults}
    assert differing == {}


def test_docs_health_md_explains_every_column_of_sync_health(db: psycopg.Connection) -> None:
    """`select * from sync.health` shows no column its table leaves unexplained."""
    text = (ROOT / "docs" / "health.md").read_text()
    table = text.split("| column | meaning |", 1)[1].split("\n\n", 1)[0]
    explained = [
        name
        for line in table.splitlines()[1:]
        for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])
    ]
    columns = db.execute(
        "select attname from pg_catalog.pg_attribute"
        " where attrelid = 'sync.health'::regclass and attnum > 0 and not attisdropped"
        " order by attnum"
    ).fetchall()
    assert explained == [name for (name,) in columns]


def test_docs_operations_md_names_every_variable_make_run_reads() -> None:
    """The variables of make run (its ports, its folder, an existing database) are written down."""
    source = (ROOT / "devtools" / "local_stack.py").read_text()
    read = set(re.findall(r"(?:environ\.get\(|environ\[|_port\()\"([A-Z_]+)\"", source))
    section = (ROOT / "docs" / "operations.md").read_text().split("### `make run`'s variables", 1)
    assert len(section) == 2, "docs/operations.md has no section on make run's variables"
    table = section[1].split("\n\n", 2)[1]
    documented = {
        name for line in table.splitlines() for name in re.findall(r"`([A-Z_]+)`", line[:80])
    }
    assert documented == read


README_TEXT = (ROOT / "README.md").read_text()

#: A SQLSTATE of ours as the database code raises it: `using errcode = 'FS001'`, or a
#: trigger's argument (`sync_private.refuse_truncate('FS089', ...)`), never a comment's.
RAISED = re.compile(r"'(FS\d{3})'")


def _raised() -> set[str]:
    return {
        code for path in (ROOT / "db").glob("*.sql") for code in RAISED.findall(path.read_text())
    }


def test_every_sqlstate_a_guide_names_is_one_the_database_raises() -> None:
    """A DBA who meets FS0nn in a guide can meet it from the database."""
    raised = _raised()
    named = [
        f"{guide.relative_to(ROOT)}: {code}"
        for guide in GUIDES
        for code in sorted(set(re.findall(r"\bFS\d{3}\b", guide.read_text())))
        if code not in raised
    ]
    assert named == []


def test_the_readme_names_every_sqlstate_the_database_raises() -> None:
    """Its list of SQLSTATEs is whole ("`FS070` to `FS073`" names the four)."""
    named = set(re.findall(r"\bFS\d{3}\b", README_TEXT))
    for first, last in re.findall(r"`FS(\d{3})`\s+to\s+`FS(\d{3})`", README_TEXT):
        named |= {f"FS{number:03d}" for number in range(int(first), int(last) + 1)}
    assert sorted(_raised() - named) == []


#: Names a guide writes as sync.x that are not ours on purpose, and why.
NOT_OBJECTS = {
    "sync.dash": "a site's view, the example of what the deploy refuses in our schemas",
    "sync.merging": "a setting the merge's mark is not, named to say that setting it does nothing",
}
#: sync.x or sync_private.x, not inside a file name (fragrance-sync.rules.yml).
OBJECT_NAME = re.compile(r"(?<![\w.-])(sync(?:_private)?\.[a-z_][a-z_0-9]*)")


def test_every_sync_object_a_guide_names_exists(db: psycopg.Connection) -> None:
    """`sync.fragrance_at`, `sync_private.settle`: each is a table, view, function or type."""
    ours = {
        name
        for (name,) in db.execute("""
            select n.nspname || '.' || c.relname from pg_catalog.pg_class as c
            join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
            union select n.nspname || '.' || p.proname from pg_catalog.pg_proc as p
            join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
            union select n.nspname || '.' || t.typname from pg_catalog.pg_type as t
            join pg_catalog.pg_namespace as n on n.oid = t.typnamespace
        """)
    }
    missing = [
        f"{guide.relative_to(ROOT)}: {name}"
        for guide in GUIDES
        for name in sorted(set(OBJECT_NAME.findall(guide.read_text())))
        if name not in ours and name not in NOT_OBJECTS
    ]
    assert missing == []


def test_every_column_a_guide_names_exists(db: psycopg.Connection) -> None:
    """`sync.inbox.discarded_at`, `sync.settings.purge_after`: a column of that table or view."""
    columns = {
        name
        for (name,) in db.execute("""
            select n.nspname || '.' || c.relname || '.' || a.attname
            from pg_catalog.pg_attribute as a
            join pg_catalog.pg_class as c on c.oid = a.attrelid
            join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = 'sync' and a.attnum > 0 and not a.attisdropped
        """)
    }
    named = re.compile(r"(?<![\w.-])(sync\.[a-z_][a-z_0-9]*\.[a-z_][a-z_0-9]*)")
    missing = [
        f"{guide.relative_to(ROOT)}: {name}"
        for guide in GUIDES
        for name in sorted(set(named.findall(guide.read_text())))
        if name not in columns
    ]
    assert missing == []


def test_every_make_target_a_guide_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
    missing = [
        f"{guide.relative_to(ROOT)}: make {target}"
        for guide in GUIDES
        for target in sorted(set(re.findall(r"`make ([\w.-]+)", guide.read_text())))
        if target not in targets
    ]
    assert missing == []


def test_docs_health_md_explains_every_metric_the_hook_exports() -> None:
    """Its metrics table names each family of hook/metrics.py, a counter's with `_total`."""
    source = (ROOT / "hook" / "metrics.py").read_text()
    exported = {
        name + "_total" if kind == "Counter" else name
        for kind, name in re.findall(
            r"\b(Counter|Gauge|Histogram|GaugeMetricFamily)\(\s*\"(fragrance_sync_\w+)\"", source
        )
    }
    text = (ROOT / "docs" / "health.md").read_text()
    table = text.split("| metric | type | labels | meaning |", 1)[1].split("\n\n", 1)[0]
    explained = {
        name
        for line in table.splitlines()[1:]
        for name in re.findall(r"`(fragrance_sync_\w+)`", line.split("|")[1])
    }
    assert len(exported) >= 20
    assert explained == exported


def test_every_variable_a_guide_names_is_one_the_code_has() -> None:
    """`SPOOL_DIR`, `MIGRATE_LOCK_TIMEOUT`: a setting or constant of a program, not of the past."""
    code = "\n".join(
        (ROOT / name).read_text(errors="replace")
        for name in _tracked()
        if not name.startswith(("tests/", "docs/", "bench/results/"))
        and not name.endswith((".md", ".png"))
        and (ROOT / name).is_file()
    )
    missing = [
        f"{guide.relative_to(ROOT)}: {name}"
        for guide in GUIDES
        for name in sorted(set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", guide.read_text())))
        if not re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", code)
    ]
    assert missing == []


def test_every_test_a_guide_names_is_a_test() -> None:
    """`test_commit_order_does_not_decide_receipt_order`: a reader finds it under tests/."""
    defined = {
        name
        for path in (ROOT / "tests").glob("*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)\(", path.read_text(), re.MULTILINE)
    }
    missing = [
        f"{guide.relative_to(ROOT)}: {name}"
        for guide in GUIDES
        for name in sorted(set(re.findall(r"`(test_\w+)`", guide.read_text())))
        if name not in defined
    ]
    assert missing == []


def test_docs_alerts_md_lists_every_alert_with_its_severity() -> None:
    """Its table is the rules file's alerts, each paging or making a ticket as the file says."""
    rules = yaml.safe_load(
        (ROOT / "deploy" / "prometheus" / "fragrance-sync.rules.yml").read_text()
    )
    shipped = {
        (rule["alert"], rule["labels"]["severity"])
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    text = (ROOT / "docs" / "alerts.md").read_text()
    table = text.split("| alert | severity |", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \| (\w+) \|", table, re.MULTILINE))
    assert listed == shipped
