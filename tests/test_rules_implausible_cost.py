"""A cost above what a fragrance plausibly costs, table-driven.

A cost of 7500 or 1e15 passed every rule below cost.too_large (2^53 - 1, what a JSON
reader holds exactly), yet the catalog's costs are 0 to 100 and the CMS adds 5 to 10 an
edit: such a cost is one in cents or with a digit too many, and it drags every mean and
price band a data scientist computes from the smart library. It is cost.implausible, a
warning above a limit a DBA tunes (1,000 by default): told on the delivery, a finding at
rest, never refused. Judged on the hook's path (a batch through sync.receive_many) and
at rest (sync.check_catalog).
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from helpers import as_replica, prepared_messages, receipt_codes

# (case id, a cost above the default limit of 1,000, and below cost.too_large's).
IMPLAUSIBLE: list[tuple[str, int | float]] = [
    ("just above the limit", 1001),
    ("75 in cents", 7500),
    ("a digit too many", 10000),
    ("fractional and above", 1000.5),
    ("a million", 10**6),
    ("2^53 - 1, the largest accepted", 2**53 - 1),
]

# (case id, a cost that passes).
PLAUSIBLE: list[tuple[str, int | float]] = [
    ("zero", 0),
    ("the catalog's dearest", 100),
    ("after many CMS edits", 640),
    ("the limit itself", 1000),
    ("the limit written with decimals", 1000.00),
]


@pytest.mark.parametrize("cost", [c for _, c in IMPLAUSIBLE], ids=[i for i, _ in IMPLAUSIBLE])
def test_an_implausible_cost_is_applied_with_a_warning(
    tx: psycopg.Connection, cost: int | float
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "cost": cost}])
    expected = "cost.fractional:warning" if cost != int(cost) else "cost.implausible:warning"
    assert reasons == [expected]
    assert tx.execute("select cost from public.fragrances where fragrance_id = 7").fetchone() == (
        Decimal(str(cost)),
    )


@pytest.mark.parametrize("cost", [c for _, c in PLAUSIBLE], ids=[i for i, _ in PLAUSIBLE])
def test_a_plausible_cost_passes(tx: psycopg.Connection, cost: int | float) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "cost": cost}])
    assert reasons == []


@pytest.mark.parametrize("cost", [1001, 7500, 2**53 - 1])
def test_a_row_at_rest_with_an_implausible_cost_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, cost: int
) -> None:
    # As an adopted catalog arrives: no write trigger judges the row.
    with as_replica(db):
        db.execute(
            "insert into public.fragrances values (900001, 'Rose', 'Petals', %s, false)", [cost]
        )
    db.execute("select * from sync.check_catalog()")
    assert db.execute(
        "select rule, severity from sync.open_finding where fragrance_id = 900001"
    ).fetchall() == [("cost.implausible", "warning")]


def test_a_write_of_an_implausible_cost_opens_a_finding_and_its_fix_closes_it(
    db: psycopg.Connection,
) -> None:
    db.execute("update public.fragrances set cost = 7500 where fragrance_id = 7")
    finding = "select rule from sync.open_finding where fragrance_id = 7 and rule like 'cost.%'"
    assert db.execute(finding).fetchall() == [("cost.implausible",)]
    db.execute("update public.fragrances set cost = 75 where fragrance_id = 7")
    assert db.execute(finding).fetchall() == []


def test_the_sentence_says_the_cost_and_the_limit(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "cost": 7500}) == [
        "cost 7500 is above 1000, the most a fragrance plausibly costs: a cost in cents, or"
        " with a digit too many?"
    ]


def test_an_error_of_cost_is_told_before_it(tx: psycopg.Connection) -> None:
    """Errors rank before warnings: a cost beyond cost.too_large is refused for that."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "cost": 2**53}])
    assert reasons == ["cost.too_large:error"]


def test_the_rule_is_a_warning_with_a_limit_a_dba_can_tune(tx: psycopg.Connection) -> None:
    row = tx.execute(
        "select severity, default_severity, applies_to, tunable, parameter, default_parameter,"
        " parameter_min, parameter_max from sync.rule where code = 'cost.implausible'"
    ).fetchone()
    assert row == (
        "warning",
        "warning",
        "both",
        ["severity", "parameter"],
        1000,
        1000,
        0,
        2**53 - 1,
    )


def test_a_dba_who_raises_the_limit_lets_the_cost_pass(tx: psycopg.Connection) -> None:
    tx.execute("update sync.rule set parameter = 10000 where code = 'cost.implausible'")
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "cost": 7500}])
    assert reasons == []


def test_a_dba_who_turns_it_to_an_error_refuses_the_edit(tx: psycopg.Connection) -> None:
    tx.execute("update sync.rule set severity = 'error' where code = 'cost.implausible'")
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "cost": 7500, "forbidden": True}])
    assert reasons == ["cost.implausible:error"]
    assert tx.execute("select cost from public.fragrances where fragrance_id = 7").fetchone() != (
        Decimal(7500),
    )
