"""The quality of the data at rest: the whole catalog checked, findings with history, tunable rules.

The adopted catalog (sql/catalog.sql) has the real catalog's shape: every
description ends in two spaces, three quote a word with C1 controls (Windows-1252
read as Latin-1), many names are shared and one ends in a space.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from conftest import Server
from helpers import (
    FREEZE_INBOX_DELETES,
    as_replica,
    body,
    check_catalog,
    explained_plans,
    lossy_rechecks_by_array,
    raises_sqlstate,
    receive,
    receive_many,
    set_apply_on_receipt,
    table_activity,
)

#: The generated catalog's descriptions reported as padded: all 5,000 but the three that
#: quote a word with C1 controls, as the real catalog's do (description.c1_control ranks first).
PADDED = 4997


def open_findings(conn: psycopg.Connection, fragrance_id: int) -> list[tuple[str, str]]:
    return conn.execute(
        "select rule, severity from sync.open_finding where fragrance_id = %s order by rule",
        [fragrance_id],
    ).fetchall()


def load_copies_of_the_catalog(db: psycopg.Connection, copies: int, name: str) -> None:
    """Add ``copies`` copies of the 5,000 fragrances under new ids, named by the SQL ``name``.

    A bulk load, as an adopted catalog arrives: no write trigger fires.
    """
    with as_replica(db):
        db.execute(
            f"insert into public.fragrances select f.fragrance_id + c.copy * 5000, {name},"
            "        f.description, f.cost, f.forbidden"
            " from public.fragrances as f cross join generate_series(1, %s) as c (copy)",
            [copies],
        )


def test_the_check_reports_shared_names_and_padded_descriptions_with_counts(
    db: psycopg.Connection,
) -> None:
    shared = db.execute(
        "select count(*) from public.fragrances as f"
        " where (select count(*) from public.fragrances as o where o.name = f.name) > 1"
    ).fetchone()[0]  # type: ignore[index]
    report = check_catalog(db)
    assert set(report) == {
        "description.untrimmed",
        "description.c1_control",
        "name.duplicate",
        "name.untrimmed",
    }
    assert report["description.untrimmed"]["fragrances"] == PADDED
    assert report["description.c1_control"]["fragrances"] == 5000 - PADDED
    assert report["name.untrimmed"]["fragrances"] == 1
    assert report["name.duplicate"]["fragrances"] == shared > 500
    assert {r["severity"] for r in report.values()} == {"warning"}
    assert "is also the name of another fragrance" in report["name.duplicate"]["example"]


def test_the_adopted_catalog_as_the_real_one_is_shaped_gives_the_health_nothing_to_warn_about(
    db: psycopg.Connection,
) -> None:
    """Its shape (padding, shared names, quotes from Windows) is known: warnings, counted."""
    check_catalog(db)
    receive(db, {"fragrance_id": 1, "cost": 1})  # a recent delivery: silence is not the reason
    assert db.execute("select verdict from sync.health").fetchone() == ("ok",)


def test_a_second_check_opens_nothing_new(db: psycopg.Connection) -> None:
    check_catalog(db)
    again = check_catalog(db)
    assert {(r["opened"], r["closed"]) for r in again.values()} == {(0, 0)}


def test_a_second_check_of_findings_past_work_mem_compares_no_row_with_every_id(
    db: psycopg.Connection,
) -> None:
    """The nightly check of a catalog whose findings outgrow work_mem stays linear in them.

    A bitmap over more pages than work_mem holds keeps whole pages, and each
    of their rows was then compared with every id of the array that named
    the rows: the second check of a million fragrances ran for hours. Here
    40,000 fragrances and the least work_mem stand in for them.
    """
    load_copies_of_the_catalog(db, 7, "left(c.copy || ' ' || f.name, 150)")
    check_catalog(db)
    db.execute("set work_mem = '64kB'")
    plans = explained_plans(db, analyze=True)
    again = check_catalog(db)
    assert {(r["opened"], r["closed"]) for r in again.values()} == {(0, 0)}
    assert again["description.untrimmed"]["fragrances"] == 8 * PADDED
    assert lossy_rechecks_by_array(plans) == []


def test_the_check_never_changes_a_fragrance(db: psycopg.Connection) -> None:
    query = "select md5(string_agg(f::text, '|' order by fragrance_id)) from public.fragrances as f"
    before = db.execute(query).fetchone()
    check_catalog(db)
    assert db.execute(query).fetchone() == before
    assert db.execute("select count(*) from sync.fragrance_history").fetchone() == (0,)


@pytest.mark.parametrize(
    ("edit", "rule", "severity"),
    [
        ("set cost = 12.5", "cost.fractional", "warning"),
        ("set cost = null", "cost.null", "error"),
        ("set cost = -3", "cost.negative", "error"),
        ("set cost = 1e20", "cost.too_large", "error"),
        ("set cost = 1.125", "cost.too_precise", "error"),
        ("set name = ' Padded'", "name.untrimmed", "warning"),
        ("set name = ''", "name.blank", "error"),
        ("set name = chr(1617)", "name.blank", "error"),  # an Arabic shadda alone
        ("set name = 'Rose' || chr(7)", "name.control_character", "error"),
        ("set name = 'Rose' || chr(8232) || 'Garden'", "name.control_character", "error"),
        ("set name = 'Rose' || chr(8238)", "name.bidi_control", "error"),
        ("set name = 'Rose' || chr(8203)", "name.invisible_character", "error"),
        ("set name = 'Rose' || chr(769)", "name.not_normalized", "warning"),
        (
            "set description = 'Ro' || chr(173) || 'se'",
            "description.invisible_character",
            "warning",
        ),
        ("set name = null", "name.null", "error"),
        ("set description = 'ok' || chr(27) || '[2J'", "description.control_character", "error"),
        ("set forbidden = null", "forbidden.null", "error"),
        (
            "set name = (select name from public.fragrances where fragrance_id = 8)",
            "name.duplicate",
            "warning",
        ),
    ],
)
def test_a_hand_edit_that_breaks_a_rule_opens_a_finding_in_its_own_transaction(
    db: psycopg.Connection, edit: str, rule: str, severity: str
) -> None:
    with db.transaction():
        db.execute(f"update public.fragrances {edit} where fragrance_id = 7")
        assert (rule, severity) in open_findings(db, 7)


def test_windows_quotes_read_as_latin_1_in_the_catalog_are_a_warning_health_does_not_warn_about(
    db: psycopg.Connection,
) -> None:
    """The real catalog holds three such descriptions; the CMS sends them with every edit."""
    db.execute(
        "update public.fragrances set description = 'Smells of ' || chr(147)"
        " || 'rain' || chr(148) || '  ' where fragrance_id = 7"
    )
    check_catalog(db)
    assert db.execute(
        "select rule, severity from sync.open_finding"
        " where fragrance_id = 7 and field = 'description'"
    ).fetchall() == [("description.c1_control", "warning")]
    (reason,) = db.execute("select reason from sync.health").fetchone()  # type: ignore[misc]
    assert "error rule" not in reason


@pytest.mark.parametrize(
    ("cost", "sentence"),
    [
        ("'NaN'", "cost NaN is not a number"),
        ("'Infinity'", "cost Infinity is not a finite number"),
        ("'-Infinity'", "cost -Infinity is not a finite number"),
        ("1e400", "is too large to be a finite number"),
    ],
)
def test_a_cost_that_is_no_finite_number_at_rest_is_named_for_what_it_is(
    db: psycopg.Connection, cost: str, sentence: str
) -> None:
    """A numeric column holds NaN and infinities, which no delta can carry: said as they are."""
    db.execute(f"update public.fragrances set cost = {cost} where fragrance_id = 7")
    (message,) = db.execute(
        "select message from sync.open_finding where fragrance_id = 7 and rule = 'cost.not_finite'"
    ).fetchone()  # type: ignore[misc]
    assert sentence in message


def test_a_rule_turned_down_to_a_warning_hides_no_error_at_rest(db: psycopg.Connection) -> None:
    """The catalog is judged as deltas are: a field by its first error, else its first warning."""
    db.execute("update sync.rule set severity = 'warning' where code = 'name.control_character'")
    name = "set name = 'Rose' || chr(7) || chr(8238) || 'gnp.exe'"
    db.execute(f"update public.fragrances {name} where fragrance_id = 7")  # a hand edit
    with as_replica(db):  # a bulk load: no write trigger fires, the check finds it
        db.execute(f"update public.fragrances {name} where fragrance_id = 8")
    check_catalog(db)
    for fragrance_id in (7, 8):
        assert ("name.bidi_control", "error") in open_findings(db, fragrance_id)
        assert ("name.control_character", "warning") not in open_findings(db, fragrance_id)


def test_the_check_finds_the_invisible_characters_an_adopted_catalog_holds(
    db: psycopg.Connection,
) -> None:
    """A catalog arrives by bulk load, judged by no write trigger: the check finds them."""
    with as_replica(db):
        db.execute(
            "update public.fragrances set name = name || chr(8203) where fragrance_id in (7, 8)"
        )
        db.execute(
            "update public.fragrances set description = 'Ro' || chr(173) || 'se'"
            " where fragrance_id = 9"
        )
        # An emoji ZWJ sequence is no invisible character out of place.
        db.execute(
            "update public.fragrances set name = %s where fragrance_id = 10",
            ["Caf\u00e9 \U0001f468\u200d\U0001f469\u200d\U0001f467"],
        )
    name_7 = db.execute("select name from public.fragrances where fragrance_id = 7").fetchone()[0]  # type: ignore[index]
    query = "select md5(string_agg(f::text, '|' order by fragrance_id)) from public.fragrances as f"
    catalog = db.execute(query).fetchone()

    report = check_catalog(db)

    names = report["name.invisible_character"]
    assert (names["severity"], names["fragrances"], names["opened"]) == ("error", 2, 2)
    assert names["example_fragrance_id"] == 7
    assert names["example"] == (
        f"name holds the invisible character U+200B at position {len(name_7)};"
        " names that look alike would differ"
    )
    descriptions = report["description.invisible_character"]
    assert (descriptions["severity"], descriptions["fragrances"]) == ("warning", 1)
    assert descriptions["example"].startswith(
        "description holds the invisible character U+00AD at position 3"
    )
    assert [rule for rule, _ in open_findings(db, 10) if rule.endswith("invisible_character")] == []
    assert db.execute(query).fetchone() == catalog
    # Health names an error rule broken at rest.
    reason = db.execute("select reason from sync.health").fetchone()[0]  # type: ignore[index]
    assert "2 fragrances break an error rule (name.invisible_character)" in reason


def test_the_edit_that_fixes_it_closes_the_finding_and_says_who(dba: psycopg.Connection) -> None:
    dba.execute("update public.fragrances set cost = 12.5 where fragrance_id = 7")
    dba.execute("update public.fragrances set cost = 13 where fragrance_id = 7")
    rows = dba.execute(
        "select rule, closed_at is not null, closed_by from sync.finding where fragrance_id = 7"
        " and rule = 'cost.fractional'"
    ).fetchall()
    assert rows == [("cost.fractional", True, "a write by alice")]


def test_a_name_no_longer_shared_closes_the_finding_of_the_other_fragrance_too(
    db: psycopg.Connection,
) -> None:
    db.execute("update public.fragrances set name = 'Twin' where fragrance_id in (7, 8)")
    assert ("name.duplicate", "warning") in open_findings(db, 8)
    db.execute("update public.fragrances set name = 'Single' where fragrance_id = 7")
    assert ("name.duplicate", "warning") not in open_findings(db, 8)


def name_reconciliations(plans: list[str]) -> int:
    """How many of the statements explained reconciled findings of names (and of what else)."""
    return sum("with found as materialized" in plan for plan in plans)


def test_a_merge_of_a_name_nobody_else_holds_runs_no_reconciliation_of_names(
    db: psycopg.Connection,
) -> None:
    """Most names written are their fragrance's alone: nothing can open, change or close.

    Then two reads by key say so (nothing shared, no name finding standing)
    and the statement that reconciles findings does not run: it was about
    half of what the hook's merges spent on findings (bench/README.md, step
    33). A name another fragrance holds is reconciled as before.
    """
    set_apply_on_receipt(db, True)
    db.execute("update public.fragrances set name = 'Alone before' where fragrance_id = 7")
    db.execute("update public.fragrances set name = 'Twin' where fragrance_id = 8")
    plans = explained_plans(db)
    assert receive(db, {"fragrance_id": 7, "name": "Alone after"})["status"] == "applied"
    assert name_reconciliations(plans) == 0
    assert [r for r, _ in open_findings(db, 7) if r.startswith("name.")] == []

    plans.clear()
    assert receive(db, {"fragrance_id": 7, "name": "Twin"})["status"] == "applied"
    assert name_reconciliations(plans) == 1
    assert ("name.duplicate", "warning") in open_findings(db, 7)
    assert ("name.duplicate", "warning") in open_findings(db, 8)

    plans.clear()
    assert receive(db, {"fragrance_id": 7, "name": "Alone again"})["status"] == "applied"
    assert name_reconciliations(plans) == 1
    assert ("name.duplicate", "warning") not in open_findings(db, 7)
    assert ("name.duplicate", "warning") not in open_findings(db, 8)


def shared_names_truth(conn: psycopg.Connection, ids: list[int]) -> set[int]:
    """The fragrances among ``ids`` whose name another fragrance holds, by a plain query."""
    rows = conn.execute(
        "select f.fragrance_id from public.fragrances as f where f.fragrance_id = any(%s)"
        " and exists (select from public.fragrances as o"
        "             where o.name = f.name and o.fragrance_id <> f.fragrance_id)",
        [ids],
    ).fetchall()
    return {r[0] for r in rows}


def open_duplicates(conn: psycopg.Connection, ids: list[int]) -> set[int]:
    rows = conn.execute(
        "select fragrance_id from sync.open_finding"
        " where rule = 'name.duplicate' and fragrance_id = any(%s)",
        [ids],
    ).fetchall()
    return {r[0] for r in rows}


def write_names(db: psycopg.Connection, how: str, names: dict[int, str]) -> None:
    """One step of NAME_STEPS or LOOKALIKE_STEPS: names written by hand or delivered, or deleted."""
    if how == "hand":
        for fragrance_id, name in names.items():
            db.execute(
                "update public.fragrances set name = %s where fragrance_id = %s",
                [name, fragrance_id],
            )
    elif how == "delete":
        db.execute("delete from public.fragrances where fragrance_id = any(%s)", [list(names)])
    else:
        receive_many(db, [body({"fragrance_id": i, "name": n}) for i, n in names.items()])


#: Steps of names written to fragrances 1 to 4 (two names, Ash and Birch, that no other
#: fragrance of the catalog holds): by a DBA's UPDATE, or by a batch of deliveries.
NAME_STEPS = [
    pytest.param([("hand", {1: "Ash"}), ("hand", {2: "Ash"})], id="a second holder, by hand"),
    pytest.param([("batch", {1: "Ash"}), ("batch", {2: "Ash"})], id="a second holder, delivered"),
    pytest.param(
        [("hand", {1: "Ash"}), ("batch", {2: "Ash", 3: "Ash"})],
        id="two join a single holder in one batch",
    ),
    pytest.param(
        [("hand", {1: "Ash", 2: "Ash", 3: "Ash"}), ("batch", {2: "Birch", 3: "Birch"})],
        id="two leave a group of three in one batch",
    ),
    pytest.param(
        [("batch", {1: "Ash", 2: "Ash"}), ("hand", {1: "Birch"}), ("hand", {2: "Birch"})],
        id="a pair moves to another name one by one",
    ),
    pytest.param(
        [("hand", {1: "Ash", 2: "Ash", 3: "Ash", 4: "Ash"}), ("batch", {1: "Birch"})],
        id="one leaves a group of four",
    ),
    pytest.param(
        [("batch", {1: "Ash", 2: "Ash"}), ("delete", {1: ""})],
        id="a holder deleted",
    ),
]


@pytest.mark.parametrize("steps", NAME_STEPS)
def test_shared_name_findings_follow_every_write_of_a_name(
    db: psycopg.Connection, steps: list[tuple[str, dict[int, str]]]
) -> None:
    ids = [1, 2, 3, 4]
    check_catalog(db)  # the catalog's own shared names are open findings from here on
    for how, names in steps:
        write_names(db, how, names)
        assert open_duplicates(db, ids) == shared_names_truth(db, ids), (how, names)


def lookalikes_truth(conn: psycopg.Connection, ids: list[int]) -> set[int]:
    """The fragrances among ``ids`` whose name another's equals under NFKC and lower case only.

    The steps write Latin names (in full width too), which fold so; the fold of Cyrillic and
    Greek letters that look Latin is tests/test_findings_confusables.py's.
    """
    rows = conn.execute(
        "select f.fragrance_id from public.fragrances as f where f.fragrance_id = any(%s)"
        " and exists (select from public.fragrances as o"
        "             where lower(normalize(o.name, nfkc)) = lower(normalize(f.name, nfkc))"
        "               and o.name <> f.name)",
        [ids],
    ).fetchall()
    return {r[0] for r in rows}


def open_lookalikes(conn: psycopg.Connection, ids: list[int]) -> set[int]:
    rows = conn.execute(
        "select fragrance_id from sync.open_finding"
        " where rule = 'name.lookalike' and fragrance_id = any(%s)",
        [ids],
    ).fetchall()
    return {r[0] for r in rows}


# (case id, names given to fragrances 1 and 2 by one batch of deliveries, whether both
# are then name.lookalike): names a reader takes for one, which name.duplicate missed.
LOOKALIKE_PAIRS = [
    ("case", ("Chanel No 5", "CHANEL NO 5"), True),
    ("full width", ("\uff23\uff28\uff21\uff2e\uff25\uff2c", "CHANEL"), True),
    ("full width and case", ("\uff43\uff48\uff41\uff4e\uff45\uff4c", "Chanel"), True),
    ("a ligature", ("\ufb01ne Rose", "Fine Rose"), True),
    ("a no-break space", ("Rose\u00a0Garden", "rose garden"), True),
    ("an accent is another letter", ("Rose", "Ros\u00e9"), False),
    ("the same name is name.duplicate only", ("Rose Garden", "Rose Garden"), False),
    ("different names", ("Ash", "Birch"), False),
]


@pytest.mark.parametrize(
    ("names", "lookalike"), [pytest.param(n, expected, id=i) for i, n, expected in LOOKALIKE_PAIRS]
)
def test_names_that_differ_only_in_case_or_width_are_lookalikes_at_rest(
    db: psycopg.Connection, names: tuple[str, str], lookalike: bool
) -> None:
    receipts = receive_many(
        db, [body({"fragrance_id": i, "name": n}) for i, n in enumerate(names, 1)]
    )
    assert [r[1] for r in receipts] == ["applied", "applied"]
    assert open_lookalikes(db, [1, 2]) == ({1, 2} if lookalike else set())
    assert db.execute(
        "select count(*) from sync.inbox where id = any(%s) and reasons::text like '%%lookalike%%'",
        [[r[0] for r in receipts]],
    ).fetchone() == (0,)  # a finding of the catalog, never a reason on a delivery
    report = check_catalog(db)
    assert "name.lookalike" not in report or report["name.lookalike"]["opened"] == 0


#: Steps of names written to fragrances 1 to 4, as NAME_STEPS, with names that fold alike.
LOOKALIKE_STEPS = [
    pytest.param([("batch", {1: "Ash"}), ("batch", {2: "ASH"})], id="a second spelling, delivered"),
    pytest.param([("hand", {1: "Ash"}), ("hand", {2: "ASH"})], id="a second spelling, by hand"),
    pytest.param(
        [("hand", {1: "Ash", 2: "Ash", 3: "Ash"}), ("batch", {4: "ASH"}), ("batch", {4: "Birch"})],
        id="a spelling joins and leaves a group of three",
    ),
    pytest.param(
        [("batch", {1: "Ash", 2: "ASH"}), ("hand", {2: "Ash"})],
        id="a spelling corrected by hand",
    ),
    pytest.param(
        [("batch", {1: "Ash", 2: "ASH", 3: "\uff21\uff53\uff48"}), ("batch", {2: "Birch"})],
        id="one of three spellings leaves",
    ),
    pytest.param(
        [("batch", {1: "Ash", 2: "ASH"}), ("batch", {3: "ASH"}), ("batch", {1: "ASH"})],
        id="three spellings become one",
    ),
    pytest.param(
        [("batch", {1: "Ash", 2: "ASH"}), ("delete", {1: ""})],
        id="a holder deleted",
    ),
]


@pytest.mark.parametrize("steps", LOOKALIKE_STEPS)
def test_lookalike_findings_follow_every_write_of_a_name(
    db: psycopg.Connection, steps: list[tuple[str, dict[int, str]]]
) -> None:
    ids = [1, 2, 3, 4]
    check_catalog(db)
    for how, names in steps:
        write_names(db, how, names)
        assert open_lookalikes(db, ids) == lookalikes_truth(db, ids), (how, names)
        assert open_duplicates(db, ids) == shared_names_truth(db, ids), (how, names)


def test_the_check_finds_lookalikes_an_adopted_catalog_holds(db: psycopg.Connection) -> None:
    with as_replica(db):  # a bulk load: no trigger
        db.execute("update public.fragrances set name = 'ROSE' where fragrance_id = 1")
        db.execute("update public.fragrances set name = 'rose' where fragrance_id = 2")
    report = check_catalog(db)
    assert report["name.lookalike"]["opened"] == 2
    assert open_lookalikes(db, [1, 2]) == {1, 2}


def test_a_dba_reads_which_other_fragrances_share_or_fold_to_a_name(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    names = {1: "Twin", 2: "Twin", 3: "TWIN", 4: "Twin", 5: "Single"}
    receive_many(db, [body({"fragrance_id": i, "name": n}) for i, n in names.items()])
    db.execute("update public.fragrances set cost = 12.5 where fragrance_id = 1")
    rows = dba.execute(
        "select fragrance_id, rule, shared_with from sync.open_finding where fragrance_id <= 5"
        " and rule in ('name.duplicate', 'name.lookalike', 'cost.fractional')"
        " order by fragrance_id, rule"
    ).fetchall()
    assert rows == [
        (1, "cost.fractional", None),
        (1, "name.duplicate", [2, 4]),
        (1, "name.lookalike", [3]),
        (2, "name.duplicate", [1, 4]),
        (2, "name.lookalike", [3]),
        (3, "name.lookalike", [1, 2, 4]),
        (4, "name.duplicate", [1, 2]),
        (4, "name.lookalike", [3]),
    ]


def test_joining_a_large_group_of_shared_names_rewrites_no_other_finding(
    db: psycopg.Connection,
) -> None:
    db.execute("update public.fragrances set name = 'Crowd' where fragrance_id between 1 and 50")
    before = db.execute(
        "select id, message, value from sync.finding where rule = 'name.duplicate'"
        " and fragrance_id between 1 and 50 order by id"
    ).fetchall()
    receipt = receive(db, {"fragrance_id": 51, "name": "Crowd"})
    after = db.execute(
        "select id, message, value from sync.finding where rule = 'name.duplicate'"
        " and fragrance_id between 1 and 50 order by id"
    ).fetchall()
    assert receipt["status"] == "applied"
    assert len(before) == 50 and after == before
    assert ("name.duplicate", "warning") in open_findings(db, 51)


def test_a_backlog_of_many_names_is_applied_in_one_call(db: psycopg.Connection) -> None:
    """A DBA applies a held-back backlog at once; its names fit the server's lock table.

    A lock per name written or left (about 24,000 here) filled the server's
    lock table: the call failed with "out of shared memory".
    """
    set_apply_on_receipt(db, False)
    renames = [body({"fragrance_id": n % 5000, "name": f"Renamed {n}"}) for n in range(20_000)]
    receive_many(db, renames)
    set_apply_on_receipt(db, True)
    processed, applied = db.execute(
        "select processed, applied from sync.apply_pending(20000)"
    ).fetchone()  # type: ignore[misc]
    assert (processed, applied) == (20_000, 20_000)
    assert db.execute("select name from public.fragrances where fragrance_id = 7").fetchone() == (
        "Renamed 15007",
    )
    assert db.execute(
        "select count(*) from sync.open_finding where rule = 'name.duplicate'"
    ).fetchone() == (0,)


def test_a_bulk_rename_by_a_dba_keeps_the_shared_name_findings(db: psycopg.Connection) -> None:
    """One UPDATE of 20,000 names, as a DBA's clean-up: judged in full, without a lock per name."""
    load_copies_of_the_catalog(db, 3, "f.name")
    db.execute("update public.fragrances set name = 'Same ' || (fragrance_id % 10000)")
    assert db.execute(
        "select count(*) from sync.open_finding where rule = 'name.duplicate'"
    ).fetchone() == (20_000,)


def check_while_a_writer_holds_the_findings(
    server: Server,
    dbname: str,
    db: psycopg.Connection,
    write: Callable[[psycopg.Connection], object],
) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run the check while a write in flight holds the lock a merge takes on the findings.

    Once the check waits for it, ``write`` writes on the writer's connection, which commits.
    Returns whether the check had read the catalog by then, and its report.
    """
    with psycopg.connect(server.url(dbname)) as writer:
        writer.execute("lock table sync.finding in row exclusive mode")
        checker = psycopg.connect(server.url(dbname), autocommit=True)
        pid = checker.info.backend_pid
        report: list[dict[str, dict[str, Any]]] = []
        thread = threading.Thread(target=lambda: report.append(check_catalog(checker)))
        thread.start()
        try:
            for _ in range(2400):  # until the check waits for the findings (not a timing check)
                waiting = db.execute(
                    "select exists (select from pg_locks where pid = %s and not granted"
                    " and relation = 'sync.finding'::regclass)",
                    [pid],
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the check never waited for the findings")
            held = db.execute(
                "select exists (select from pg_locks where pid = %s and granted"
                " and relation = 'public.fragrances'::regclass)",
                [pid],
            ).fetchone()
            write(writer)
            writer.commit()
        finally:
            thread.join()
            checker.close()
    assert report, "the check failed"
    return bool(held and held[0]), report[0]


def test_the_check_judges_the_catalog_before_it_holds_the_findings(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """Merges wait while the check holds the findings: it must not judge the catalog then.

    Every merge writes findings, so every merge waited for the whole check:
    4.7 s at 200,000 fragrances (49 to 91 s at 1,000,000). The check now
    judges the catalog first, holding nothing a merge needs, and holds the
    findings only to reconcile what differs and what was written meanwhile
    (194 to 258 ms at 200,000, measured). Here a write in flight (it holds
    the findings' lock a merge takes) makes the check wait: by then it has
    read the catalog. Writes made while it waits are judged again, not
    overwritten with what the catalog was, and what a bulk load (no
    trigger) wrote meanwhile is found.
    """
    check_catalog(db)
    # Two fragrances whose names nobody else has, and one more to fix.
    alone = [
        row[0]
        for row in db.execute(
            "select min(fragrance_id) from public.fragrances group by name"
            " having count(*) = 1 order by 1 limit 2"
        ).fetchall()
    ]
    assert ("name.duplicate", "warning") not in open_findings(db, alone[0])
    assert ("description.untrimmed", "warning") in open_findings(db, 10)

    # While it waits, a bulk load (no trigger: only the check finds what it
    # breaks) turns a cost negative and gives one fragrance another's name;
    # a write fixes a description.
    def write(writer: psycopg.Connection) -> None:
        with as_replica(writer):
            writer.execute("update public.fragrances set cost = -1 where fragrance_id = 7")
            writer.execute(
                "update public.fragrances set name = (select name from public.fragrances"
                " where fragrance_id = %s) where fragrance_id = %s",
                [alone[1], alone[0]],
            )
        writer.execute("update public.fragrances set description = 'Fixed' where fragrance_id = 10")

    held, report = check_while_a_writer_holds_the_findings(server, dbname, db, write)
    assert held, "the check waited for the findings before it read the catalog"
    assert "description.untrimmed" in report
    assert ("cost.negative", "error") in open_findings(db, 7)
    assert ("name.duplicate", "warning") in open_findings(db, alone[0])
    assert ("name.duplicate", "warning") in open_findings(db, alone[1])
    assert ("description.untrimmed", "warning") not in open_findings(db, 10)
    # What it left is what a check finds: nothing to open or close.
    again = check_catalog(db)
    assert sum(r["opened"] + r["closed"] for r in again.values()) == 0, again


def test_a_rule_changed_while_the_check_waits_is_the_rule_it_applies(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The catalog judged before the wait was judged by the rules then: they may have changed."""
    check_catalog(db)
    held, report = check_while_a_writer_holds_the_findings(
        server,
        dbname,
        db,
        lambda writer: writer.execute(
            "update sync.rule set severity = 'error' where code = 'description.untrimmed'"
        ),
    )
    assert held
    assert report["description.untrimmed"]["severity"] == "error"
    assert db.execute(
        "select distinct severity from sync.open_finding where rule = 'description.untrimmed'"
    ).fetchall() == [("error",)]


def test_a_bulk_writer_of_names_and_a_writer_of_one_take_turns(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The lock a writer of many names takes for all of them makes a writer of one name wait."""
    with (
        psycopg.connect(server.url(dbname)) as bulk,
        psycopg.connect(server.url(dbname), autocommit=True) as single,
    ):
        bulk.execute(
            "update public.fragrances set name = 'Bulk ' || fragrance_id where fragrance_id < 100"
        )
        single.execute("set lock_timeout = '300ms'")
        with raises_sqlstate("55P03"):
            single.execute("update public.fragrances set name = 'Bulk 7' where fragrance_id = 4000")
        bulk.commit()
        single.execute("update public.fragrances set name = 'Bulk 7' where fragrance_id = 4000")
    assert ("name.duplicate", "warning") in open_findings(db, 4000)
    assert ("name.duplicate", "warning") in open_findings(db, 7)


def test_a_login_holding_advisory_locks_holds_back_no_merge_of_names(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """Any login may take any advisory lock: the turns of names must not be advisory locks."""
    with psycopg.connect(server.url(dbname, user="smart_library_login")) as reader:
        for key in ("sync.finding names", "sync.finding name Held"):
            reader.execute("select pg_advisory_xact_lock(hashtext(%s), 0)", [key])
            reader.execute("select pg_advisory_xact_lock(hashtext(%s))", [key])
        db.execute("set lock_timeout = '300ms'")
        receipt = receive(db, {"fragrance_id": 7, "name": "Held"})
        reader.rollback()
    assert (receipt["status"], receipt["reasons"]) == ("applied", [])


@pytest.mark.parametrize("login", ["smart_library_login", "sync_hook_login", "alice"])
@pytest.mark.parametrize(
    "statement",
    [
        "lock table sync_private.name_turn in exclusive mode",
        "select from sync_private.name_turn for update",
    ],
)
def test_only_the_sync_can_take_the_turns_of_names(
    server: Server, dbname: str, dba: psycopg.Connection, login: str, statement: str
) -> None:
    with psycopg.connect(server.url(dbname, user=login)) as conn, raises_sqlstate("42501"):
        conn.execute(statement)


def test_a_delivery_that_breaks_a_table_rule_opens_a_finding(db: psycopg.Connection) -> None:
    taken = db.execute("select name from public.fragrances where fragrance_id = 8").fetchone()[0]  # type: ignore[index]
    receipt = receive(db, {"fragrance_id": 7, "name": taken})
    assert receipt["status"] == "applied"
    assert ("name.duplicate", "warning") in open_findings(db, 7)


def test_a_deleted_fragrance_has_its_findings_closed(db: psycopg.Connection) -> None:
    db.execute("update public.fragrances set cost = 12.5 where fragrance_id = 7")
    db.execute("delete from public.fragrances where fragrance_id = 7")
    assert open_findings(db, 7) == []


def test_findings_keep_their_history_since_when_and_what_got_fixed(db: psycopg.Connection) -> None:
    db.execute("update public.fragrances set cost = 12.5 where fragrance_id in (7, 9)")
    db.execute("update public.fragrances set cost = 12 where fragrance_id = 9")
    fixed = db.execute(
        "select fragrance_id from sync.finding where closed_at > now() - interval '7 days'"
    ).fetchall()
    since = db.execute(
        "select first_seen_at <= now() from sync.open_finding where fragrance_id = 7"
        " and rule = 'cost.fractional'"
    ).fetchall()
    assert (fixed, since) == ([(9,)], [(True,)])


def test_a_finding_never_blocks_the_write(db: psycopg.Connection) -> None:
    db.execute("update public.fragrances set cost = null where fragrance_id = 7")
    assert db.execute("select cost from public.fragrances where fragrance_id = 7").fetchone() == (
        None,
    )


# --- rules a DBA tunes, with a version -----------------------------------------------------


def current_version(conn: psycopg.Connection) -> int:
    return conn.execute("select max(version) from sync.rule_version").fetchone()[0]  # type: ignore[index]


def test_changing_a_rule_makes_a_new_version_that_later_decisions_record(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    before = current_version(db)
    first = receive(db, {"fragrance_id": 7, "cost": 12.5})
    dba.execute("update sync.rule set severity = 'error' where code = 'cost.fractional'")
    after = current_version(db)
    second = receive(db, {"fragrance_id": 7, "cost": 13.5})
    versions = db.execute("select id, rules_version from sync.inbox order by id").fetchall()
    assert after == before + 1
    assert versions == [(first["inbox_id"], before), (second["inbox_id"], after)]
    assert second["status"] == "rejected"
    assert db.execute(
        "select changed_by, rules #>> '{cost.fractional,severity}' from sync.rule_version"
        " where version = %s",
        [after],
    ).fetchone() == ("alice", "error")


def test_an_update_that_changes_nothing_makes_no_version(dba: psycopg.Connection) -> None:
    before = current_version(dba)
    dba.execute("update sync.rule set severity = severity")
    assert current_version(dba) == before


@pytest.mark.parametrize(
    ("update", "sqlstate", "says"),
    [
        ("set severity = 'warning' where code = 'name.too_long'", "FS071", "always an error"),
        ("set parameter = 151 where code = 'name.too_long'", "FS073", "from 1 to 150"),
        ("set parameter = 0 where code = 'description.too_long'", "FS073", "from 1 to 1024"),
        ("set parameter = 2.5 where code = 'cost.too_precise'", "FS073", "whole number"),
        ("set parameter = null where code = 'cost.too_large'", "FS073", "got null"),
        ("set parameter = 3 where code = 'name.blank'", "FS072", "no parameter"),
        ("set severity = 'fatal' where code = 'name.blank'", "FS087", "severity"),
    ],
)
def test_a_bad_rule_value_is_refused_with_a_clear_error(
    dba: psycopg.Connection, update: str, sqlstate: str, says: str
) -> None:
    with raises_sqlstate(sqlstate, says):
        dba.execute(f"update sync.rule {update}")


def test_a_dba_can_change_only_severity_and_parameter(dba: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dba.execute("update sync.rule set description = 'mine' where code = 'name.blank'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dba.execute("delete from sync.rule")


def test_after_loosening_a_rule_one_call_rejudges_the_quarantine(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    rejected = receive(db, {"fragrance_id": 7, "name": "n" * 120, "cost": 3})
    dba.execute("update sync.rule set parameter = 100 where code = 'name.too_long'")
    tight = receive(db, {"fragrance_id": 8, "name": "n" * 120})
    assert (rejected["status"], tight["status"]) == ("applied", "rejected")
    dba.execute("update sync.rule set parameter = 150 where code = 'name.too_long'")
    assert dba.execute("select applied from sync.retry_all()").fetchone() == (1,)
    assert db.execute(
        "select status, rules_version from sync.inbox where id = %s", [tight["inbox_id"]]
    ).fetchone() == ("applied", current_version(db))


def test_after_tightening_a_rule_the_catalog_check_shows_the_rows_that_now_break_it(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    dba.execute("update sync.rule set parameter = 10 where code = 'name.too_long'")
    longer = db.execute(
        "select count(*) from public.fragrances where char_length(name) > 10"
    ).fetchone()[0]  # type: ignore[index]
    report = check_catalog(dba)
    assert report["name.too_long"]["fragrances"] == longer > 0
    assert "the limit is 10" in report["name.too_long"]["example"]


@pytest.mark.parametrize(
    ("severity", "status", "reasons"),
    [
        ("error", "rejected", [("cost.fractional", "error")]),
        ("warning", "applied", [("cost.fractional", "warning")]),
        ("off", "applied", []),
    ],
)
def test_a_rules_severity_decides_what_a_delta_that_breaks_it_becomes(
    db: psycopg.Connection, dba: psycopg.Connection, severity: str, status: str, reasons: list
) -> None:
    dba.execute("update sync.rule set severity = %s where code = 'cost.fractional'", [severity])
    receipt = receive(db, {"fragrance_id": 7, "cost": 12.5})
    assert receipt["status"] == status
    assert [(r["code"], r["severity"]) for r in receipt["reasons"]] == reasons


def test_a_rule_turned_off_is_not_checked_in_the_catalog_either(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    check_catalog(dba)
    dba.execute("update sync.rule set severity = 'off' where code = 'description.untrimmed'")
    report = check_catalog(dba)
    assert report["description.untrimmed"]["closed"] == PADDED
    assert report["description.untrimmed"]["fragrances"] == 0


def test_a_second_check_in_the_same_transaction_reports_only_what_it_closed(
    db: psycopg.Connection,
) -> None:
    """The first check's closures are its own: the second closed nothing."""
    check_catalog(db)
    with db.transaction():
        db.execute("update sync.rule set severity = 'off' where code = 'description.untrimmed'")
        assert check_catalog(db)["description.untrimmed"]["closed"] == PADDED
        again = check_catalog(db)
    assert {(rule, r["opened"], r["closed"]) for rule, r in again.items()} == {
        ("name.duplicate", 0, 0),
        ("name.untrimmed", 0, 0),
        ("description.c1_control", 0, 0),
    }


# --- seen where people look ------------------------------------------------------------------


def test_health_counts_open_findings_by_rule_and_warns_on_an_error_rule(
    db: psycopg.Connection,
) -> None:
    check_catalog(db)
    db.execute("update public.fragrances set cost = -1 where fragrance_id = 7")
    receive(db, {"fragrance_id": 1, "cost": 1})  # a recent delivery: silence is not the reason
    verdict, reason, findings = db.execute(
        "select verdict, reason, open_findings from sync.health"
    ).fetchone()  # type: ignore[misc]
    assert findings["description.untrimmed"] == PADDED and findings["cost.negative"] == 1
    assert verdict == "warn"
    assert "1 fragrances break an error rule (cost.negative)" in reason


def test_the_open_findings_list_errors_before_the_thousands_of_warnings_of_the_catalogs_shape(
    db: psycopg.Connection,
) -> None:
    """A DBA's SELECT * FROM sync.open_finding showed an error after every padded description."""
    check_catalog(db)
    db.execute("update public.fragrances set name = null where fragrance_id = 7")
    first = db.execute("select rule, severity, fragrance_id from sync.open_finding limit 1")
    assert first.fetchone() == ("name.null", "error", 7)


def test_the_metrics_give_every_catalog_rule_its_count(db: psycopg.Connection) -> None:
    check_catalog(db)
    findings = db.execute("select open_findings from sync.metrics()").fetchone()[0]  # type: ignore[index]
    rules = db.execute(
        "select code from sync.rule where applies_to in ('catalog', 'both') order by 1"
    ).fetchall()
    assert sorted(findings) == [r[0] for r in rules]
    assert findings["description.untrimmed"] == PADDED and findings["cost.null"] == 0


def test_the_status_report_lists_findings_by_rule_with_an_example(db: psycopg.Connection) -> None:
    check_catalog(db)
    report = db.execute("select sync.status_report()").fetchone()[0]  # type: ignore[index]
    by_rule = {f["rule"]: f for f in report["findings"]}
    assert by_rule["description.untrimmed"]["fragrances"] == PADDED
    assert by_rule["description.untrimmed"]["example_fragrance_id"] == 0
    assert (
        by_rule["description.untrimmed"]["example_message"]
        == db.execute(
            "select message from sync.open_finding"
            " where rule = 'description.untrimmed' and fragrance_id = 0"
        ).fetchone()[0]
    )  # type: ignore[index]


# --- run without a person --------------------------------------------------------------------

SNAPSHOT = '[{"fragrance_id": 1, "name": "N", "description": "D", "cost": 1, "forbidden": false}]'


def test_a_job_run_by_hand_is_recorded_with_what_it_did(dba: psycopg.Connection) -> None:
    run = dba.execute("select job, status, detail from sync.run_job('check_catalog')").fetchone()
    assert run is not None and (run[0], run[1]) == ("check_catalog", "ok")
    assert {r["rule"] for r in run[2]} == {
        "description.untrimmed",
        "description.c1_control",
        "name.duplicate",
        "name.untrimmed",
    }


def test_a_failed_job_is_recorded_not_raised(db: psycopg.Connection) -> None:
    db.execute(FREEZE_INBOX_DELETES)
    run = db.execute(
        "select status, detail ->> 'error' from sync.run_job('purge_inbox')"
    ).fetchone()
    assert run == ("failed", "deletes are frozen today")


def test_the_drift_check_without_a_snapshot_fails_saying_so(dba: psycopg.Connection) -> None:
    run = dba.execute("select status, detail from sync.run_job('check_drift')").fetchone()
    assert run is not None and run[0] == "failed"
    assert run[1]["sqlstate"] == "FS050" and "no CMS snapshot" in run[1]["error"]


def test_the_schedule_shows_every_job_and_its_last_run(dba: psycopg.Connection) -> None:
    dba.execute("select sync.load_snapshot(%s::jsonb)", [SNAPSHOT])
    dba.execute("select sync.run_job('check_drift')")
    rows = dba.execute(
        "select job, schedule, scheduled_by, last_status from sync.schedule() order by job"
    ).fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("check_catalog", "17 3 * * *", None),
        ("check_drift", "27 4 * * *", "ok"),
        ("purge_inbox", "42 3 * * *", None),
    ]
    assert all(r[2].startswith("cron, outside the database") for r in rows)


def test_an_unknown_job_is_refused(dba: psycopg.Connection) -> None:
    with raises_sqlstate("FS080", "there is no job 'vacuum'"):
        dba.execute("select sync.run_job('vacuum')")


def test_a_delivery_stored_pending_records_no_rules_version_until_judged(
    db: psycopg.Connection,
) -> None:
    set_apply_on_receipt(db, False)
    pending = receive(db, body({"fragrance_id": 7, "cost": 3}))
    assert db.execute(
        "select rules_version from sync.inbox where id = %s", [pending["inbox_id"]]
    ).fetchone() == (None,)
    db.execute("select sync.apply_pending()")
    assert db.execute(
        "select rules_version from sync.inbox where id = %s", [pending["inbox_id"]]
    ).fetchone() == (current_version(db),)


def test_deliveries_reach_their_findings_by_key_when_planned_on_an_empty_table(
    db: psycopg.Connection,
) -> None:
    """Plans are kept for the session: made while sync.finding was empty, they must not scan it.

    sync.finding starts empty at install and grows without bound; a plan that
    read every open finding per delivery grew slower with each one.
    """
    deltas = [
        body({"fragrance_id": n, "name": f"Twin {n % 2}", "description": f"padded {n}  "})
        for n in range(1, 6)
    ]
    for _ in range(3):  # the generic plans are made now, on an (almost) empty table
        receive_many(db, deltas)
    db.execute(
        "insert into sync.finding (rule, fragrance_id, field, value, message, severity,"
        " rules_version)"
        " select r.code, g, r.field, '\"x \"', 'planted', 'warning',"
        "        (select max(version) from sync.rule_version)"
        " from generate_series(100, 4999) as g"
        " cross join (values ('description.untrimmed', 'description'),"
        "                    ('name.untrimmed', 'name'), ('name.duplicate', 'name'),"
        "                    ('cost.fractional', 'cost')) as r (code, field)"
    )
    read = table_activity(db, lambda: receive_many(db, deltas))["finding"]["read"]
    assert read < 200, f"{read} findings read for 5 deliveries among 19,600 open findings"


def test_the_merge_matches_changed_findings_to_its_writes_in_one_pass(
    db: psycopg.Connection,
) -> None:
    """Each delivery that rewrites a value at fault updates its finding; no set is read per row.

    A nested loop planned on estimates matched every changed finding against
    every written field: quadratic in the batch (1,000 by 2,700 per batch).
    It was chosen when the plan was made while sync.finding was empty, as on
    a new install.
    """
    # As on a new install: only a replica's apply empties the findings by hand (FS094).
    with as_replica(db):
        db.execute("delete from sync.finding")
    db.execute("analyze sync.finding")
    plans = explained_plans(db, analyze=True)
    for round_ in range(3):  # the first round opens the findings, the others change them
        plans.clear()
        deltas = [{"fragrance_id": n, "description": f"padded {round_}  "} for n in range(1, 21)]
        receive_many(db, [body(d) for d in deltas])
    changed = db.execute(
        "select count(*) from sync.open_finding"
        " where rule = 'description.untrimmed' and fragrance_id <= 20 and value = '\"padded 2  \"'"
    ).fetchone()
    assert changed == (20,)
    explained = "\n".join(plans)
    assert "CTE Scan on standing" in explained
    rescans = [
        line.strip()
        for line in explained.splitlines()
        if "CTE Scan on standing" in line and "loops=1)" not in line
    ]
    assert rescans == []


# --- the merge and the check agree -----------------------------------------------------------


def test_a_changed_limit_is_in_the_sentence_of_the_findings_the_check_keeps(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """A limit tuned after a finding opened: the check writes the sentence the merge would.

    The check compared only the value and the severity of a standing
    finding, so "above 1000" stood after the limit became 2000, while a
    delivery of the same cost rewrote it: one state, two findings.
    """
    dba.execute(
        "update sync.rule set severity = 'warning', parameter = 1000 where code = 'cost.too_large'"
    )
    assert receive(db, {"fragrance_id": 7, "cost": 5000})["status"] == "applied"
    dba.execute("update sync.rule set parameter = 2000 where code = 'cost.too_large'")
    check_catalog(dba)
    query = (
        "select message, rules_version from sync.open_finding"
        " where fragrance_id = 7 and rule = 'cost.too_large'"
    )
    checked = db.execute(query).fetchone()
    assert checked == ("cost 5000 is above 2000, the largest cost accepted", current_version(db))
    assert receive(db, {"fragrance_id": 7, "cost": 5000})["status"] == "applied"
    assert db.execute(query).fetchone() == checked


def test_the_check_writes_again_the_untrimmed_sentences_of_the_old_wording(
    db: psycopg.Connection,
) -> None:
    """A release that says which end of a text is whitespace rewrites the findings standing.

    <field>.untrimmed said only "starts or ends with whitespace"; a finding
    whose value and severity stay the same keeps its sentence, so the
    catalog's 5,000 padded descriptions would have kept the old one for good.
    """
    check_catalog(db)
    query = (
        "select message from sync.open_finding"
        " where fragrance_id = 10 and rule = 'description.untrimmed'"
    )
    [(sentence,)] = db.execute(query).fetchall()
    assert sentence.endswith(" ends with 2 spaces")
    # As a finding opened by the release before stands (planted past the
    # refusal of hand changes, as a replica's apply would write it).
    with as_replica(db):
        db.execute(
            "update sync.finding set message = %s"
            " where fragrance_id = 10 and rule = 'description.untrimmed' and closed_at is null",
            [sentence.removesuffix(" ends with 2 spaces") + " starts or ends with whitespace"],
        )
    check_catalog(db)
    assert db.execute(query).fetchall() == [(sentence,)]


#: Values the property below writes: shared names, and values that break each field rule.
PROPERTY_VALUES: dict[str, list[Any]] = {
    "name": [
        *("Ash", "Ash", "Birch", "Ash ", "A\u200bB", "", "n" * 151, "Rose" + "\u0007"),
        *("ASH", "\uff41\uff53\uff48"),  # lookalikes of Ash: in capitals, in full width,
        "\u0410\u0405\u041d",  # and in Cyrillic capitals that look Latin
    ],
    "description": ["plain", "padded  ", "so\u00adft", "", "bell\u0007"],
    "cost": [1, 12.5, -1, 1e20, 1.125, 0, 5000],
    "forbidden": [True, False],
}

#: Rule changes the property makes between batches: severities, and limits in the sentences.
PROPERTY_RULE_CHANGES = [
    ("severity", "name.untrimmed", ["off", "warning", "error"]),
    ("severity", "description.untrimmed", ["off", "warning"]),
    ("severity", "cost.fractional", ["off", "warning", "error"]),
    ("severity", "name.duplicate", ["off", "warning"]),
    ("severity", "name.lookalike", ["off", "warning"]),
    ("severity", "cost.too_large", ["warning", "error"]),
    ("parameter", "cost.too_large", [100, 1000, 9007199254740991]),
    ("parameter", "name.too_long", [3, 4, 150]),
    ("parameter", "cost.too_precise", [0, 1, 2]),
]


def findings_now(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "select rule, fragrance_id, field, value, severity, message, rules_version"
        " from sync.open_finding order by rule, fragrance_id"
    ).fetchall()


def test_the_merge_and_the_check_find_the_same_for_the_same_catalog(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Property: whatever the deltas and rule changes, the merge's findings are the check's.

    Over seeded random batches of deltas (shared names, values breaking each
    field rule, creations of new fragrances), hand renames and deletes, and
    changes of severities and limits: right after the merge, the catalog
    check opens, closes and rewrites nothing; right after the check,
    delivering each fragrance's fields as they are (the merge judging the
    same state) changes no finding.
    """
    import random

    rnd = random.Random(20261201)
    ids = [1, 2, 3, 4, 5, 6, 7, 6001, 6002]
    check_catalog(dba)
    for step in range(80):
        if rnd.random() < 0.3:
            column, code, choices = rnd.choice(PROPERTY_RULE_CHANGES)
            dba.execute(
                f"update sync.rule set {column} = %s where code = %s", [rnd.choice(choices), code]
            )
            check_catalog(dba)
        deltas = []
        for _ in range(rnd.randint(1, 6)):
            delta: dict[str, Any] = {"fragrance_id": rnd.choice(ids)}
            for field, values in PROPERTY_VALUES.items():
                if rnd.random() < (0.9 if delta["fragrance_id"] > 5000 else 0.4):
                    delta[field] = rnd.choice(values)
            deltas.append(body(delta))
        receive_many(db, deltas)
        if rnd.random() < 0.15:
            db.execute(
                "update public.fragrances set name = %s where fragrance_id = %s",
                [rnd.choice(PROPERTY_VALUES["name"][:3]), rnd.choice(ids)],
            )
        if rnd.random() < 0.05:
            db.execute("delete from public.fragrances where fragrance_id = %s", [rnd.choice(ids)])
        merged = findings_now(db)
        report = check_catalog(dba)
        assert findings_now(db) == merged, step
        assert {(r["opened"], r["closed"]) for r in report.values()} <= {(0, 0)}, step
        rows = db.execute(
            "select to_jsonb(f) from public.fragrances as f where fragrance_id = any(%s)", [ids]
        ).fetchall()
        again = [
            body({"fragrance_id": row["fragrance_id"], field: row[field]})
            for (row,) in rows
            for field in PROPERTY_VALUES
        ]
        receive_many(db, again)
        assert findings_now(db) == merged, step
