"""Tuning the data rules while deliveries flow: what a DBA's UPDATE of sync.rule puts in force.

Hostile review of the rules a DBA tunes: two DBAs tuning at once, a rule
loosened or tightened under the findings at rest, and the changes a rule
cannot take.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from helpers import raises_sqlstate, receive


@pytest.fixture
def other_dba(server: Any, dbname: str, dba: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A second autocommit connection as alice (sync_dba): another DBA at the same time."""
    with psycopg.connect(server.url(dbname, user="alice"), autocommit=True) as conn:
        yield conn


def rules_in_force(conn: psycopg.Connection) -> dict[str, Any]:
    """The rules of the latest sync.rule_version: what deliveries and findings are judged by."""
    row = conn.execute(
        "select rules from sync.rule_version order by version desc limit 1"
    ).fetchone()
    assert row is not None
    return row[0]


def test_two_dbas_tuning_two_rules_at_once_put_both_changes_in_force(
    db: psycopg.Connection, dba: psycopg.Connection, other_dba: psycopg.Connection
) -> None:
    """Each tuning recorded the rules as its own snapshot saw them: one change was lost.

    The version the second commit recorded lacked the first one's change, so
    sync.rule said 100 while the rules in force kept 150, until the next tuning.
    """
    dba.execute("begin")
    dba.execute("update sync.rule set parameter = 100 where code = 'name.too_long'")
    pid = other_dba.info.backend_pid
    done = threading.Event()

    def tune_other() -> None:
        other_dba.execute("update sync.rule set parameter = 1000 where code = 'cost.too_large'")
        done.set()

    thread = threading.Thread(target=tune_other)
    thread.start()
    try:
        # The other tuning either waits for the first (fixed) or ends first.
        while not done.wait(0.01):
            if db.execute(
                "select wait_event_type = 'Lock' from pg_stat_activity where pid = %s", [pid]
            ).fetchone() == (True,):
                break
        dba.execute("commit")
    finally:
        thread.join()
    rules = rules_in_force(db)
    assert (rules["name.too_long"]["parameter"], rules["cost.too_large"]["parameter"]) == (
        100,
        1000,
    )
    assert receive(db, {"fragrance_id": 7, "name": "n" * 120})["status"] == "rejected"


def test_a_tuning_in_a_snapshot_older_than_another_tuning_is_refused_not_recorded_without_it(
    db: psycopg.Connection, dba: psycopg.Connection, other_dba: psycopg.Connection
) -> None:
    """A REPEATABLE READ transaction could not see a change committed after its snapshot."""
    other_dba.execute("begin isolation level repeatable read")
    other_dba.execute("select count(*) from sync.rule")  # its snapshot
    dba.execute("update sync.rule set parameter = 100 where code = 'name.too_long'")
    with raises_sqlstate("40001"):
        other_dba.execute("update sync.rule set parameter = 1000 where code = 'cost.too_large'")
    other_dba.execute("rollback")
    assert rules_in_force(db)["name.too_long"]["parameter"] == 100


@pytest.mark.parametrize(
    ("severity", "hinted"), [("fatal", "off"), ("Warning", "warning"), (None, "off")]
)
def test_a_severity_that_does_not_exist_is_refused_naming_those_that_do(
    dba: psycopg.Connection, severity: str | None, hinted: str
) -> None:
    """It met the column's bare check (23514) or not-null (23502) constraint, with no hint."""
    with pytest.raises(psycopg.Error) as caught:
        dba.execute("update sync.rule set severity = %s where code = 'cost.fractional'", [severity])
    assert caught.value.sqlstate == "FS087"
    assert "takes the severity error, warning or off" in str(caught.value)
    assert caught.value.diag.message_hint == (
        "off turns a rule off: UPDATE sync.rule SET severity = "
        f"'{hinted}' WHERE code = 'cost.fractional';"
    )


def notices_of(conn: psycopg.Connection, statement: str) -> list[tuple[str, str | None]]:
    """The NOTICEs (message, hint) a statement raised."""
    notices: list[tuple[str, str | None]] = []
    conn.add_notice_handler(lambda n: notices.append((n.message_primary or "", n.message_hint)))
    conn.execute(statement)
    return notices


def test_a_dba_who_tunes_a_catalog_rule_is_told_its_findings_follow_at_the_next_check(
    dba: psycopg.Connection,
) -> None:
    """Nothing said so: health kept warning of an error rule the DBA had just turned off."""
    notices = notices_of(dba, "update sync.rule set severity = 'off' where code = 'cost.negative'")
    assert notices == [
        (
            "the findings at rest (sync.open_finding, sync.health) follow the change of"
            " cost.negative at the next catalog check",
            "Judge the catalog by the new rules now: SELECT * FROM sync.run_job('check_catalog');"
            " deliveries a loosened rule refused: SELECT * FROM sync.retry_all();",
        )
    ]


def test_tuning_a_rule_of_deltas_only_says_nothing_of_findings(dba: psycopg.Connection) -> None:
    assert (
        notices_of(dba, "update sync.rule set severity = 'off' where code = 'field.unknown'") == []
    )


def test_a_rule_turned_off_keeps_its_findings_until_the_catalog_check_and_reopens_after_it(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """When the findings at rest follow a change of the rules: at the next catalog check."""
    db.execute("update public.fragrances set cost = -1 where fragrance_id = 7")

    def open_cost_negative() -> list[tuple[int, str]]:
        return db.execute(
            "select fragrance_id, severity from sync.open_finding where rule = 'cost.negative'"
        ).fetchall()

    dba.execute("update sync.rule set severity = 'off' where code = 'cost.negative'")
    assert open_cost_negative() == [(7, "error")]
    dba.execute("select sync.run_job('check_catalog')")
    assert open_cost_negative() == []
    assert db.execute(
        "select closed_by from sync.finding where rule = 'cost.negative' and fragrance_id = 7"
    ).fetchone() == ("sync.check_catalog by alice",)
    dba.execute("update sync.rule set severity = 'warning' where code = 'cost.negative'")
    assert open_cost_negative() == []
    dba.execute("select sync.run_job('check_catalog')")
    assert open_cost_negative() == [(7, "warning")]


def test_a_limit_written_with_a_point_is_stated_as_the_whole_number_it_is(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """100.0 passed as a whole number, and every sentence then said "the limit is 100.0"."""
    dba.execute("update sync.rule set parameter = 100.0 where code = 'name.too_long'")
    receipt = receive(db, {"fragrance_id": 7, "name": "n" * 120})
    assert receipt["reasons"][0]["message"] == "name has 120 characters; the limit is 100"
    assert dba.execute(
        "select parameter::text from sync.rule where code = 'name.too_long'"
    ).fetchone() == ("100",)


def test_a_tuning_left_open_holds_back_no_delivery_nor_its_findings(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """The turn two tunings take must not be a lock the merge or its findings wait for."""
    dba.execute("begin")
    dba.execute("update sync.rule set parameter = 100 where code = 'name.too_long'")
    db.execute("set statement_timeout = '20s'")  # a wait would fail here, not hang the run
    applied = receive(db, {"fragrance_id": 7, "name": "Rose ", "cost": 12.5})
    findings = db.execute(
        "select rule from sync.open_finding where fragrance_id = 7 order by rule"
    ).fetchall()
    dba.execute("rollback")
    assert applied["status"] == "applied"
    assert findings == [("cost.fractional",), ("name.untrimmed",)]


@pytest.mark.parametrize(
    ("code", "given", "hinted", "default"),
    [
        ("name.too_long", "151", "150", "150"),
        ("description.too_long", "0", "1", "1024"),
        ("cost.too_precise", "2.5", "3", "2"),
        ("cost.too_large", "null", "9007199254740991", "9007199254740991"),
    ],
)
def test_a_limit_out_of_bounds_is_refused_with_the_update_that_sets_the_nearest_it_takes(
    dba: psycopg.Connection, code: str, given: str, hinted: str, default: str
) -> None:
    """FS073's hint said only "Its default is 150.": no statement to run."""
    with pytest.raises(psycopg.Error) as caught:
        dba.execute(f"update sync.rule set parameter = {given} where code = '{code}'")
    assert caught.value.sqlstate == "FS073"
    statement = f"UPDATE sync.rule SET parameter = {hinted} WHERE code = '{code}';"
    assert caught.value.diag.message_hint == (
        f"The nearest it takes: {statement} its default is {default}."
    )
    dba.execute(statement)
    assert rules_in_force(dba)[code]["parameter"] == int(hinted)


def warnings_of(conn: psycopg.Connection, statement: str) -> list[tuple[str, str, str | None]]:
    """The WARNINGs (SQLSTATE, message, hint) a statement raised."""
    warnings: list[tuple[str, str, str | None]] = []
    conn.add_notice_handler(
        lambda n: (
            warnings.append((n.sqlstate or "", n.message_primary or "", n.message_hint))
            if n.severity_nonlocalized == "WARNING"
            else None
        )
    )
    conn.execute(statement)
    return warnings


def test_an_update_of_a_misspelt_code_warns_naming_the_nearest_codes(
    dba: psycopg.Connection,
) -> None:
    """In psql it said only "UPDATE 0": the DBA believed name.lookalike tuned."""
    before = rules_in_force(dba)
    warnings = warnings_of(
        dba, "update sync.rule set severity = 'warning' where code = 'name.lookalke'"
    )
    assert warnings == [
        (
            "FS088",
            "UPDATE sync.rule changed no rule: no rule has the code 'name.lookalke'",
            "The nearest codes to 'name.lookalke': name.lookalike, name.blank,"
            " name.too_long. Every rule: SELECT code, severity, parameter, tunable"
            " FROM sync.rule ORDER BY code;",
        )
    ]
    assert rules_in_force(dba) == before


def test_an_update_that_matches_a_rule_and_changes_nothing_warns_of_nothing(
    dba: psycopg.Connection,
) -> None:
    statement = "update sync.rule set severity = severity where code = 'name.lookalike'"
    assert warnings_of(dba, statement) == []


@pytest.mark.parametrize(
    "statement", ["truncate sync.rule cascade", "truncate sync.rule, sync.finding"]
)
def test_an_owners_truncate_of_the_rules_is_refused(db: psycopg.Connection, statement: str) -> None:
    """It emptied the rules and the findings with no new sync.rule_version.

    A bare TRUNCATE sync.rule meets PostgreSQL's refusal (0A000: sync.finding
    refers to it); these two went through.
    """
    rules = db.execute("select count(*) from sync.rule").fetchone()
    with pytest.raises(psycopg.Error) as caught:
        db.execute(statement)
    assert caught.value.sqlstate == "FS089"
    assert caught.value.diag.message_hint is not None
    assert (
        "UPDATE sync.rule SET severity = 'off' WHERE 'severity' = ANY (tunable);"
        in caught.value.diag.message_hint
    )
    assert db.execute("select count(*) from sync.rule").fetchone() == rules
