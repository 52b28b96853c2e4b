"""The alerting rules (deploy/prometheus/): valid, tested, and reading what the hook exports.

promtool (Debian's prometheus package; `make test` extracts it into .tools/bin when
it is missing) checks the rules and runs their unit tests, which live beside them.
Then the hook runs as a real process and its /metrics must export every metric the
rules read, and real scrapes fed to promtool must fire the alerts they should.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from conftest import ROOT, Server
from helpers import body, deliver_at, store
from processes import Hook, free_port, running_hook, start_hook, stop_hook
from prometheus_client.parser import text_string_to_metric_families

RULES = ROOT / "deploy" / "prometheus" / "fragrance-sync.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "fragrance-sync.rules.test.yml"

#: Metrics the rules read that other work adds to /metrics. Remove a line once that
#: work is merged: test_metrics_added_by_other_work_are_not_exported_yet says when.
#: Series Prometheus writes itself for every target, not the hook.
FROM_PROMETHEUS = {"up"}

PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}


def promtool() -> str:
    """Path to promtool; fail loudly when it is missing."""
    found = shutil.which("promtool") or ROOT / ".tools" / "bin" / "promtool"
    if not Path(found).is_file():
        pytest.fail(
            "promtool is not installed: run `make test` (or `make promtool`), which takes it "
            "out of Debian's prometheus package into .tools/bin"
        )
    return str(found)


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool with arguments; its output, whatever the exit status."""
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def alerting_rules() -> list[dict[str, Any]]:
    """Every alerting rule in the rules file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
    return {name for name in names if name not in PROMQL_KEYWORDS}


def rule_metric_names() -> set[str]:
    """Every metric name any alerting rule reads."""
    return {name for rule in alerting_rules() for name in metric_names(rule["expr"])}


def scrape(hook: Hook) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of one scrape of the hook's /metrics: name, labels, value."""
    answer = httpx.get(hook.url + "/metrics", timeout=30)
    assert answer.status_code == 200
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    ]


@pytest.fixture(scope="module")
def hook(
    server: Server, shared_dbname: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hook]:
    """The hook as deployed, on the session's database."""
    with running_hook(server, shared_dbname, tmp_path_factory.mktemp("hook")) as running:
        yield running


def test_promtool_accepts_the_rules() -> None:
    checked = run_promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_rules_pass_their_promtool_tests() -> None:
    tested = run_promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_says_how_urgent_it_is_and_what_to_do() -> None:
    for rule in alerting_rules():
        name = rule["alert"]
        assert re.fullmatch(r"FragranceSync[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert "for" in rule, f"{name}: write its `for` and why, even when it is 0m"
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["description"]) > 100, f"{name}: say what to do"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alerting_rules():
        outcomes = [bool(c["exp_alerts"]) for c in cases if c["alertname"] == rule["alert"]]
        assert True in outcomes, f"no promtool case where {rule['alert']} fires"
        assert False in outcomes, f"no promtool case where {rule['alert']} stays quiet"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'max by (job) (fragrance_sync_health{verdict="critical"}) == 1',
            {"fragrance_sync_health"},
        ),
        (
            "min_over_time(a_b[5m]) > 0 and delta(a_b[5m]) >= 0 unless min_over_time(c[5m]) == 0",
            {"a_b", "c"},
        ),
        ('up{job="fragrance_sync"} == 0 or absent(up{job="fragrance_sync"})', {"up"}),
        ("max without (instance) (x) > on (job) group_left (rule) y", {"x", "y"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_metric_the_rules_read_is_exported_by_the_hook(
    hook: Hook, server: Server, shared_dbname: str
) -> None:
    # The drift check's figures are exported once a check has recorded them.
    with psycopg.connect(server.url(shared_dbname), autocommit=True) as conn:
        conn.execute("select sync.load_snapshot((select jsonb_agg(f) from public.fragrances as f))")
        conn.execute("select sync.run_job('check_drift')")
    exported = {name for name, _, _ in scrape(hook)}
    read = rule_metric_names() - FROM_PROMETHEUS
    assert read, "the rules read no metric of the hook?"
    assert read - exported == set(), "the rules read metrics /metrics does not export"


def _series(
    samples: list[tuple[str, dict[str, str], float]], instance: str
) -> list[dict[str, str]]:
    """One scrape as promtool input series: every sample, held for 15 minutes, plus `up`."""
    series = []
    for name, labels, value in [*samples, ("up", {}, 1.0)]:
        target = {**labels, "job": "fragrance_sync", "instance": instance}
        matchers = ", ".join(f"{key}={json.dumps(val)}" for key, val in sorted(target.items()))
        series.append({"series": f"{name}{{{matchers}}}", "values": f"{value!r}x15"})
    return series


def _firing(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The alert promtool must show for a rule and labels, annotations rendered."""
    annotations = {
        key: text.replace("{{ $labels.instance }}", labels.get("instance", ""))
        for key, text in rule["annotations"].items()
    }
    assert not any("{{" in text for text in annotations.values()), "render it here too"
    return {"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": annotations}


def test_real_scrapes_fire_the_silence_and_database_pages(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    # One hook whose database has heard nothing for 11 minutes (critical by default),
    # and one whose database is unreachable, with a delivery waiting in its spool.
    deliver_at(db, datetime.now(UTC) - timedelta(minutes=11), {"fragrance_id": 7, "cost": 5})
    assert db.execute("select verdict from sync.health").fetchone() == ("critical",)
    for name in ("silent", "down"):
        (tmp_path / name).mkdir()
    silent = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path / "silent")
    down = start_hook(
        f"postgresql://sync_hook_login@127.0.0.1:{free_port()}/none", tmp_path / "down"
    )
    try:
        spooled = httpx.post(down.url + "/notifications", content=body({"fragrance_id": 7}))
        assert spooled.json()["status"] == "spooled"
        series = _series(scrape(silent), "silent:9098") + _series(scrape(down), "down:9098")
    finally:
        stop_hook(silent)
        stop_hook(down)
    rules = {rule["alert"]: rule for rule in alerting_rules()}
    silence = _firing(rules["FragranceSyncCmsSilent"], {"job": "fragrance_sync"})
    database = _firing(
        rules["FragranceSyncDatabaseDown"], {"job": "fragrance_sync", "instance": "down:9098"}
    )
    expected = {
        "FragranceSyncCmsSilent": [silence],
        "FragranceSyncDatabaseDown": [database],
        # The spool waits for the database: that is the page above, not this one.
        "FragranceSyncSpoolNotDraining": [],
        "FragranceSyncHookDown": [],
        "FragranceSyncHealthWarning": [],
        "FragranceSyncQuarantineGrowing": [],
        # Silence is not a stall: nothing waits to be applied.
        "FragranceSyncMergeStalled": [],
    }
    test_file = tmp_path / "real-scrapes.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "alert_rule_test": [
                            {"eval_time": "10m", "alertname": name, "exp_alerts": alerts}
                            for name, alerts in expected.items()
                        ],
                    }
                ],
            }
        )
    )
    tested = run_promtool("test", "rules", test_file)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_read_only_database_pages_as_read_only_not_as_a_stuck_drain(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    # A standby not yet promoted, or maintenance: every read answers, every write is
    # refused (25006), so every delivery waits in the spool. The page must say that,
    # not send the person on call to the hook's grants and a restart.
    db.execute(
        f'alter role sync_hook_login in database "{dbname}" set default_transaction_read_only = on'
    )
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        spooled = httpx.post(hook.url + "/notifications", content=body({"fragrance_id": 7}))
        assert spooled.json()["status"] == "spooled"
        series = _series(scrape(hook), "readonly:9098")
    finally:
        stop_hook(hook)
    rules = {rule["alert"]: rule for rule in alerting_rules()}
    expected: dict[str, list[dict[str, Any]]] = {
        # Not the stuck drain's page: its grants and restart cannot help.
        "FragranceSyncSpoolNotDraining": [],
        "FragranceSyncDatabaseDown": [],
        "FragranceSyncHookDown": [],
    }
    if "FragranceSyncDatabaseReadOnly" in rules:
        expected["FragranceSyncDatabaseReadOnly"] = [
            _firing(
                rules["FragranceSyncDatabaseReadOnly"],
                {"job": "fragrance_sync", "instance": "readonly:9098"},
            )
        ]
    test_file = tmp_path / "read-only.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "alert_rule_test": [
                            {"eval_time": "10m", "alertname": name, "exp_alerts": alerts}
                            for name, alerts in expected.items()
                        ],
                    }
                ],
            }
        )
    )
    tested = run_promtool("test", "rules", test_file)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "FragranceSyncDatabaseReadOnly" in expected, "nothing says the database is read-only"


def test_the_stuck_drain_page_names_the_function_the_drain_lost(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    # A migration that left the hook without EXECUTE on what it stores with: deliveries
    # are spooled (an outage, 42501), and the drain is stuck on the same refusal.
    db.execute("revoke execute on function sync.store_many from sync_hook")
    db.execute("revoke execute on function sync.store_spooled from sync_hook")
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path)
    try:
        spooled = httpx.post(hook.url + "/notifications", content=body({"fragrance_id": 7}))
        assert spooled.json()["status"] == "spooled"
        # The drain has tried (SPOOL_RETRY_EVERY is 1 s), and been refused: it is stuck.
        refused = "draining the spool paused, the database is unavailable: permission denied"
        deadline = time.monotonic() + 60
        while refused not in hook.output():
            assert time.monotonic() < deadline, f"the drain never tried:\n{hook.output()}"
            time.sleep(0.05)
        depth = httpx.get(hook.url + "/healthz").json()["spool_depth"]
    finally:
        stop_hook(hook)
    assert depth == 1
    # The page asks the person on call to check the hook's grant on one function: the
    # check must find the grant that is missing, not one that is still there.
    rules = {rule["alert"]: rule for rule in alerting_rules()}
    text = " ".join(rules["FragranceSyncSpoolNotDraining"]["annotations"]["description"].split())
    named = re.findall(r"may still execute (sync\.\w+)", text)
    assert named, text
    can = db.execute(
        "select bool_and(has_function_privilege('sync_hook_login', p.oid, 'execute'))"
        " from pg_proc as p where p.pronamespace = 'sync'::regnamespace"
        " and 'sync.' || p.proname = any (%s::text[])",
        [named],
    ).fetchone()[0]
    assert can is False, f"the page names {named}, which the hook's login may still execute"


def test_the_stalled_merge_page_checks_the_grant_the_merger_lost(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    # A release that left the hook without EXECUTE on its merge: every delivery is
    # stored, none applied. The check the page asks for, run as the hook's login, must
    # say so (and say true where the grant is there).
    rules = {rule["alert"]: rule for rule in alerting_rules()}
    text = " ".join(rules["FragranceSyncMergeStalled"]["annotations"]["description"].split())
    [check] = re.findall(r"`(select has_function_privilege\([^`]*\);)` must say true", text)
    with psycopg.connect(server.url(dbname, user="sync_hook_login")) as hook:
        assert hook.execute(check).fetchone() == (True,)
    db.execute("revoke execute on function sync.apply_received from sync_hook")
    with psycopg.connect(server.url(dbname, user="sync_hook_login")) as hook:
        assert hook.execute(check).fetchone() == (False,)


def test_the_health_ticket_says_what_to_do_about_each_warning_it_is_raised_for(
    db: psycopg.Connection, dba: psycopg.Connection, server: Server, dbname: str
) -> None:
    # Two lasting warnings the ticket exists for, made as they happen in production.
    # A hand edit that breaks an error rule (findings come from the write's trigger).
    db.execute("update public.fragrances set cost = -1 where fragrance_id = 9")
    # A DBA's transaction holding a fragrance: its deliveries stay pending (the merger's
    # sync.apply_received passes over it), and sync.health warns once they are old.
    with psycopg.connect(server.url(dbname)) as holder:
        holder.execute("select from public.fragrances where fragrance_id = 7 for update")
        store(db, {"fragrance_id": 7, "cost": 61})
        assert db.execute("select count(*) from sync.apply_received(1000)").fetchone() == (0,)
        verdict, reason = db.execute(
            "select verdict, reason from sync.health_at(now() + interval '6 minutes')"
        ).fetchone()
        rules = {rule["alert"]: rule for rule in alerting_rules()}
        text = " ".join(rules["FragranceSyncHealthWarning"]["annotations"]["description"].split())
        # The held fragrance: the query the ticket gives finds the session that holds
        # it, run by a DBA who is no superuser (the holder here is another role).
        [find_holder] = re.findall(r"`(select distinct l\.pid[^`]*;)`", text)
        holders = [row[0] for row in dba.execute(find_holder).fetchall()]
        assert holders == [holder.info.backend_pid], (find_holder, holders)
        holder.rollback()
    assert verdict == "warn"
    assert "pending" in reason and "break an error rule" in reason, reason
    # The broken error rule: where the rows are listed.
    assert "sync.open_finding" in text, text
