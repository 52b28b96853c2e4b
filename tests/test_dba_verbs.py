"""A careless or hostile DBA in psql: what the rules offer to run, the quarantine, the verbs.

Each case is one a hostile review found giving a raw PostgreSQL error, losing a
delivery or leaving a state the verbs could not read.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from conftest import Server
from helpers import fuzz_settings, inbox_row, receive, wait_for_lock_wait
from hypothesis import given
from hypothesis import strategies as st

# U+0958 DEVANAGARI LETTER QA is a composition exclusion: normal form C writes
# it as two characters (U+0915 U+093C), so a name of 150 of them, which the
# column holds, is 300 characters once normalized.
GROWS_IN_NFC = "\u0958"


def offered_fix(db: psycopg.Connection, rule: str, fragrance_id: int) -> str:
    """The statement the rule's description offers to fix a row, for one fragrance."""
    row = db.execute("select description from sync.rule where code = %s", [rule]).fetchone()
    assert row is not None
    found = re.search(r"Fix a row with: (update .*?;)", row[0])
    assert found, row[0]
    return found.group(1).replace("...", str(fragrance_id))


def test_the_normal_form_fix_offered_for_a_name_still_normalizes_one_that_fits(
    db: psycopg.Connection,
) -> None:
    db.execute("update public.fragrances set name = 'Rose' || chr(769) where fragrance_id = 7")
    db.execute(offered_fix(db, "name.not_normalized", 7))
    assert db.execute("select name from public.fragrances where fragrance_id = 7").fetchone() == (
        "Ros\u00e9",
    )


def test_the_normal_form_fix_offered_never_overflows_the_column_and_the_finding_says_why(
    db: psycopg.Connection,
) -> None:
    """NFC can lengthen a text: the fix ran into "value too long for type character varying"."""
    name = GROWS_IN_NFC * 150
    description = GROWS_IN_NFC * 1000
    db.execute(
        "update public.fragrances set name = %s, description = %s where fragrance_id = 7",
        [name, description],
    )
    for rule in ("name.not_normalized", "description.not_normalized"):
        db.execute(offered_fix(db, rule, 7))
    assert db.execute(
        "select name, description from public.fragrances where fragrance_id = 7"
    ).fetchone() == (name, description)
    said = dict(
        db.execute(
            "select rule, message from sync.open_finding where fragrance_id = 7"
            " and rule in ('name.not_normalized', 'description.not_normalized')"
        ).fetchall()
    )
    assert "300 characters, more than the 150 the column holds" in said["name.not_normalized"]
    assert (
        "2000 characters, more than the 1024 the column holds" in said["description.not_normalized"]
    )
    # The same sentence on a delivery, where a DBA sees it in the receipt.
    receipt = receive(db, {"fragrance_id": 8, "name": name})
    assert any("more than the 150 the column holds" in r["message"] for r in receipt["reasons"]), (
        receipt["reasons"]
    )


def test_the_quarantine_shows_a_body_not_utf8_whose_reasons_do_not_say_so(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    """An owner's hand (or a path we do not know) can leave one: the view must still list it."""
    row = db.execute(
        "insert into sync.inbox (body, content_type) values (%s, 'application/json') returning id",
        [b'{"fragrance_id": 7, "name": "\xff\xfe"}'],
    ).fetchone()
    assert row is not None
    db.execute(
        "update sync.inbox set status = 'rejected', processed_at = now(),"
        ' reasons = \'[{"code": "name.too_long", "severity": "error", "message": "m"}]\''
        " where id = %s",
        [row[0]],
    )
    shown = dba.execute(
        "select inbox_id, body_preview from sync.quarantine where inbox_id = %s", [row[0]]
    ).fetchall()
    assert shown == [(row[0], '{"fragrance_id": 7, "name": "\\377\\376"}')]
    # What the status page shows of it too.
    report = db.execute("select sync.status_report(1, 1)").fetchone()[0]
    assert [d["body_preview"] for d in report["latest"]] == [
        '{"fragrance_id": 7, "name": "\\377\\376"}'
    ]
    assert inbox_row(db, row[0])["status"] == "rejected"


def test_the_not_json_rule_says_what_was_wrong_and_what_the_sender_must_do(
    db: psycopg.Connection,
) -> None:
    row = db.execute("select description from sync.rule where code = 'body.not_json'").fetchone()
    assert row is not None
    said = row[0]
    for told in ("syntax", "NaN", "nest", "line", "send", '{"fragrance_id": 1'):
        assert told in said, (told, said)


def test_the_column_lengths_the_normal_form_sentences_name_are_the_columns(
    db: psycopg.Connection,
) -> None:
    """sync_private.normal_form_overflow is given 150 and 1024: the columns' own lengths."""
    held = db.execute(
        "select attname, atttypmod - 4 from pg_catalog.pg_attribute"
        " where attrelid = 'public.fragrances'::regclass and attname in ('name', 'description')"
        " order by attname"
    ).fetchall()
    assert held == [("description", 1024), ("name", 150)]


def test_a_discard_undone_by_a_retry_while_the_purge_runs_is_not_purged(
    db: psycopg.Connection, dba: psycopg.Connection, server: Server, dbname: str
) -> None:
    """The purge chose the discarded ids, then deleted them by id alone, whatever they had become.

    A DBA's retry of a discard a year old (ADR 0039), refused again, was back
    in the quarantine when the purge that waited on its row deleted it: a
    delivery that needs a person, gone.
    """
    rejected = receive(db, {"fragrance_id": 7, "cost": -1})["inbox_id"]
    dba.execute("select sync.discard(%s, 'the vendor''s test')", [rejected])
    db.execute(
        "update sync.inbox set discarded_at = now() - interval '2 years' where id = %s", [rejected]
    )
    with psycopg.connect(server.url(dbname, user="alice")) as retrying:
        # The retry, refused again, holds the row until its transaction ends.
        assert retrying.execute("select status from sync.retry(%s)", [rejected]).fetchone() == (
            "rejected",
        )
        with psycopg.connect(server.url(dbname), autocommit=True) as purging:
            pid = purging.info.backend_pid
            with ThreadPoolExecutor(1) as pool:
                purged = pool.submit(
                    lambda: purging.execute(
                        "select sync_private.purge_discarded('1 year')"
                    ).fetchone()
                )
                wait_for_lock_wait(db, pid)
                retrying.commit()
                assert purged.result() == (0,)
    assert inbox_row(db, rejected)["status"] == "rejected"


# What a sender put in a sentence of its own delivery: a value, a key, a
# token. The preview escaped it; the sentences beside it held it raw, and a
# right-to-left override reordered the DBA's psql line, a C1 CSI reached the
# terminal, a zero-width space hid in the value named.
SENDER_TEXT_IN_SENTENCES = [
    ('{"fragrance_id": "\u202e1"}', "\\u202e1"),
    ('{"fragrance_id": 1, "forbidden": "a\u200bb"}', "a\\u200bb"),
    ('{"fragrance_id": 1, "na\u009bme": "x"}', "na\\u009bme"),
    ('{"fragrance_id": 1, "name": \u202eabc}', "\\u202eabc"),
    ('{"fragrance_id": 1, "n\u2066": 1, "n\u2066": 2}', "n\\u2066"),
]


def test_the_sentences_of_a_delivery_show_what_the_sender_hid_escaped(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    hidden = re.compile("[\u0080-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069]")
    for raw, escaped in SENDER_TEXT_IN_SENTENCES:
        receipt = receive(db, raw.encode())
        messages = [r["message"] for r in receipt["reasons"]]
        assert not any(hidden.search(m) for m in messages), messages
        assert any(escaped in m for m in messages), messages
        listed = dba.execute(
            "select messages from sync.quarantine where inbox_id = %s", [receipt["inbox_id"]]
        ).fetchall()
        assert not any(hidden.search(m or "") for (m,) in listed), listed


# Bytes near what UTF-8 allows: overlong forms, surrogates, past U+10FFFF,
# cut sequences, NUL, and valid letters of every length around them.
NEAR_UTF8 = st.lists(
    st.sampled_from(
        [
            b"a",
            b"\x00",
            b"\x7f",
            b"\xc0\xaf",
            b"\xc2\x80",
            b"\xdf\xbf",
            b"\xe0\x9f\x80",
            b"\xe0\xa0\x80",
        ]
        + [
            b"\xed\x9f\xbf",
            b"\xed\xa0\x80",
            b"\xef\xbf\xbf",
            b"\xf0\x8f\xbf\xbf",
            b"\xf0\x90\x80\x80",
        ]
        + [
            b"\xf4\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"\xf5\x80\x80\x80",
            b"\xe2\x80",
            b"\x80",
            b"\xff",
        ]
        + ["Я\u202e".encode(), b"\x1b"]
    ),
    max_size=12,
).map(b"".join) | st.binary(max_size=40)


@fuzz_settings(150)
@given(raw=NEAR_UTF8)
def test_the_quarantine_never_fails_on_a_body_its_reasons_do_not_describe(
    db: psycopg.Connection, raw: bytes
) -> None:
    """Any bytes, rejected by hand with no reason about them: shown as the status page shows."""
    with db.transaction(force_rollback=True):
        row = db.execute(
            "insert into sync.inbox (body, content_type)"
            " values (%s, 'application/json') returning id",
            [raw],
        ).fetchone()
        assert row is not None
        db.execute(
            "update sync.inbox set status = 'rejected', processed_at = now() where id = %s",
            [row[0]],
        )
        shown = db.execute(
            "select q.body_preview, sync_private.preview(i.body) from sync.quarantine as q"
            " join sync.inbox as i on i.id = q.inbox_id where q.inbox_id = %s",
            [row[0]],
        ).fetchall()
    assert len(shown) == 1 and shown[0][0] == shown[0][1], shown


def test_unknown_fields_are_listed_with_what_their_names_hide_escaped(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    r"""JSON's \u001b is a raw ESC once parsed: sync.unknown_field wrote it to psql -A as it was."""
    receive(db, b'{"fragrance_id": 7, "a\\u001b[2J": 1, "b\\u202ec": 2, "plain": 3}')
    listed = sorted(f for (f,) in dba.execute("select field from sync.unknown_field").fetchall())
    assert listed == ["a\\u001b[2J", "b\\u202ec", "plain"]


def test_a_retry_that_waits_for_a_fragrance_another_transaction_holds_says_so(
    db: psycopg.Connection, dba: psycopg.Connection, server: Server, dbname: str
) -> None:
    """sync.retry waited without a word behind a DBA's open edit; revert and repair said why."""
    receipt = receive(db, {"fragrance_id": 5555, "name": "Newcomer"})
    assert receipt["status"] == "rejected"
    db.execute("insert into public.fragrances values (5555, 'Placeholder', 'Made up', 3, false)")
    said: list[str] = []
    with (
        psycopg.connect(server.url(dbname)) as holder,
        psycopg.connect(server.url(dbname, user="alice"), autocommit=True) as retrying,
    ):
        holder.execute("update public.fragrances set cost = 4 where fragrance_id = 5555")
        retrying.add_notice_handler(
            lambda d: said.append(f"{d.message_primary} | {d.message_hint}")
        )
        with ThreadPoolExecutor(1) as pool:
            retried = pool.submit(
                lambda: retrying.execute(
                    "select status from sync.retry(%s)", [receipt["inbox_id"]]
                ).fetchone()
            )
            for _ in range(3000):
                if said or retried.done():
                    break
                time.sleep(0.01)
            holder.rollback()
            assert retried.result() == ("applied",)
    assert said and said[0].startswith(
        "sync.retry waits for fragrance 5555, which another transaction holds | It goes on"
    ), said


def test_a_verb_that_waits_for_an_inbox_row_another_dba_holds_says_so(
    db: psycopg.Connection, dba: psycopg.Connection, server: Server, dbname: str
) -> None:
    """A second DBA's discard left open in psql: the retry behind it waited without a word."""
    rejected = receive(db, {"fragrance_id": 7, "cost": -1})["inbox_id"]
    said: list[str] = []
    with (
        psycopg.connect(server.url(dbname, user="alice")) as discarding,
        psycopg.connect(server.url(dbname, user="alice"), autocommit=True) as retrying,
    ):
        discarding.execute("select sync.discard(%s, 'a test of the vendor')", [rejected])
        retrying.add_notice_handler(
            lambda d: said.append(f"{d.message_primary} | {d.message_hint}")
        )
        with ThreadPoolExecutor(1) as pool:
            retried = pool.submit(
                lambda: retrying.execute("select status from sync.retry(%s)", [rejected]).fetchone()
            )
            for _ in range(3000):
                if said or retried.done():
                    break
                time.sleep(0.01)
            discarding.commit()
            # Retried once the discard ended: a discarded delivery may be (ADR 0039).
            assert retried.result() == ("rejected",)
    assert said and said[0].startswith(
        f"inbox row {rejected} is held by another transaction; it can be retried once that ends"
    ), said
    assert inbox_row(db, rejected)["discard_reason"] == "a test of the vendor"
