"""What the owner's psql could do to the rules, findings and audit tables by mistake.

Hostile review as a DBA logged in as the owner (or a superuser): a
TRUNCATE fires no row trigger, so it emptied a table of history, with
CASCADE every table referring to it, without a trace; a DELETE of a rule
turned it off where the code counts on it. Each is refused with the verb
to use instead in its hint; the documented ways still work.
"""

from __future__ import annotations

import psycopg
import pytest
from conftest import Server, run_yoyo
from helpers import receive, set_apply_on_receipt


@pytest.mark.parametrize(
    ("statement", "table", "verb"),
    [
        ("truncate sync.rule_version cascade", "sync.finding", "UPDATE sync.rule SET severity"),
        ("truncate sync.finding", "sync.finding", "CALL sync.purge_inbox();"),
        ("truncate sync.fragrance_history", "sync.fragrance_history", "no verb purges it"),
        ("truncate sync.inbox", "sync.inbox", "SELECT sync.purge_applied('90 days');"),
        ("truncate sync.field_version", "sync.field_version", "no verb purges it"),
        ("truncate sync.job cascade", "sync.job_run", "CALL sync.purge_inbox();"),
    ],
    ids=["rule_version", "finding", "history", "inbox", "field_clock", "job_runs"],
)
def test_an_owners_truncate_of_a_table_of_history_is_refused_naming_the_verb(
    db: psycopg.Connection, statement: str, table: str, verb: str
) -> None:
    """TRUNCATE sync.rule_version CASCADE emptied every finding, with no trace."""
    db.execute("select * from sync.check_catalog()")
    db.execute("select sync.run_job('check_drift')")
    before = db.execute(f"select count(*) from {table}").fetchone()
    with pytest.raises(psycopg.Error) as caught:
        db.execute(statement)
    assert caught.value.sqlstate == "FS092", caught.value
    assert verb in (caught.value.diag.message_hint or "")
    assert db.execute(f"select count(*) from {table}").fetchone() == before


def test_an_owners_delete_of_a_rule_is_refused(db: psycopg.Connection) -> None:
    """A DELETE was versioned but turned the rule off where the code counts on it."""
    rules = db.execute("select count(*) from sync.rule").fetchone()
    versions = db.execute("select count(*) from sync.rule_version").fetchone()
    with pytest.raises(psycopg.Error) as caught:
        db.execute("delete from sync.rule where code = 'name.lookalike'")
    assert caught.value.sqlstate == "FS093", caught.value
    assert "UPDATE sync.rule SET severity = 'off' WHERE code = " in (
        caught.value.diag.message_hint or ""
    )
    assert db.execute("select count(*) from sync.rule").fetchone() == rules
    assert db.execute("select count(*) from sync.rule_version").fetchone() == versions


@pytest.mark.parametrize(
    "statement",
    [
        "update sync.rule_version set rules = rules - 'name.lookalike'"
        " where version = (select max(version) from sync.rule_version)",
        "delete from sync.rule_version"
        " where version = (select max(version) from sync.rule_version)",
    ],
    ids=["update", "delete"],
)
def test_an_owners_change_of_the_rules_in_force_behind_sync_rule_is_refused(
    db: psycopg.Connection, statement: str
) -> None:
    """The latest sync.rule_version is what the merge judges by, not sync.rule.

    Editing it, or deleting it (no finding refers to a version before the
    catalog is checked by it), silently put other rules in force while
    sync.rule still showed the tuned ones.
    """
    db.execute("update sync.rule set severity = 'error' where code = 'cost.fractional'")
    before = db.execute(
        "select version, rules from sync.rule_version order by version desc limit 1"
    ).fetchone()
    with pytest.raises(psycopg.Error) as caught:
        db.execute(statement)
    assert caught.value.sqlstate == "FS092", caught.value
    assert "UPDATE sync.rule SET" in (caught.value.diag.message_hint or "")
    assert (
        db.execute(
            "select version, rules from sync.rule_version order by version desc limit 1"
        ).fetchone()
        == before
    )


def test_a_rule_is_still_turned_off_by_the_documented_update(db: psycopg.Connection) -> None:
    versions = db.execute("select count(*) from sync.rule_version").fetchone()
    assert versions is not None
    db.execute("update sync.rule set severity = 'off' where code = 'name.lookalike'")
    assert db.execute(
        "select rules -> 'name.lookalike' ->> 'severity' from sync.rule_version"
        " order by version desc limit 1"
    ).fetchone() == ("off",)
    assert db.execute("select count(*) from sync.rule_version").fetchone() == (versions[0] + 1,)


def test_a_rollback_still_removes_the_rules_its_migration_added(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """The landed rollbacks delete their rules' rows: yoyo holds its lock while they run."""
    run_yoyo(server, dbname, "rollback", "--revision", "0060-html-texts-and-implausible-costs")
    assert db.execute(
        "select count(*) from sync.rule where code = 'cost.implausible'"
    ).fetchone() == (0,)
    run_yoyo(server, dbname, "apply")
    assert db.execute(
        "select count(*) from sync.rule where code = 'cost.implausible'"
    ).fetchone() == (1,)


@pytest.mark.parametrize(
    ("statement", "table", "verb"),
    [
        (
            "update sync.fragrance_history set new_values = '{}'"
            " where id = (select max(id) from sync.fragrance_history)",
            "sync.fragrance_history",
            "sync.revert(",
        ),
        (
            "delete from sync.fragrance_history"
            " where id = (select max(id) from sync.fragrance_history)",
            "sync.fragrance_history",
            "sync.revert(",
        ),
        (
            "update sync.finding set closed_at = now()"
            " where id = (select max(id) from sync.finding)",
            "sync.finding",
            "sync.check_catalog()",
        ),
        (
            "delete from sync.finding where id = (select max(id) from sync.finding)",
            "sync.finding",
            "CALL sync.purge_inbox();",
        ),
        (
            "insert into sync.rule_version (rules)"
            " select rules - 'name.lookalike' from sync.rule_version"
            " order by version desc limit 1",
            "sync.rule_version",
            "UPDATE sync.rule SET",
        ),
    ],
    ids=["history_update", "history_delete", "finding_update", "finding_delete", "rule_version"],
)
def test_an_owners_change_of_a_row_of_history_is_refused_naming_the_verb(
    db: psycopg.Connection, statement: str, table: str, verb: str
) -> None:
    """TRUNCATE was refused, but a DELETE or UPDATE of one row still rewrote the audit.

    And a version inserted by hand put other rules in force while sync.rule
    showed the tuned ones.
    """
    receive(db, {"fragrance_id": 7, "name": "Hand Written"})
    db.execute("select * from sync.check_catalog()")
    before = db.execute(f"select * from {table} order by 1").fetchall()
    assert before
    with pytest.raises(psycopg.Error) as caught:
        db.execute(statement)
    assert caught.value.sqlstate == "FS094", caught.value
    assert verb in (caught.value.diag.message_hint or "")
    assert db.execute(f"select * from {table} order by 1").fetchall() == before


@pytest.mark.parametrize(
    "statement",
    [
        "update sync.finding set message = 'rewritten'"
        " where id = (select max(id) from sync.finding)",
        "update sync.fragrance_history set old_values = '{}'"
        " where id = (select max(id) from sync.fragrance_history)",
    ],
    ids=["finding_update", "history_update"],
)
def test_an_owners_change_after_a_merge_in_its_transaction_is_refused(
    db: psycopg.Connection, statement: str
) -> None:
    """The refusal lets through what runs while the merge marks its transaction.

    sync_private.refuse_hand_change asks sync_private.merging before the
    context (bench/README.md, step 45): the mark lives only while
    sync_private.write runs, so a statement typed after the merge, in the
    same transaction, is refused as any other.
    """
    set_apply_on_receipt(db, True)
    db.execute("update public.fragrances set name = 'Twin' where fragrance_id = 8")
    with db.transaction():
        assert receive(db, {"fragrance_id": 7, "name": "Twin"})["status"] == "applied"
        assert db.execute(
            "select count(*) from sync.finding where fragrance_id = 7 and closed_at is null"
        ).fetchone() != (0,)
        with pytest.raises(psycopg.Error) as caught:
            db.execute(statement)
    assert caught.value.sqlstate == "FS094", caught.value


def test_an_owners_truncate_of_the_settings_is_refused(db: psycopg.Connection) -> None:
    """With no row, every setting read null: the purges, the merge on receipt, the health."""
    with pytest.raises(psycopg.Error) as caught:
        db.execute("truncate sync.settings")
    assert caught.value.sqlstate == "FS095", caught.value
    assert "UPDATE sync.settings SET" in (caught.value.diag.message_hint or "")
    assert db.execute("select count(*) from sync.settings").fetchone() == (1,)


def test_the_sync_still_writes_its_history_and_findings(db: psycopg.Connection) -> None:
    """The merge, a revert, a rule change and the catalog check still write them.

    The purges that delete closed findings are in tests/test_retention.py, a
    rollback's cascade to its rule's findings above.
    """
    versions = db.execute("select count(*) from sync.rule_version").fetchone()
    assert versions is not None
    receive(db, {"fragrance_id": 7, "name": "Hand Written"})
    last = receive(db, {"fragrance_id": 7, "name": "Hand Written Again"})["inbox_id"]
    assert db.execute("select status from sync.revert(%s)", [last]).fetchone() == ("applied",)
    db.execute("update sync.rule set severity = 'off' where code = 'name.lookalike'")
    db.execute("select * from sync.check_catalog()")
    assert db.execute("select count(*) from sync.rule_version").fetchone() == (versions[0] + 1,)
    assert db.execute(
        "select count(*) from sync.fragrance_history where fragrance_id = 7"
    ).fetchone() >= (3,)


def test_a_stale_yoyo_lock_lets_no_rule_be_deleted(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """A deploy killed mid-way left yoyo's lock row: every DELETE of a rule went through."""
    with psycopg.connect(server.url(dbname), autocommit=True) as killed_deploy:
        killed_deploy.execute(
            "insert into public.yoyo_lock (locked, ctime, pid) values (1, now(), 4242)"
        )
        backend = killed_deploy.info.backend_pid
        # Killed, and waited for until its backend is gone (its locks with it).
        assert db.execute("select pg_terminate_backend(%s, 600000)", [backend]).fetchone() == (
            True,
        )
    assert db.execute("select count(*) from public.yoyo_lock").fetchone() == (1,)
    with pytest.raises(psycopg.Error) as caught:
        db.execute("delete from sync.rule where code = 'name.lookalike'")
    assert caught.value.sqlstate == "FS093", caught.value
    with pytest.raises(psycopg.Error) as caught:
        db.execute("insert into sync.rule_version (rules) values ('{}')")
    assert caught.value.sqlstate == "FS094", caught.value


def test_a_stale_yoyo_lock_and_a_strangers_advisory_lock_let_no_rule_be_deleted(
    server: Server, dbname: str, db: psycopg.Connection
) -> None:
    """Any login may take any advisory lock: one that took the deploy's made a stale row a deploy.

    With a killed deploy's lock row left behind, a login of no standing that
    held (1179014211, 1) let every DELETE of a rule through (hostile review).
    """
    db.execute("""
        do $$ begin
            if not exists (select from pg_roles where rolname = 'mallory') then
                create role mallory login;
            end if;
        end $$
    """)
    with psycopg.connect(server.url(dbname), autocommit=True) as killed_deploy:
        killed_deploy.execute(
            "insert into public.yoyo_lock (locked, ctime, pid) values (1, now(), 4242)"
        )
        backend = killed_deploy.info.backend_pid
        assert db.execute("select pg_terminate_backend(%s, 600000)", [backend]).fetchone() == (
            True,
        )
    with psycopg.connect(server.url(dbname, user="mallory"), autocommit=True) as mallory:
        mallory.execute("select pg_advisory_lock(1179014211, 1)")
        with pytest.raises(psycopg.Error) as caught:
            db.execute("delete from sync.rule where code = 'name.lookalike'")
    assert caught.value.sqlstate == "FS093", caught.value
