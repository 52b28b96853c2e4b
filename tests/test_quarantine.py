"""Quarantine: rejected deliveries are listed, retried after a fix, or discarded with a reason."""

from __future__ import annotations

import re

import psycopg
import pytest
from conftest import ROOT, Server
from helpers import fragrance, inbox_row, raises_sqlstate, receive, set_apply_on_receipt


def test_rejected_deliveries_are_listed_with_codes_and_sentences(db: psycopg.Connection) -> None:
    receipt = receive(db, {"fragrance_id": 7, "cost": -3})
    listed = db.execute(
        "select inbox_id, codes, messages, body_preview from sync.quarantine"
    ).fetchall()
    assert listed == [
        (
            receipt["inbox_id"],
            ["cost.negative"],
            "cost is -3; it must be 0 or more",
            '{"fragrance_id": 7, "cost": -3}',
        )
    ]


def test_the_quarantine_shows_non_utf8_bodies_escaped(db: psycopg.Connection) -> None:
    receive(db, b"\xff\xfe bad")
    assert db.execute("select body_preview from sync.quarantine").fetchone() == ("\\377\\376 bad",)


# What a body shows in the quarantine and on the status page. Readable text
# stays readable (it was octal: "\\320\\240..." for a Russian name), what
# a terminal or a reader would act on or not show is written as an escape: a
# raw ESC reached a DBA's terminal through psql -A, a right-to-left override
# reordered the line, and a raw zero-width space was invisible (hostile
# review). Bytes that are not UTF-8 stay octal, as encode(..., 'escape')
# writes them, with its bare control bytes in octal too.
PREVIEWS = [
    (
        "cyrillic",
        '{"fragrance_id": 1, "name": "Роза\\u200b"}'.encode(),
        '{"fragrance_id": 1, "name": "Роза\\u200b"}',
    ),
    (
        "raw zero-width space",
        '{"fragrance_id": 1, "name": "Ro\u200bse"}'.encode(),
        '{"fragrance_id": 1, "name": "Ro\\u200bse"}',
    ),
    (
        "raw escape",
        b'{"fragrance_id": 1, "name": "Rose\x1b[31m"}',
        '{"fragrance_id": 1, "name": "Rose\\u001b[31m"}',
    ),
    (
        "raw right-to-left override",
        '{"fragrance_id": 1, "name": "Ro\u202ese"}'.encode(),
        '{"fragrance_id": 1, "name": "Ro\\u202ese"}',
    ),
    (
        "raw C1 control",
        '{"fragrance_id": 1, "name": "Ro\u0085se"}'.encode(),
        '{"fragrance_id": 1, "name": "Ro\\u0085se"}',
    ),
    (
        "line breaks",
        b'{\n\t"fragrance_id": 1,\r\n "cost": -1}',
        '{\\n\\t"fragrance_id": 1,\\r\\n "cost": -1}',
    ),
    ("not utf-8", b"\xff\xfe bad", "\\377\\376 bad"),
    ("not utf-8 with a control byte", b"\xff\x1b[2J bad", "\\377\\033[2J bad"),
    (
        "long, cut by characters",
        ('{"name": "' + "Я" * 300 + '"}').encode(),
        '{"name": "' + "Я" * 190 + "...",
    ),
]


@pytest.mark.parametrize(("raw", "preview"), [pytest.param(r, p, id=i) for i, r, p in PREVIEWS])
def test_the_quarantine_shows_a_body_readable_with_what_it_hides_escaped(
    db: psycopg.Connection, raw: bytes, preview: str
) -> None:
    receipt = receive(db, raw)
    assert receipt["status"] == "rejected"
    shown = db.execute(
        "select body_preview from sync.quarantine where inbox_id = %s", [receipt["inbox_id"]]
    ).fetchone()
    assert shown == (preview,)
    # The status page's preview is the same text (sync_private.preview).
    report = db.execute("select sync.status_report(1, 1)").fetchone()[0]
    assert [d["body_preview"] for d in report["latest"]] == [preview]


def test_retry_applies_a_change_once_its_data_problem_is_fixed(db: psycopg.Connection) -> None:
    receipt = receive(db, {"fragrance_id": 5555, "name": "Newcomer"})
    assert receipt["status"] == "rejected"
    # The fix: a DBA creates the missing fragrance by hand.
    db.execute("insert into public.fragrances values (5555, 'Placeholder', 'Made up  ', 3, false)")
    retried = db.execute("select status from sync.retry(%s)", [receipt["inbox_id"]]).fetchone()
    assert retried == ("applied",)
    assert fragrance(db, 5555)["name"] == "Newcomer"
    assert inbox_row(db, receipt["inbox_id"])["attempts"] == 2


def test_retry_all_reprocesses_only_the_code_asked_for(db: psycopg.Connection) -> None:
    unknown = receive(db, {"fragrance_id": 6000, "name": "Later"})
    negative = receive(db, {"fragrance_id": 7, "cost": -1})
    result = db.execute(
        "select processed, rejected from sync.retry_all('fragrance_id.unknown')"
    ).fetchone()
    assert result == (1, 1)
    assert inbox_row(db, unknown["inbox_id"])["attempts"] == 2
    assert inbox_row(db, negative["inbox_id"])["attempts"] == 1


def test_retry_all_refuses_a_code_no_rule_and_no_delivery_has(db: psycopg.Connection) -> None:
    receive(db, {"fragrance_id": 7, "name": "x" * 151})
    with raises_sqlstate("FS006", "'name.to_long'"):
        db.execute("select * from sync.retry_all('name.to_long')")


def test_retry_all_takes_a_code_that_is_in_quarantine_only(db: psycopg.Connection) -> None:
    """internal.error is no rule: a failure of ours quarantines a delivery with it."""
    [(inbox_id,)] = db.execute(
        'insert into sync.inbox (body, status, reasons) values (\'{"fragrance_id": 7, "cost": 1}\','
        ' \'rejected\', \'[{"code": "internal.error", "severity": "error",'
        ' "message": "SQLSTATE 42703"}]\') returning id'
    ).fetchall()
    assert db.execute(
        "select count(*) from sync.rule where code = 'internal.error'"
    ).fetchone() == (0,)
    assert db.execute("select applied from sync.retry_all('internal.error')").fetchone() == (1,)
    assert inbox_row(db, inbox_id)["status"] == "applied"


def test_retry_all_without_a_code_takes_every_rejected_delivery(db: psycopg.Connection) -> None:
    receive(db, {"fragrance_id": 6000, "name": "Later"})
    receive(db, {"fragrance_id": 7, "cost": -1})
    receive(db, {"fragrance_id": 7, "cost": 1})
    assert db.execute("select processed from sync.retry_all()").fetchone() == (2,)


def test_discard_writes_off_a_rejected_delivery_and_keeps_it(db: psycopg.Connection) -> None:
    receipt = receive(db, {"fragrance_id": 7, "cost": -1})
    done = db.execute(
        "select status from sync.discard(%s, 'vendor test payload')", [receipt["inbox_id"]]
    ).fetchone()
    assert done == ("discarded",)
    row = inbox_row(db, receipt["inbox_id"])
    assert (row["discard_reason"], row["discarded_by"]) == ("vendor test payload", "postgres")
    assert db.execute("select count(*) from sync.quarantine").fetchone() == (0,)


def test_a_dba_writes_off_every_delivery_of_one_error_code_in_one_statement(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """The README's line for a flood: the quarantine view joined to sync.discard."""
    for n in range(3):
        receive(db, b"not json " + str(n).encode())
    receive(db, {"fragrance_id": 7, "cost": -1})
    readme = (ROOT / "README.md").read_text()
    [statement] = re.findall(r"`(select d\.\* from sync\.quarantine [^`]+);`", readme)
    written_off = dba.execute(statement).fetchall()
    assert [status for _, status, _ in written_off] == ["discarded"] * 3
    assert dba.execute("select codes from sync.quarantine").fetchall() == [(["cost.negative"],)]


def test_a_mistaken_discard_is_undone_by_a_retry_and_its_record_is_kept(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """A discard of the wrong row (the bulk line, a mistyped id) lost the CMS's change for good.

    The CMS never retries, and no verb a DBA may call took a discarded delivery back: sync.retry
    refused it (FS002). Retried, it is judged again, and who discarded it and why stay recorded.
    """
    receipt = receive(db, {"fragrance_id": 7, "cost": -1, "name": "Kept after all"})
    dba.execute("select sync.discard(%s, 'looked like a test')", [receipt["inbox_id"]])
    dba.execute("update sync.rule set severity = 'warning' where code = 'cost.negative'")
    retried = dba.execute("select status from sync.retry(%s)", [receipt["inbox_id"]]).fetchone()
    assert retried == ("applied",)
    assert fragrance(db, 7)["name"] == "Kept after all"
    row = inbox_row(db, receipt["inbox_id"])
    assert (row["discarded_by"], row["discard_reason"]) == ("alice", "looked like a test")


def test_a_discarded_delivery_retried_and_still_refused_is_back_in_the_quarantine(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    receipt = receive(db, {"fragrance_id": 7, "cost": -1})
    dba.execute("select sync.discard(%s, 'wrong row')", [receipt["inbox_id"]])
    retried = dba.execute("select status from sync.retry(%s)", [receipt["inbox_id"]]).fetchone()
    assert retried == ("rejected",)
    assert dba.execute("select inbox_id from sync.quarantine").fetchall() == [
        (receipt["inbox_id"],)
    ]


def test_a_second_discard_keeps_who_discarded_it_first_and_why(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Discarded, retried, refused again and discarded again: the first who and why were gone."""
    receipt = receive(db, {"fragrance_id": 7, "cost": -1})
    dba.execute("select sync.discard(%s, 'looked like a test')", [receipt["inbox_id"]])
    first_at = inbox_row(db, receipt["inbox_id"])["discarded_at"]
    assert dba.execute("select status from sync.retry(%s)", [receipt["inbox_id"]]).fetchone() == (
        "rejected",
    )
    dba.execute("select sync.discard(%s, 'the CMS vendor says so')", [receipt["inbox_id"]])
    row = inbox_row(db, receipt["inbox_id"])
    assert (row["discarded_by"], row["discard_reason"]) == ("alice", "the CMS vendor says so")
    earlier = db.execute(
        "select e ->> 'by', e ->> 'reason', (e ->> 'at')::timestamptz"
        " from sync.inbox, jsonb_array_elements(earlier_discards) as e where id = %s",
        [receipt["inbox_id"]],
    ).fetchall()
    assert earlier == [("alice", "looked like a test", first_at)]


def test_a_retried_discard_leaves_fields_set_since_alone(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Receipt order decides per field, for a delivery taken back from a discard too."""
    old = receive(db, {"fragrance_id": 7, "cost": -1, "name": "Old name"})
    receive(db, {"fragrance_id": 7, "name": "Newer name"})
    dba.execute("select sync.discard(%s, 'wrong row')", [old["inbox_id"]])
    dba.execute("update sync.rule set severity = 'warning' where code = 'cost.negative'")
    dba.execute("select sync.retry(%s)", [old["inbox_id"]])
    row = fragrance(db, 7)
    assert (row["name"], row["cost"]) == ("Newer name", -1)


@pytest.mark.parametrize(
    ("call", "sqlstate"),
    [
        ("select sync.discard({id}, '')", "FS003"),
        ("select sync.discard({id}, null)", "FS003"),
        ("select sync.discard(999999, 'why')", "FS001"),
        ("select sync.retry(999999)", "FS001"),
        ("select sync.retry({applied})", "FS002"),
        ("select sync.discard({applied}, 'why')", "FS002"),
        ("select sync.apply_pending(0)", "FS004"),
        ("select sync.retry_all(null, -1)", "FS004"),
        ("select sync.retry(null)", "FS005"),
        ("select sync.discard(null, 'why')", "FS005"),
    ],
)
def test_dba_functions_refuse_wrong_calls_with_our_own_sqlstate_and_a_hint(
    db: psycopg.Connection, call: str, sqlstate: str
) -> None:
    rejected = receive(db, {"fragrance_id": 7, "cost": -1})["inbox_id"]
    applied = receive(db, {"fragrance_id": 7, "cost": 1})["inbox_id"]
    with pytest.raises(psycopg.Error) as caught:
        db.execute(call.format(id=rejected, applied=applied))
    assert (caught.value.sqlstate, bool(caught.value.diag.message_hint)) == (sqlstate, True)


# Reasons that read as nothing: btrim took only the space away.
BLANK_REASONS = {
    "tab": "\t",
    "line feed": "\n",
    "no-break space": "\u00a0",
    "zero-width space": "\u200b",
    "ideographic space": "\u3000",
    "braille blank": "\u2800",
}


@pytest.mark.parametrize("reason", BLANK_REASONS.values(), ids=BLANK_REASONS.keys())
def test_a_discard_whose_reason_shows_nothing_is_refused(
    db: psycopg.Connection, dba: psycopg.Connection, reason: str
) -> None:
    """The reason is the evidence kept for a year; one that shows nothing says nothing."""
    rejected = receive(db, {"fragrance_id": 7, "cost": -1})["inbox_id"]
    with raises_sqlstate("FS003"):
        dba.execute("select sync.discard(%s, %s)", [rejected, reason])
    assert inbox_row(db, rejected)["status"] == "rejected"


def test_a_discard_reason_of_1000_characters_is_kept_whole(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """The bound refuses a longer one (FS096, test_dba_hints); up to it, nothing is cut."""
    rejected = receive(db, {"fragrance_id": 7, "cost": -1})["inbox_id"]
    dba.execute("select sync.discard(%s, repeat('é', 1000))", [rejected])
    row = inbox_row(db, rejected)
    assert (row["status"], row["discard_reason"]) == ("discarded", "é" * 1000)


@pytest.mark.parametrize(
    "assignment",
    [
        "body = 'x'",
        "received_at = received_at - interval '1 day'",
        "content_type = 'text/plain'",
        "client_addr = '10.0.0.1'",
        "user_agent = 'someone else'",
        "spool_key = gen_random_uuid()",
        "id = default",
    ],
)
def test_nothing_received_can_be_rewritten(db: psycopg.Connection, assignment: str) -> None:
    receipt = receive(db, {"fragrance_id": 7, "cost": 1})
    with pytest.raises(psycopg.Error) as caught:
        db.execute(f"update sync.inbox set {assignment} where id = %s", [receipt["inbox_id"]])
    assert caught.value.sqlstate == "FS010"


def test_processing_columns_can_be_changed_by_hand(db: psycopg.Connection) -> None:
    receipt = receive(db, {"fragrance_id": 7, "cost": 1})
    db.execute("update sync.inbox set attempts = attempts + 1 where id = %s", [receipt["inbox_id"]])
    attempts = db.execute("select attempts from sync.inbox where id = %s", [receipt["inbox_id"]])
    assert attempts.fetchone() == (2,)


def test_pending_deliveries_wait_for_apply_pending(db: psycopg.Connection) -> None:
    db.execute("update sync.settings set apply_on_receipt = false")
    receipt = receive(db, {"fragrance_id": 7, "cost": 77})
    assert receipt["status"] == "pending"
    assert fragrance(db, 7)["cost"] != 77
    result = db.execute("select * from sync.apply_pending(10)").fetchone()
    assert result == (1, 1, 0, 0, 0, receipt["inbox_id"], receipt["inbox_id"])
    assert fragrance(db, 7)["cost"] == 77
    assert db.execute("select processed from sync.apply_pending()").fetchone() == (0,)


def test_retry_all_called_again_goes_on_past_deliveries_that_stay_rejected(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """Calls in a row go through the whole quarantine, not the oldest p_limit again and again."""
    dba.execute("update sync.rule set severity = 'error' where code = 'cost.fractional'")
    junk = [receive(db, b"not json " + str(n).encode())["inbox_id"] for n in range(3)]
    fractional = receive(db, {"fragrance_id": 7, "cost": 12.5})
    assert fractional["status"] == "rejected"
    dba.execute("update sync.rule set severity = 'warning' where code = 'cost.fractional'")

    first = dba.execute("select processed, rejected from sync.retry_all(p_limit => 3)").fetchone()
    second = dba.execute("select processed, applied from sync.retry_all(p_limit => 3)").fetchone()

    assert (first, second) == ((3, 3), (3, 1))
    assert inbox_row(db, fractional["inbox_id"])["status"] == "applied"
    assert [inbox_row(db, i)["status"] for i in junk] == ["rejected"] * 3


def quarantine_65_mib_of_junk(db: psycopg.Connection) -> None:
    """Store 65 rejected bodies of 1 MiB each: more than one retry_all call merges."""
    db.execute(
        "insert into sync.inbox (body, status, reasons, processed_at)"
        " select convert_to(repeat('x', %s), 'UTF8'), 'rejected',"
        ' \'[{"code": "body.not_json", "severity": "error"}]\', now()'
        " from generate_series(1, 65)",
        [1024 * 1024],
    )


def test_retry_all_goes_on_past_64_mib_of_bodies_that_stay_rejected(
    db: psycopg.Connection,
) -> None:
    """However large p_limit, a call merges 64 MiB of bodies: the next call must take the rest."""
    quarantine_65_mib_of_junk(db)
    later = receive(db, {"fragrance_id": 6000, "name": "Later"})
    assert later["status"] == "rejected"
    db.execute("insert into public.fragrances values (6000, 'Placeholder', 'Made up', 3, false)")

    db.execute("select * from sync.retry_all(p_limit => 100000)")
    db.execute("select * from sync.retry_all(p_limit => 100000)")

    assert inbox_row(db, later["inbox_id"])["status"] == "applied"


def test_retry_all_takes_its_64_mib_in_the_quarantine_order_not_receipt_order(
    db: psycopg.Connection,
) -> None:
    """The delivery judged longest ago is retried first, even behind 64 MiB received before it."""
    quarantine_65_mib_of_junk(db)
    oldest = receive(db, {"fragrance_id": 6000, "name": "Oldest"})
    assert oldest["status"] == "rejected"
    db.execute(
        "update sync.inbox set processed_at = processed_at - interval '1 day' where id = %s",
        [oldest["inbox_id"]],
    )
    db.execute("insert into public.fragrances values (6000, 'Placeholder', 'Made up', 3, false)")

    db.execute("select * from sync.retry_all(p_limit => 100000)")

    assert inbox_row(db, oldest["inbox_id"])["status"] == "applied"


def test_apply_pending_goes_past_a_claim_held_whole_by_another_transaction(
    server: Server, dbname: str, db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """p_limit deliveries of a held fragrance must not keep every later one pending."""
    db.execute("update sync.settings set apply_on_receipt = false")
    for cost in (1, 2, 3):
        receive(db, {"fragrance_id": 7, "cost": cost})
    later = receive(db, {"fragrance_id": 8, "cost": 88})["inbox_id"]
    with psycopg.connect(server.url(dbname)) as holder:
        holder.execute("select from public.fragrances where fragrance_id = 7 for update")
        result = dba.execute("select processed, applied from sync.apply_pending(3)").fetchone()
        holder.rollback()
    assert result == (1, 1)
    assert inbox_row(db, later)["status"] == "applied"
    assert fragrance(db, 8)["cost"] == 88


def test_the_status_page_shows_a_body_not_judged_yet_as_the_quarantine_would(
    db: psycopg.Connection,
) -> None:
    # Stored by the hook, not merged yet: no reasons say whether it decodes.
    set_apply_on_receipt(db, False)
    for _, raw, preview in [
        p for p in PREVIEWS if p[0] in ("cyrillic", "not utf-8 with a control byte")
    ]:
        receive(db, raw)
        report = db.execute("select sync.status_report(1, 1)").fetchone()[0]
        assert [(d["status"], d["body_preview"]) for d in report["latest"]] == [
            ("pending", preview)
        ]
