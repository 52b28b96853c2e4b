"""The benchmark's arithmetic: what it reads from /proc and how it turns runs into verdicts.

The bench itself is too slow and too noisy for the test suite; these pin the
parts that decide a PASS or FAIL, with made-up runs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_bench() -> ModuleType:
    """bench/run.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def load_profile() -> ModuleType:
    """bench/profile.py as a module; it imports bench/run.py as ``run``."""
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_profile", ROOT / "bench" / "profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


profile = load_profile()


def figure(*runs: float) -> dict[str, Any]:
    """A figure as the report stores it."""
    return bench.Figure(list(runs)).as_dict()


def ingest_kind(rps: float, server: float, db: float, client: float) -> dict[str, Any]:
    """One kind of ingest run at one concurrency, with its CPU per request."""
    return {
        "rps": figure(rps),
        "p99_ms": figure(10.0),
        "errors": figure(0),
        "busiest_worker_share": figure(0.5),
        "cpu_server_us": figure(server),
        "cpu_db_us": figure(db),
        "cpu_client_us": figure(client),
        "cores_busy": figure(1.9),
    }


def burn_cpu(seconds: float) -> None:
    """Spend user and system time in this process (system calls, not only arithmetic)."""
    start = os.times()
    while (os.times().user + os.times().system) - (start.user + start.system) < seconds:
        os.stat(".")
        sum(range(2_000))


def reap_a_busy_child() -> None:
    """Run and wait for a child that burns CPU, so this process's cutime is not zero."""
    subprocess.run(
        [sys.executable, "-c", "import os\nwhile sum(os.times()[:2]) < 0.2: os.stat('.')"],
        check=True,
    )


def ticks(seconds: float) -> float:
    """Seconds as clock ticks, as /proc counts them."""
    return seconds * os.sysconf("SC_CLK_TCK")


def test_cpu_ticks_reads_a_processs_own_user_and_system_time() -> None:
    reap_a_busy_child()
    burn_cpu(0.2)
    times = os.times()
    assert times.system > 0 and times.children_user + times.children_system > 0
    own = bench.cpu_ticks([os.getpid()])[0]
    assert own == pytest.approx(ticks(times.user + times.system), abs=2)


def live_children_ticks(pid: int) -> int:
    """CPU ticks of the children ``pid`` has now (the session's PostgreSQL, once started)."""
    total = 0
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += bench.cpu_ticks([int(child)])[0]
        except OSError:
            continue  # exited meanwhile
    return total


def test_a_process_tree_counts_the_children_it_has_reaped() -> None:
    reap_a_busy_child()
    times = os.times()
    everything = ticks(times.user + times.system + times.children_user + times.children_system)
    # The tree counts live children too: only the test session's own are taken out.
    tree = bench.tree_cpu_ticks(os.getpid()) - live_children_ticks(os.getpid())
    assert tree == pytest.approx(everything, abs=3)


def test_each_merge_run_is_compared_with_its_own_floor() -> None:
    assert bench.paired_ratios([10.0, 30.0], [40.0, 60.0]) == [0.25, 0.5]
    with pytest.raises(ValueError):
        bench.paired_ratios([10.0], [40.0, 60.0])


def test_the_profile_gives_each_statement_its_median_over_the_runs() -> None:
    runs = [
        {"ms": 100.0, "statements": {"write": (10, 40.0), "judge": (10, 30.0)}},
        {"ms": 120.0, "statements": {"write": (10, 60.0), "judge": (10, 20.0)}},
        # A statement one run lacks (a plan it never needed) counts 0 ms there.
        {"ms": 110.0, "statements": {"write": (10, 50.0), "create": (2, 9.0)}},
    ]
    assert profile.median_statements(runs) == [
        ("write", 10, 50.0),
        ("judge", 10, 20.0),
        ("create", 2, 0.0),
    ]


@pytest.mark.parametrize(
    ("workers", "ceiling"),
    [
        # Two workers: both servers can fill the machine; the totals decide.
        (2, 350 / 960),
        # One worker: each server is held to one core for its own part
        # (1e6 / 500 us and 1e6 / 300 us), before the machine is full.
        (1, (1e6 / 500) / (1e6 / 300)),
    ],
)
def test_the_cpu_ceiling_takes_the_machine_and_the_workers_into_account(
    workers: int, ceiling: float
) -> None:
    c16 = {
        "hook": ingest_kind(2000, server=500, db=400, client=60),
        "nodb": ingest_kind(6000, server=300, db=0, client=50),
    }
    assert bench.cpu_ceiling(c16, cores=2, workers=workers) == pytest.approx(ceiling)


def test_the_report_says_what_the_cpu_allows() -> None:
    result = {
        "machine": {"cores": 2},
        "config": {"workers": 2},
        "ingest": {
            "16": {
                "hook": ingest_kind(2000, server=500, db=400, client=60),
                "pgbench": ingest_kind(1800, server=0, db=1000, client=40),
                "nodb": ingest_kind(6000, server=300, db=0, client=50),
            }
        },
    }
    text = "\n".join(bench.cpu_section(result))
    assert "| 16 | hook | 500 | 400 | 60 | 960 | 1.90 |" in text
    assert "cannot exceed 0.36" in text
    assert "The hook measured 2000, 96% of its CPU bound" in text


@pytest.mark.parametrize(
    ("apply_runs", "floor_runs", "verdict"),
    [
        # The medians alone (33,000 / 50,000 = 0.66) would pass; the pairs say 0.55, 0.54, 0.68.
        ([33_000, 26_000, 34_000], [60_000, 48_000, 50_000], "FAIL"),
        # The floor drifted with the machine; every pair is at 0.64 or more.
        ([40_000, 20_000, 32_000], [60_000, 31_000, 50_000], "PASS"),
    ],
)
def test_the_merge_target_compares_each_run_with_its_own_floor(
    apply_runs: list[float], floor_runs: list[float], verdict: str
) -> None:
    paired = bench.paired_ratios(apply_runs, floor_runs)
    result = {
        "ingest": {},
        "merge": {
            "apply_pending": figure(*apply_runs),
            "set_based_update": figure(*floor_runs),
            "paired_ratio": figure(*paired),
        },
    }
    (merge,) = [v for v in bench.verdicts(result) if v["target"].startswith("merge")]
    assert merge["verdict"] == verdict


def test_one_sided_no_database_runs_do_not_count_as_the_frameworks_limit() -> None:
    nodb = {"rps": figure(4200, 7900, 8100), "busiest_worker_share": figure(1.0, 0.52, 0.55)}
    assert bench.balanced_rps(nodb) == 8000


def test_issue_16s_targets_are_ratios_of_runs_side_by_side() -> None:
    result = {
        "ingest": {
            "16": {
                "hook": ingest_kind(3000, server=300, db=200, client=40),
                "pgbench_insert": ingest_kind(15000, server=0, db=60, client=10),
                "naive": ingest_kind(1400, server=400, db=80, client=40),
                "nodb": ingest_kind(8000, server=130, db=0, client=25),
                "minimal": ingest_kind(9000, server=110, db=0, client=20),
            }
        },
        "lag": {"200": {"p99_ms": figure(12.0)}, "2000": {"p99_ms": figure(140.0)}},
    }
    verdicts = {v["target"]: (v["value"], v["verdict"]) for v in bench.verdicts(result)}
    assert verdicts["ingest c16, applied / pgbench plain INSERT c16"] == (0.2, "FAIL")
    assert verdicts["ingest c16, applied / naive hook c16"] == (2.143, "PASS")
    assert verdicts["hook's own CPU per request (no database) / minimal FastAPI route's, c16"] == (
        1.182,
        "PASS",
    )
    assert verdicts["lag p99 at 200 changes/s (ms)"] == (12.0, "PASS")
    assert verdicts["lag p99 at 2000 changes/s (ms)"] == (140.0, "FAIL")


def test_ingest_targets_count_deliveries_applied_not_only_answered() -> None:
    """The hook answers once stored and applies right after: the slower rate is the one judged."""
    hook = {**ingest_kind(6000, server=300, db=200, client=40), "applied_rps": figure(3000)}
    result = {
        "ingest": {"16": {"hook": hook, "pgbench_insert": ingest_kind(15000, 0, 60, 10)}},
    }
    [ingest] = [v for v in bench.verdicts(result) if v["target"].startswith("ingest c16, applied")]
    assert (ingest["value"], ingest["verdict"]) == (0.2, "FAIL")  # answered: 0.4


def test_issue_12s_verdicts_compare_today_with_the_baseline_pair_by_pair() -> None:
    """With --baseline, ingest and merge must be no worse than the baseline's, run beside it."""
    hook = {**ingest_kind(3000, 220, 320, 30), "applied_rps": figure(2900, 2700, 3100)}
    # The medians alone (2,900 / 3,000) would say 0.97; the pairs say 0.725, 1.08 and 1.033.
    baseline = {**ingest_kind(3000, 160, 190, 25), "applied_rps": figure(4000, 2500, 3000)}
    result = {
        "ingest": {"16": {"hook": hook, "baseline": baseline}},
        "merge": {
            "paired_ratio": figure(0.17, 0.18),
            "paired_ratio_baseline": figure(0.43, 0.48, 0.45),
        },
    }
    verdicts = {v["target"]: (v["value"], v["verdict"]) for v in bench.verdicts(result)}
    ingest = verdicts["issue 12: ingest c16, applied, today / baseline (median of paired runs)"]
    merge = verdicts["issue 12: merge, today / baseline apply_pending (median of paired runs)"]
    assert ingest == (1.033, "PASS")
    assert merge == (0.45, "FAIL")


def test_without_a_baseline_issue_12s_verdicts_are_not_given() -> None:
    result = {"ingest": {"16": {"hook": ingest_kind(3000, 220, 320, 30)}}}
    assert not [v for v in bench.verdicts(result) if v["target"].startswith("issue 12")]


def test_a_variant_is_reported_against_the_hook_as_deployed_pair_by_pair() -> None:
    hook = {"rps": figure(1200.0, 1300.0), "cpu_db_us": figure(500.0, 520.0)}
    variant = {"rps": figure(1000.0, 1300.0), "cpu_db_us": figure(640.0, 650.0)}
    result = {
        "config": {"variant": {"MERGE_LINGER": "0"}},
        "ingest": {"16": {"hook": hook, "variant": variant}},
        "lag": {"200": {"p99_ms": figure(10.0, 14.0)}},
        "lag_variant": {"200": {"p99_ms": figure(10.0, 10.0)}},
    }
    assert bench.variant_section(result)[1:] == [
        "### The hook as deployed against the hook with MERGE_LINGER=0",
        "",
        "Each run of the two ran back to back (which one first alternates); a ratio above 1 "
        "means the hook as deployed is higher.",
        "",
        "| connections or rate | server | figure | median of deployed / variant | each pair |",
        "| ---: | --- | --- | ---: | --- |",
        "| 16 | hook | requests/s | 1.100 | 1.200 / 1.000 |",
        "| 16 | hook | database CPU per request | 0.791 | 0.781 / 0.800 |",
        "| 200/s | hook | lag p99 (12.0 (10.0-14.0) against 10.0 (10.0-10.0) ms) | 1.200 "
        "| 1.000 / 1.400 |",
    ]


@pytest.mark.parametrize("pair", ["MERGE_LINGER", "=0"])
def test_a_variant_setting_must_be_name_equals_value(pair: str) -> None:
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        bench.parse_variant([pair])


@pytest.mark.parametrize(
    ("kinds", "odd_round"),
    [
        (
            ["hook", "baseline", "nodb", "baseline_nodb"],
            ["baseline", "hook", "baseline_nodb", "nodb"],
        ),
        (["hook", "variant", "nodb"], ["variant", "hook", "nodb"]),
    ],
    ids=["baseline", "variant"],
)
def test_each_pair_runs_back_to_back_and_swaps_which_goes_first(
    kinds: list[str], odd_round: list[str]
) -> None:
    assert bench.round_order(kinds, 0) == kinds
    assert bench.round_order(kinds, 1) == odd_round
