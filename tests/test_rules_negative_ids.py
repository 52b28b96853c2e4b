"""A fragrance whose id is negative, at rest, table-driven.

The column is an integer and takes -1, written by hand in psql or adopted with the
catalog; no delta or snapshot can write one. Yet every delta of the CMS that names such a
fragrance is refused as fragrance_id.out_of_range, so the sync never changes it, and no
finding said so (hostile review). fragrance_id.out_of_range applies to the catalog too:
a write by hand opens the finding in its own transaction, the catalog check finds one
written without the write triggers, and a write that fixes the id closes it.
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import receipt_codes

# (case id, an id the column holds and no delta can name).
NEGATIVE: list[tuple[str, int]] = [
    ("minus one", -1),
    ("the smallest integer", -(2**31)),
]

# (case id, an id a delta can name).
IN_RANGE: list[tuple[str, int]] = [
    ("zero, as the catalog's first", 0),
    ("the largest integer", 2**31 - 1),
]

FINDINGS = "select rule, severity, field, message from sync.open_finding where fragrance_id = %s"


def sentence(fragrance_id: int) -> str:
    return (
        f"fragrance_id {fragrance_id} is outside 0 to 2147483647: every delta of the CMS that"
        " names it is refused, so the sync never changes this fragrance"
    )


@pytest.mark.parametrize("fragrance_id", [i for _, i in NEGATIVE], ids=[c for c, _ in NEGATIVE])
def test_a_negative_id_written_by_hand_opens_a_finding_and_the_fix_closes_it(
    db: psycopg.Connection, fragrance_id: int
) -> None:
    db.execute(
        "insert into public.fragrances values (%s, 'Rose by hand', 'Petals', 1, false)",
        [fragrance_id],
    )
    assert db.execute(FINDINGS, [fragrance_id]).fetchall() == [
        ("fragrance_id.out_of_range", "error", "fragrance_id", sentence(fragrance_id))
    ]
    db.execute(
        "update public.fragrances set fragrance_id = 900001 where fragrance_id = %s",
        [fragrance_id],
    )
    assert db.execute(FINDINGS, [fragrance_id]).fetchall() == []
    assert db.execute(FINDINGS, [900001]).fetchall() == []


@pytest.mark.parametrize("fragrance_id", [i for _, i in NEGATIVE], ids=[c for c, _ in NEGATIVE])
def test_an_id_made_negative_by_hand_opens_a_finding(
    db: psycopg.Connection, fragrance_id: int
) -> None:
    """Judged whole by the write's trigger: the id's finding beside its fields'."""
    db.execute(
        "update public.fragrances set fragrance_id = %s where fragrance_id = 7", [fragrance_id]
    )
    found = {r[:2] for r in db.execute(FINDINGS, [fragrance_id]).fetchall()}
    assert ("fragrance_id.out_of_range", "error") in found
    assert db.execute(FINDINGS, [7]).fetchall() == []


@pytest.mark.parametrize("fragrance_id", [i for _, i in NEGATIVE], ids=[c for c, _ in NEGATIVE])
def test_a_negative_id_at_rest_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, fragrance_id: int
) -> None:
    with db.transaction():
        # As an adopted catalog arrives: no write trigger judges the row.
        db.execute("set local session_replication_role = replica")
        db.execute(
            "insert into public.fragrances values (%s, 'Rose by hand', 'Petals', 1, false)",
            [fragrance_id],
        )
    db.execute("select * from sync.check_catalog()")
    assert db.execute(FINDINGS, [fragrance_id]).fetchall() == [
        ("fragrance_id.out_of_range", "error", "fragrance_id", sentence(fragrance_id))
    ]


@pytest.mark.parametrize("fragrance_id", [i for _, i in IN_RANGE], ids=[c for c, _ in IN_RANGE])
def test_an_id_a_delta_can_name_is_no_finding(db: psycopg.Connection, fragrance_id: int) -> None:
    db.execute("delete from public.fragrances where fragrance_id = %s", [fragrance_id])
    db.execute(
        "insert into public.fragrances values (%s, 'Rose by hand', 'Petals', 1, false)",
        [fragrance_id],
    )
    db.execute("select * from sync.check_catalog()")
    assert db.execute(FINDINGS, [fragrance_id]).fetchall() == []


def test_a_delta_naming_a_negative_id_is_still_refused_on_the_hooks_path(
    tx: psycopg.Connection,
) -> None:
    tx.execute("insert into public.fragrances values (-1, 'Rose by hand', 'Petals', 1, false)")
    [reasons] = receipt_codes(tx, [{"fragrance_id": -1, "forbidden": True}])
    assert reasons == ["fragrance_id.out_of_range:error"]
    assert tx.execute(
        "select forbidden from public.fragrances where fragrance_id = -1"
    ).fetchone() == (False,)


def test_the_rule_applies_to_deltas_and_the_catalog(tx: psycopg.Connection) -> None:
    assert tx.execute(
        "select applies_to, severity, tunable from sync.rule"
        " where code = 'fragrance_id.out_of_range'"
    ).fetchone() == ("both", "error", [])
