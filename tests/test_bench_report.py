"""The benchmark's arithmetic: what it reads from /proc and how it turns runs into verdicts.

The bench itself is too slow and too noisy for the test suite; these pin the
parts that decide a PASS or FAIL, with made-up runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """bench/run.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def figure(*runs: float) -> dict[str, Any]:
    """A figure as the report stores it."""
    ordered = sorted(runs)
    return {
        "median": ordered[len(ordered) // 2],
        "min": ordered[0],
        "max": ordered[-1],
        "runs": list(runs),
    }


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


def test_cpu_ticks_reads_user_and_system_time_of_a_process(bench: ModuleType) -> None:
    deadline = os.times()
    while os.times().user - deadline.user < 0.2:
        sum(range(10_000))
    times = os.times()
    expected = (times.user + times.system) * os.sysconf("SC_CLK_TCK")
    assert bench.cpu_ticks([os.getpid()])[0] == pytest.approx(expected, abs=2)


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
    bench: ModuleType, workers: int, ceiling: float
) -> None:
    c16 = {
        "hook": ingest_kind(2000, server=500, db=400, client=60),
        "nodb": ingest_kind(6000, server=300, db=0, client=50),
    }
    assert bench.cpu_ceiling(c16, cores=2, workers=workers) == pytest.approx(ceiling)


def test_the_report_says_what_the_cpu_allows(bench: ModuleType) -> None:
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
        # The medians alone (16,000 / 50,000 = 0.32) would pass; each pair says 0.25 to 0.29.
        ([16_000, 12_000, 17_000], [60_000, 48_000, 50_000], "FAIL"),
        # The floor drifted with the machine; every pair is at 0.32 or more.
        ([20_000, 10_000, 16_000], [60_000, 31_000, 50_000], "PASS"),
    ],
)
def test_the_merge_target_compares_each_run_with_its_own_floor(
    bench: ModuleType, apply_runs: list[float], floor_runs: list[float], verdict: str
) -> None:
    paired = [a / f for a, f in zip(apply_runs, floor_runs, strict=True)]
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


def test_one_sided_no_database_runs_do_not_count_as_the_frameworks_limit(
    bench: ModuleType,
) -> None:
    nodb = {"rps": figure(4200, 7900, 8100), "busiest_worker_share": figure(1.0, 0.52, 0.55)}
    assert bench.balanced_rps(nodb) == 8000
