"""A careless or hostile DBA in psql: what the rules offer to run, the quarantine, the verbs.

Each case is one a hostile review found giving a raw PostgreSQL error, losing a
delivery or leaving a state the verbs could not read.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import psycopg
from conftest import Server
from helpers import inbox_row, receive, wait_for_lock_wait

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
