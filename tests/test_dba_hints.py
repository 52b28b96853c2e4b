"""The hints of our errors, run as a DBA would at 3 a.m.: copied from psql and run as they stand.

A hint that names another row or another age than the call that failed does
something else than the DBA asked for; each test here runs the hint as a
``sync_dba`` login and checks it does what the failed call meant.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import psycopg
import pytest
from conftest import ROOT, Server
from helpers import inbox_row, receive


def hint_of(conn: psycopg.Connection, call: str, sqlstate: str) -> str:
    """The hint of the error `call` raises, which must have `sqlstate`."""
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(call)
    assert caught.value.sqlstate == sqlstate, caught.value
    hint = caught.value.diag.message_hint
    assert hint, caught.value
    return hint


def runnable(hint: str) -> str:
    """The one SQL statement a hint spells out (from SELECT to its semicolon)."""
    [statement] = re.findall(r"(SELECT [^;]+);", hint)
    return statement


def test_the_hint_for_a_discard_without_a_reason_names_the_delivery_asked_for(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """It said sync.discard(42, ...) whatever was asked: run, it wrote off another delivery."""
    for _ in range(41):
        receive(db, {"fragrance_id": 7, "cost": -1})
    forty_second = receive(db, {"fragrance_id": 7, "cost": -2})["inbox_id"]
    asked = receive(db, {"fragrance_id": 7, "cost": -3})["inbox_id"]
    assert forty_second == 42 and asked == 43

    hint = hint_of(dba, f"select * from sync.discard({asked}, ' ')", "FS003")
    dba.execute(runnable(hint))

    assert inbox_row(db, asked)["status"] == "discarded"
    assert inbox_row(db, forty_second)["status"] == "rejected"


def test_the_hint_for_a_discard_whose_reason_is_too_long_runs_and_discards_the_row_asked(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """A reason of 2 MB was kept for a year beside the body; the hint's sentence fits."""
    asked = receive(db, {"fragrance_id": 7, "cost": -3})["inbox_id"]

    hint = hint_of(dba, f"select * from sync.discard({asked}, repeat('x', 1001))", "FS096")
    assert inbox_row(db, asked)["status"] == "rejected"
    dba.execute(runnable(hint))

    assert inbox_row(db, asked)["status"] == "discarded"


# A setting out of its bounds: (the UPDATE, the check it breaks, what the message shows).
SETTINGS_OUT_OF_BOUNDS = {
    "purge under a day": (
        "purge_after = '12 hours'",
        "settings_purge_after_check",
        "purge_after = 12:00:00",
    ),
    "purge beyond the calendar": (
        "discarded_purge_after = '10000 years'",
        "settings_discarded_purge_after_within_calendar",
        "discarded_purge_after = 10000 years",
    ),
    "share above one": (
        "reject_share_warn = 2",
        "settings_reject_share_is_a_share",
        "reject_share_warn = 2",
    ),
    "critical before warning": (
        "silence_critical_after = '1 minute'",
        "settings_silence_thresholds_ordered",
        "silence_critical_after = 00:01:00",
    ),
    "no cadence": (
        "expected_interval = '0'",
        "settings_cadence_positive",
        "expected_interval = 00:00:00",
    ),
    "snapshot age negative": (
        "snapshot_warn_after = '-1 day'",
        "settings_snapshot_warn_positive",
        "snapshot_warn_after = -1 days",
    ),
}


@pytest.mark.parametrize(
    ("assignment", "constraint", "shown"),
    SETTINGS_OUT_OF_BOUNDS.values(),
    ids=SETTINGS_OUT_OF_BOUNDS.keys(),
)
def test_a_setting_out_of_its_bounds_says_which_setting_takes_what(
    dba: psycopg.Connection, assignment: str, constraint: str, shown: str
) -> None:
    """PostgreSQL's own 23514 named the constraint and printed the whole row, no more."""
    says = dba.execute(
        "select obj_description(oid, 'pg_constraint') from pg_constraint"
        " where conrelid = 'sync.settings'::regclass and conname = %s",
        [constraint],
    ).fetchone()[0]
    before = dba.execute("select to_jsonb(s) from sync.settings as s").fetchone()[0]

    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        dba.execute(f"update sync.settings set {assignment}")

    diag = caught.value.diag
    assert (diag.constraint_name, diag.schema_name, diag.table_name) == (
        constraint,
        "sync",
        "settings",
    )
    assert shown in diag.message_primary and says in diag.message_primary
    assert constraint in diag.message_hint
    assert dba.execute("select to_jsonb(s) from sync.settings as s").fetchone()[0] == before


def test_a_setting_within_its_bounds_is_taken(dba: psycopg.Connection) -> None:
    dba.execute("update sync.settings set purge_after = '1 day', reject_share_warn = 1")
    assert dba.execute("select purge_after, reject_share_warn from sync.settings").fetchone() == (
        timedelta(days=1),
        1,
    )


def test_the_hint_for_a_purge_under_a_day_keeps_the_age_asked_for(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """It said '1 hour' whatever was asked: run after asking for 12 hours, it purged 11 more."""
    db.execute("update sync.settings set apply_on_receipt = false")
    kept, purged = (
        db.execute(
            "insert into sync.inbox (received_at, body, status, processed_at)"
            " values (now() - %s::interval, '{\"fragrance_id\": 7}', 'applied',"
            " now() - %s::interval) returning id",
            [age, age],
        ).fetchone()[0]
        for age in ("2 hours", "13 hours")
    )

    hint = hint_of(dba, "select sync.purge_applied('12 hours')", "FS055")
    assert dba.execute(runnable(hint)).fetchone() == (1,)

    assert db.execute("select id from sync.inbox order by id").fetchall() == [(kept,)]
    assert purged != kept


def held_fragrance_hint(dba: psycopg.Connection) -> str:
    """The hint of the NOTICE `sync.apply_pending` gives while fragrance 7's delivery is held.

    Call with a delivery for fragrance 7 pending (``pend_for_fragrance_7``) and its
    row held by another session: the merge leaves it pending and counts it nowhere.
    """
    hints: list[str | None] = []
    dba.add_notice_handler(lambda notice: hints.append(notice.message_hint))
    assert dba.execute("select pending from sync.apply_pending(1000)").fetchone() == (0,)
    [hint] = hints
    assert hint is not None
    return hint


def pend_for_fragrance_7(db: psycopg.Connection) -> None:
    """A delivery for fragrance 7 left pending (no merge on receipt)."""
    db.execute("update sync.settings set apply_on_receipt = false")
    receive(db, {"fragrance_id": 7, "cost": 5})


def test_the_hint_for_a_held_fragrance_shows_a_dba_who_holds_it(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """It read pg_stat_activity by state, which PostgreSQL hides from a DBA for others' sessions."""
    pend_for_fragrance_7(db)
    with psycopg.connect(server.url(dbname)) as holder:
        holder.execute("update public.fragrances set cost = cost where fragrance_id = 7")
        holder_pid = holder.info.backend_pid
        shown = dba.execute(runnable(held_fragrance_hint(dba))).fetchall()
        holder.rollback()
    assert holder_pid in [row[0] for row in shown]


def test_the_hint_for_a_held_fragrance_leaves_out_a_session_waiting_for_it(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """A waiter (the hook's merger, in its 2 s) holds RowShareLock too: listed, it was ended."""
    pend_for_fragrance_7(db)
    with (
        psycopg.connect(server.url(dbname)) as holder,
        psycopg.connect(server.url(dbname)) as waiter,
    ):
        holder.execute("update public.fragrances set cost = cost where fragrance_id = 7")
        holder_pid, waiter_pid = holder.info.backend_pid, waiter.info.backend_pid
        waiter.execute("set lock_timeout = '60s'")
        waiting = threading.Thread(
            target=lambda: waiter.execute(
                "select from public.fragrances where fragrance_id = 7 for update"
            )
        )
        waiting.start()
        while not db.execute(
            "select exists (select from pg_locks where pid = %s and not granted)", [waiter_pid]
        ).fetchone()[0]:
            pass
        shown = [row[0] for row in dba.execute(runnable(held_fragrance_hint(dba))).fetchall()]
        holder.rollback()
        waiting.join()
        waiter.rollback()
    assert holder_pid in shown
    assert waiter_pid not in shown


def test_the_hint_for_retrying_a_pending_delivery_merges_it(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """It said to list the quarantine, where a pending delivery is not."""
    db.execute("update sync.settings set apply_on_receipt = false")
    pending = receive(db, {"fragrance_id": 7, "cost": 5})["inbox_id"]

    hint = hint_of(dba, f"select * from sync.retry({pending})", "FS002")
    dba.execute(runnable(hint))

    assert inbox_row(db, pending)["status"] == "applied"


@pytest.mark.parametrize("status", ["applied", "ignored"])
def test_the_hint_for_retrying_a_delivery_that_is_not_rejected_is_about_it(
    db: psycopg.Connection, dba: psycopg.Connection, status: str
) -> None:
    delivery = {"applied": {"fragrance_id": 7, "cost": 5}, "ignored": {"fragrance_id": 7}}
    inbox_id = receive(db, delivery[status])["inbox_id"]

    hint = hint_of(dba, f"select * from sync.retry({inbox_id})", "FS002")

    assert str(inbox_id) in runnable(hint)
    assert dba.execute(runnable(hint)).fetchall()


def test_the_hint_for_discarding_a_discarded_delivery_shows_the_discard_and_its_undoing(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    inbox_id = receive(db, {"fragrance_id": 7, "cost": -1})["inbox_id"]
    dba.execute("select sync.discard(%s, 'vendor test')", [inbox_id])

    hint = hint_of(dba, f"select * from sync.discard({inbox_id}, 'again')", "FS002")

    assert dba.execute(runnable(hint)).fetchall() == [("alice", "vendor test")]
    assert f"sync.retry({inbox_id})" in hint


@pytest.mark.parametrize("status", ["ignored", "rejected", "discarded"])
def test_the_hint_for_reverting_a_delivery_that_is_not_applied_is_about_it(
    db: psycopg.Connection, dba: psycopg.Connection, status: str
) -> None:
    """For an ignored delivery it said "its reasons say why", and named no way to read them."""
    delivery = {"ignored": {"fragrance_id": 7}}
    inbox_id = receive(db, delivery.get(status, {"fragrance_id": 7, "cost": -1}))["inbox_id"]
    if status == "discarded":
        dba.execute("select sync.discard(%s, 'vendor test')", [inbox_id])

    hint = hint_of(dba, f"select * from sync.revert({inbox_id})", "FS002")

    assert str(inbox_id) in runnable(hint)
    assert dba.execute(runnable(hint)).fetchall()


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("name.too_long", "only the parameter of rule name.too_long can change"),
        ("name.blank", "only the severity of rule name.blank can change"),
        ("cost.too_large", "only the severity and the parameter of rule cost.too_large can change"),
        ("body.empty", "rule body.empty cannot be changed"),
    ],
)
def test_a_rule_change_it_cannot_take_says_what_it_can_and_the_hint_runs(
    db: psycopg.Connection, code: str, says: str
) -> None:
    """FS070 hinted a severity for every rule: for name.too_long it raised FS071.

    The owner's error: a DBA's column privileges allow only severity and parameter.
    """
    with pytest.raises(psycopg.Error) as caught:
        db.execute("update sync.rule set description = 'mine' where code = %s", [code])
    assert caught.value.sqlstate == "FS070"
    assert caught.value.diag.message_primary == says
    hint = caught.value.diag.message_hint
    assert hint
    db.execute(re.findall(r"((?:UPDATE|SELECT) [^;]+);", hint)[0])


def test_the_hint_for_a_repair_without_a_snapshot_names_only_what_a_dba_may_call(
    dba: psycopg.Connection,
) -> None:
    """It named sync.load_snapshot_from_server(), which is granted to nobody."""
    hint = hint_of(dba, "select * from sync.repair()", "FS050")
    named = set(re.findall(r"sync\.(\w+)\(", hint))
    assert named
    refused = [
        name
        for name in sorted(named)
        if not dba.execute(
            "select bool_and(has_function_privilege(p.oid, 'execute')) from pg_proc as p"
            " where p.pronamespace = 'sync'::regnamespace and p.proname = %s",
            [name],
        ).fetchone()[0]
    ]
    assert refused == []


@pytest.mark.parametrize(
    "moment",
    ["infinity", "-infinity", "4714-11-24 00:00:00+00 BC", "0026-12-01", "1969-12-31 23:59:59+00"],
)
def test_health_at_a_moment_no_delivery_can_have_is_our_error_and_its_hint_runs(
    dba: psycopg.Connection, moment: str
) -> None:
    """No delivery is dated there, so the moment is a mistake and the error says so.

    'infinity' failed with 'cannot subtract infinite timestamps', the calendar's first day with
    'timestamp out of range', and a year mistyped ('0026') was judged 'never received'.
    """
    hint = hint_of(dba, f"select * from sync.health_at('{moment}')", "FS005")
    assert dba.execute(runnable(hint)).fetchone()


def test_two_dbas_retrying_one_delivery_at_once_the_second_hint_undoes_nothing(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """The second retry waits for the first, then meets an applied row: its hint must be a look."""
    rejected = receive(db, {"fragrance_id": 6000, "name": "Later"})["inbox_id"]
    db.execute("insert into public.fragrances values (6000, 'Placeholder', 'Made up', 3, false)")
    with psycopg.connect(server.url(dbname, user="alice")) as first:
        assert first.execute("select status from sync.retry(%s)", [rejected]).fetchone() == (
            "applied",
        )
        second = threading.Thread(
            target=lambda: outcome.append(
                hint_of(dba, f"select * from sync.retry({rejected})", "FS002")
            )
        )
        outcome: list[str] = []
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waiting for the first retry's row lock
        first.commit()
    second.join(10)
    [hint] = outcome

    dba.execute(runnable(hint))

    row = db.execute("select name from public.fragrances where fragrance_id = 6000").fetchone()
    assert row == ("Later",)
    assert db.execute("select count(*) from sync.inbox").fetchone() == (1,)


def raised_codes() -> set[str]:
    """The FS codes db/ raises: in a RAISE, or given to a trigger function that raises it."""
    codes: set[str] = set()
    for path in sorted((ROOT / "db").glob("*.sql")):
        text = path.read_text()
        codes.update(re.findall(r"errcode = '(FS\d{3})'", text))
        for arguments in re.findall(r"execute function [\w.]+\((.*?)\);$", text, re.S | re.M):
            codes.update(re.findall(r"'(FS\d{3})'", arguments))
    return codes


def test_the_readme_lists_every_sqlstate_the_database_code_raises() -> None:
    """A DBA looks an FS code up in the README: each one raised in db/ is there."""
    raised = raised_codes()
    [paragraph] = re.findall(
        r"Wrong calls raise our own SQLSTATEs with a hint:(.+?)\n\n",
        (ROOT / "README.md").read_text(),
        re.S,
    )
    listed = set(re.findall(r"`(FS\d{3})`", paragraph))
    for low, high in re.findall(r"`FS(\d{3})` to\s+`FS(\d{3})`", paragraph):
        listed |= {f"FS{n:03d}" for n in range(int(low), int(high) + 1)}
    assert raised and raised <= listed, sorted(raised - listed)


def test_every_sqlstate_the_docs_name_is_raised_by_the_database_code() -> None:
    """An FS code a DBA reads in a doc, and looks for in a log, is one the code raises."""
    raised = raised_codes()
    docs = [ROOT / "README.md", ROOT / "DEVELOPERS.md", ROOT / "db" / "README.md"]
    docs += sorted((ROOT / "docs").glob("*.md"))
    named = {
        f"{path.relative_to(ROOT)}: {code}"
        for path in docs
        for code in re.findall(r"\bFS\d{3}\b", path.read_text())
        if code not in raised
    }
    assert raised and named == set()


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("select * from sync.apply_pending(0)", "sync.apply_pending(1000)"),
        (
            "select * from sync.retry_all('cost.negative', -1)",
            "sync.retry_all('cost.negative', 1000)",
        ),
        ("select * from sync.retry_all(p_limit => 0)", "sync.retry_all(null, 1000)"),
        (
            "select sync.purge_applied('30 days', p_limit => 0)",
            "sync.purge_applied('30 days', p_limit => 1000)",
        ),
        ("call sync.purge_inbox(0)", "sync.purge_inbox(10000)"),
    ],
)
def test_the_hint_for_a_bad_limit_names_the_call_with_a_good_one(
    dba: psycopg.Connection, call: str, named: str
) -> None:
    """It said "For example 1000." and named no command: which call, and where 1000 goes."""
    hint = hint_of(dba, call, "FS004")
    [statement] = re.findall(r"((?:SELECT|CALL) [^;]+);", hint)

    assert named in statement
    dba.execute(statement)


def test_a_misspelt_code_with_a_bad_limit_is_refused_for_the_code_first(
    dba: psycopg.Connection,
) -> None:
    """The limit's hint repeats the code: run, it failed in turn, on the misspelt code."""
    hint = hint_of(dba, "select * from sync.retry_all('cost.negativ', -1)", "FS006")
    for statement in re.findall(r"(SELECT [^;]+);", hint):
        dba.execute(statement)


def test_the_hint_for_a_bad_status_report_is_the_call_the_page_makes(
    db: psycopg.Connection,
) -> None:
    hint = hint_of(db, "select sync.status_report(0, 0)", "FS004")
    db.execute(runnable(hint))


@pytest.mark.parametrize("reason", ["null", "' '", "'vendor test'"])
def test_a_discard_of_no_row_says_the_id_is_missing_and_names_no_row(
    db: psycopg.Connection, dba: psycopg.Connection, reason: str
) -> None:
    """sync.discard(null, null) hinted sync.discard(42, ...): a row nobody asked for.

    The hint now says how to find the id, and spells no row number to copy.
    """
    for _ in range(42):
        receive(db, {"fragrance_id": 7, "cost": -1})
    with pytest.raises(psycopg.Error) as caught:
        dba.execute(f"select * from sync.discard(null, {reason})")
    assert caught.value.sqlstate == "FS005", caught.value
    assert "is null" in (caught.value.diag.message_primary or "")
    hint = caught.value.diag.message_hint or ""
    assert not re.search(r"\d", hint), hint
    assert "sync.quarantine" in hint and "sync.discard with that id" in hint
    dba.execute(runnable(hint))
    assert db.execute("select count(*) from sync.inbox where status = 'discarded'").fetchone() == (
        0,
    )


def test_health_at_the_first_moment_a_delivery_can_have_is_judged(dba: psycopg.Connection) -> None:
    """1970 is where FS020 lets receipts start, so health from then on is a question, not a typo."""
    verdict = dba.execute("select verdict from sync.health_at('1970-01-01 00:00:00+00')").fetchone()
    assert verdict is not None and verdict[0] in ("ok", "warn", "critical")


@pytest.mark.parametrize(
    ("call", "sqlstate"),
    [
        ("select * from sync.retry_all(%s, 10)", "FS006"),
        ("select * from sync.run_job(%s)", "FS080"),
    ],
)
def test_a_verb_that_finds_no_such_name_echoes_at_most_100_characters_of_it(
    dba: psycopg.Connection, call: str, sqlstate: str
) -> None:
    """A 100 KB argument came back whole in the error and in the server's log."""
    with pytest.raises(psycopg.Error) as caught:
        dba.execute(call, ["x" * 102_400])
    assert caught.value.sqlstate == sqlstate, caught.value
    message = caught.value.diag.message_primary or ""
    assert f"'{'x' * 100}' (the first 100 of 102400 characters)" in message
    assert len(message) < 300, len(message)


@pytest.mark.parametrize("call", ["sync.retry({id})", "sync.discard({id}, 'again')"])
def test_a_delivery_the_purge_deleted_is_said_to_be_purged_not_unknown(
    db: psycopg.Connection, dba: psycopg.Connection, call: str
) -> None:
    """A discard purged a year on said "does not exist" and to look in the quarantine.

    The DBA checked the id they had copied, again and again: the change is gone for good.
    """
    inbox_id = receive(db, {"fragrance_id": 7, "cost": -1})["inbox_id"]
    receive(db, {"fragrance_id": 7, "cost": 1})
    dba.execute("select sync.discard(%s, 'test payload')", [inbox_id])
    db.execute(
        "update sync.inbox set discarded_at = now() - interval '400 days' where id = %s",
        [inbox_id],
    )
    db.execute("call sync.purge_inbox()")

    with pytest.raises(psycopg.Error) as caught:
        dba.execute(f"select * from {call.format(id=inbox_id)}")
    assert caught.value.sqlstate == "FS001"
    assert "purged" in caught.value.diag.message_primary
    assert "discarded_purge_after" in (caught.value.diag.message_hint or "")
    assert dba.execute(runnable(caught.value.diag.message_hint or "")).fetchall()
