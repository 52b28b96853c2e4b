"""Every data rule, table-driven: what a delivery body yields as status and reason codes.

Fragrance 7 exists in the adopted catalog; 900000 does not.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from helpers import body, codes, findings_at_rest, fragrance, inbox_row, receive, receive_many

FULL = {"name": "Rose", "description": "Petals  ", "cost": 12, "forbidden": False}


def raw(text: str) -> bytes:
    return text.encode()


# (case id, body, expected status, expected error codes)
RULES: list[tuple[str, Any, str, list[str]]] = [
    # body
    ("empty body", b"", "rejected", ["body.empty"]),
    ("not utf-8", b'{"fragrance_id": 7, "name": "\xff\xfe"}', "rejected", ["body.not_utf8"]),
    ("nul byte", b'{"fragrance_id": 7, "name": "a\x00b"}', "rejected", ["body.not_utf8"]),
    (
        "escaped nul",
        raw('{"fragrance_id": 7, "name": "a\\u0000b"}'),
        "rejected",
        ["body.unsupported_unicode"],
    ),
    ("not json", raw("fragrance_id=7&name=Rose"), "rejected", ["body.not_json"]),
    ("truncated json", raw('{"fragrance_id": 7, "name": "Ro'), "rejected", ["body.not_json"]),
    ("NaN is not json", raw('{"fragrance_id": 7, "cost": NaN}'), "rejected", ["body.not_json"]),
    (
        "Infinity is not json",
        raw('{"fragrance_id": 7, "cost": Infinity}'),
        "rejected",
        ["body.not_json"],
    ),
    # Valid JSON, but beyond what jsonb (numeric) can hold.
    *(
        (f"number {what}", raw(text), "rejected", ["body.number_out_of_range"])
        for what, text in [
            ("too large", '{"fragrance_id": 7, "cost": 3, "extra": 1e1000000}'),
            ("too small", '{"fragrance_id": 7, "cost": 1e-20000}'),
            ("of 132,000 digits", '{"fragrance_id": 7, "cost": ' + "9" * 132000 + "}"),
        ]
    ),
    ("array", [7], "rejected", ["body.not_object"]),
    ("string", "hello", "rejected", ["body.not_object"]),
    ("null", None, "rejected", ["body.not_object"]),
    (
        "duplicate key",
        raw('{"fragrance_id": 7, "name": "A", "name": "B"}'),
        "rejected",
        ["body.duplicate_key"],
    ),
    # fragrance_id
    ("id missing", {"name": "Rose"}, "rejected", ["fragrance_id.missing"]),
    ("id null", {"fragrance_id": None, "name": "Rose"}, "rejected", ["fragrance_id.null"]),
    (
        "id as string",
        {"fragrance_id": "7", "name": "Rose"},
        "rejected",
        ["fragrance_id.not_integer"],
    ),
    (
        "id as boolean",
        {"fragrance_id": True, "name": "Rose"},
        "rejected",
        ["fragrance_id.not_integer"],
    ),
    (
        "id fractional",
        {"fragrance_id": 7.5, "name": "Rose"},
        "rejected",
        ["fragrance_id.not_integer"],
    ),
    (
        "id negative",
        {"fragrance_id": -1, "name": "Rose"},
        "rejected",
        ["fragrance_id.out_of_range"],
    ),
    (
        "id huge",
        {"fragrance_id": 10**30, "name": "Rose"},
        "rejected",
        ["fragrance_id.out_of_range"],
    ),
    (
        "id just past int4",
        {"fragrance_id": 2147483648, "name": "Rose"},
        "rejected",
        ["fragrance_id.out_of_range"],
    ),
    (
        "id unknown, partial",
        {"fragrance_id": 900000, "name": "Rose"},
        "rejected",
        ["fragrance_id.unknown"],
    ),
    ("id unknown, complete", {"fragrance_id": 900000, **FULL}, "applied", []),
    ("id written 7.0", raw('{"fragrance_id": 7.0, "name": "Rose"}'), "applied", []),
    # name
    ("name null", {"fragrance_id": 7, "name": None}, "rejected", ["name.null"]),
    ("name number", {"fragrance_id": 7, "name": 5}, "rejected", ["name.not_string"]),
    ("name empty", {"fragrance_id": 7, "name": ""}, "rejected", ["name.blank"]),
    ("name blank", {"fragrance_id": 7, "name": " \t\n "}, "rejected", ["name.blank"]),
    # Blank whatever the server's locale: nothing visible is blank.
    *(
        (f"name of {what}", {"fragrance_id": 7, "name": text}, "rejected", ["name.blank"])
        for what, text in [
            ("no-break spaces", "\u00a0\u00a0"),
            ("zero-width spaces", "\u200b\u200b"),
            ("an ideographic space", "\u3000"),
            ("an em space and a line separator", "\u2003\u2028"),
            ("a braille blank", "\u2800"),
            ("a Hangul filler", "\u3164"),
            ("a byte order mark", "\ufeff"),
            ("tag characters", "\U000e0041\U000e0042"),
            ("control characters", "\u0001\u0085"),
            ("an Arabic letter mark and a variation selector", "\u061c\U000e0100"),
            ("only combining marks", "\u0301\u0308\u20dd"),
            ("interlinear annotation controls", "\ufff9\ufffa\ufffb"),
            ("Egyptian hieroglyph format controls", "\U00013430\U00013438"),
            ("shorthand format controls", "\U0001bca0\U0001bca3"),
            # Marks of every script, with no letter to sit on.
            ("an Arabic shadda", "\u0651"),
            ("Arabic tanween", "\u064b\u064c"),
            ("Hebrew points", "\u05b4\u05b4"),
            ("a Cyrillic titlo", "\u0483"),
            ("a Thai vowel sign", "\u0e31"),
            ("a Devanagari nukta", "\u093c"),
            ("a Vedic tone mark", "\u1cd0"),
            ("a musical combining accent", "\U0001d17b"),
            ("a SignWriting mark", "\U0001da00"),
            ("an Egyptian hieroglyph mirror mark", "\U00013440"),
        ]
    ),
    # Not blank: it shows an A; its zero-width space is name.invisible_character.
    (
        "name visible among invisibles",
        {"fragrance_id": 7, "name": "\u200bA\u00a0"},
        "rejected",
        ["name.invisible_character"],
    ),
    # An Egyptian hieroglyph format control shows nothing but next to a hieroglyph.
    (
        "name with an Egyptian format control after a Latin letter",
        {"fragrance_id": 7, "name": "Rose\U00013430"},
        "rejected",
        ["name.invisible_character"],
    ),
    (
        "name in hieroglyphs joined by a format control",
        {"fragrance_id": 7, "name": "\U00013000\U00013430\U00013001"},
        "applied",
        [],
    ),
    ("name in CJK", {"fragrance_id": 7, "name": "\u8587\u8587"}, "applied", []),
    ("name with a combining accent", {"fragrance_id": 7, "name": "Rose\u0301"}, "applied", []),
    ("name with an accent decomposed", {"fragrance_id": 7, "name": "Ros\u0301e"}, "applied", []),
    (
        "name in Arabic with vowel marks",
        {"fragrance_id": 7, "name": "\u0648\u064e\u0631\u0652\u062f"},
        "applied",
        [],
    ),
    # What a name shows is what it holds: no terminal controls, no reordering.
    *(
        (f"name with {what}", {"fragrance_id": 7, "name": text}, "rejected", [code])
        for what, text, code in [
            ("a bell", "Rose\u0007", "name.control_character"),
            ("an ANSI colour", "\u001b[31mRose", "name.control_character"),
            ("a line feed", "Rose\nGarden", "name.control_character"),
            ("a C1 control", "Rose\u009b", "name.control_character"),
            ("a line separator", "Rose\u2028Garden", "name.control_character"),
            ("a paragraph separator", "Rose\u2029Garden", "name.control_character"),
            # Noncharacters: for a program's internal use, never text (XML cannot carry U+FFFF).
            ("the noncharacter U+FFFF", "Rose\uffff", "name.control_character"),
            ("the noncharacter U+FFFE", "\ufffeRose", "name.control_character"),
            ("the noncharacter U+FDD0", "Ro\ufdd0se", "name.control_character"),
            ("the noncharacter U+FDEF", "Rose\ufdef", "name.control_character"),
            ("the noncharacter U+1FFFE", "Rose\U0001fffe", "name.control_character"),
            ("the noncharacter U+10FFFF", "Rose\U0010ffff", "name.control_character"),
            ("a right-to-left override", "Rose\u202eesoR", "name.bidi_control"),
            ("a left-to-right embedding", "\u202aRose", "name.bidi_control"),
            ("an isolate", "Rose\u2067x\u2069", "name.bidi_control"),
        ]
    ),
    # A bidirectional control before an invisible character is reported first.
    (
        "name with a zero-width space and an override",
        {"fragrance_id": 7, "name": "Rose\u200b\u202e"},
        "rejected",
        ["name.bidi_control"],
    ),
    *(
        (f"name with {what}", {"fragrance_id": 7, "name": text}, "applied", [])
        for what, text in [
            ("U+FDCF, an Arabic ligature before the noncharacters", "Rose\ufdcf"),
            ("U+FDF0, an Arabic ligature after them", "Rose\ufdf0"),
            ("U+1FFFD, the last code point before plane 1's noncharacters", "Rose\U0001fffd"),
        ]
    ),
    # U+FFFD, right before the noncharacters, is none: it stands for a character lost
    # before the CMS (tests/test_rules_replacement.py).
    (
        "name with U+FFFD, the replacement character",
        {"fragrance_id": 7, "name": "Rose\ufffd"},
        "rejected",
        ["name.replacement_character"],
    ),
    ("name 150 chars", {"fragrance_id": 7, "name": "n" * 150}, "applied", []),
    ("name 151 chars", {"fragrance_id": 7, "name": "n" * 151}, "rejected", ["name.too_long"]),
    ("name 150 multibyte chars", {"fragrance_id": 7, "name": "é" * 150}, "applied", []),
    ("name 150 emoji", {"fragrance_id": 7, "name": "\U0001f339" * 150}, "applied", []),
    # description
    (
        "description null",
        {"fragrance_id": 7, "description": None},
        "rejected",
        ["description.null"],
    ),
    (
        "description list",
        {"fragrance_id": 7, "description": ["a"]},
        "rejected",
        ["description.not_string"],
    ),
    ("description empty is allowed", {"fragrance_id": 7, "description": ""}, "applied", []),
    ("description 1024", {"fragrance_id": 7, "description": "d" * 1024}, "applied", []),
    (
        "description with lines and tabs",
        {"fragrance_id": 7, "description": "Top:\tbergamot\r\nBase: musk"},
        "applied",
        [],
    ),
    *(
        (f"description with {what}", {"fragrance_id": 7, "description": text}, "rejected", [code])
        for what, text, code in [
            ("an escape", "Musk \u001b[2J", "description.control_character"),
            ("a backspace", "Musk\u0008", "description.control_character"),
            ("the noncharacter U+FFFF", "Musk\uffff", "description.control_character"),
            ("the noncharacter U+EFFFE", "Musk\U000efffe", "description.control_character"),
            ("a right-to-left override", "Musk \u202e", "description.bidi_control"),
            ("a first-strong isolate", "\u2068Musk", "description.bidi_control"),
        ]
    ),
    # An invisible character in a description is a warning: the edit applies.
    (
        "description with a zero-width space",
        {"fragrance_id": 7, "description": "Musk\u200b"},
        "applied",
        [],
    ),
    (
        "description 1025",
        {"fragrance_id": 7, "description": "d" * 1025},
        "rejected",
        ["description.too_long"],
    ),
    # cost
    ("cost null", {"fragrance_id": 7, "cost": None}, "rejected", ["cost.null"]),
    ("cost string", {"fragrance_id": 7, "cost": "12"}, "rejected", ["cost.not_number"]),
    ("cost boolean", {"fragrance_id": 7, "cost": True}, "rejected", ["cost.not_number"]),
    ("cost negative", {"fragrance_id": 7, "cost": -5}, "rejected", ["cost.negative"]),
    ("cost 1e400", raw('{"fragrance_id": 7, "cost": 1e400}'), "rejected", ["cost.not_finite"]),
    ("cost -0", raw('{"fragrance_id": 7, "cost": -0}'), "applied", []),
    # What the smart library serves is int(cost), as a JSON number.
    (
        "cost 1e-400 (0 as a double)",
        raw('{"fragrance_id": 7, "cost": 1e-400}'),
        "rejected",
        ["cost.too_precise"],
    ),
    ("cost 1e308", raw('{"fragrance_id": 7, "cost": 1e308}'), "rejected", ["cost.too_large"]),
    ("cost 2^53", {"fragrance_id": 7, "cost": 2**53}, "rejected", ["cost.too_large"]),
    ("cost 2^53 - 1", {"fragrance_id": 7, "cost": 2**53 - 1}, "applied", []),
    (
        "cost with 1000 decimal digits",
        raw('{"fragrance_id": 7, "cost": 0.' + "3" * 1000 + "}"),
        "rejected",
        ["cost.too_precise"],
    ),
    ("cost with 3 decimals", {"fragrance_id": 7, "cost": 1.125}, "rejected", ["cost.too_precise"]),
    ("cost zero", {"fragrance_id": 7, "cost": 0}, "applied", []),
    ("cost fractional (a warning)", {"fragrance_id": 7, "cost": 12.75}, "applied", []),
    ("cost written 12.0", raw('{"fragrance_id": 7, "cost": 12.0}'), "applied", []),
    ("cost written 12.000", raw('{"fragrance_id": 7, "cost": 12.000}'), "applied", []),
    ("cost written 1.2500", raw('{"fragrance_id": 7, "cost": 1.2500}'), "applied", []),
    (
        "cost written 1.1250",
        raw('{"fragrance_id": 7, "cost": 1.1250}'),
        "rejected",
        ["cost.too_precise"],
    ),
    # forbidden
    ("forbidden null", {"fragrance_id": 7, "forbidden": None}, "rejected", ["forbidden.null"]),
    (
        "forbidden string",
        {"fragrance_id": 7, "forbidden": "true"},
        "rejected",
        ["forbidden.not_boolean"],
    ),
    ("forbidden one", {"fragrance_id": 7, "forbidden": 1}, "rejected", ["forbidden.not_boolean"]),
    # whole delta
    ("only the id", {"fragrance_id": 7}, "ignored", []),
    (
        "several violations at once",
        {"fragrance_id": 7, "name": "", "cost": -1},
        "rejected",
        ["name.blank", "cost.negative"],
    ),
    (
        "the contract's example",
        {
            "fragrance_id": 7,
            "name": "ZoogenicHOOOOOOOOOOLAAA",
            "description": "Produced from animals  blabla...",
            "forbidden": True,
        },
        "applied",
        [],
    ),
]


@pytest.mark.parametrize(
    ("payload", "status", "errors"),
    [pytest.param(p, s, e, id=i) for i, p, s, e in RULES],
)
def test_rule(tx: psycopg.Connection, payload: Any, status: str, errors: list[str]) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    receipt = receive(tx, data)
    assert receipt["status"] == status
    assert codes(receipt["reasons"], "error") == errors


# (case id, rule turned down to a warning, delta, the error that still refuses it)
WARNING_BEFORE_AN_ERROR: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "a bell before a right-to-left override",
        "name.control_character",
        {"name": "Rose\u0007\u202egnp.exe"},
        "name.bidi_control",
    ),
    ("a blank name of an override", "name.blank", {"name": " \u202e "}, "name.bidi_control"),
    (
        "a description's escape before an isolate",
        "description.control_character",
        {"description": "Musk\u001b\u2067"},
        "description.bidi_control",
    ),
    ("a negative cost too precise", "cost.negative", {"cost": -0.000001}, "cost.too_precise"),
    ("a blank name of a bell", "name.blank", {"name": "\u0007"}, "name.control_character"),
    (
        "a blank name of zero-width spaces",
        "name.blank",
        {"name": "\u200b\u200b"},
        "name.invisible_character",
    ),
    (
        "a bell before a zero-width space",
        "name.control_character",
        {"name": "Rose\u0007\u200b"},
        "name.invisible_character",
    ),
]


@pytest.mark.parametrize(
    ("warning", "delta", "error"),
    [pytest.param(w, d, e, id=i) for i, w, d, e in WARNING_BEFORE_AN_ERROR],
)
def test_a_rule_turned_down_to_a_warning_hides_no_error_checked_after_it(
    tx: psycopg.Connection, warning: str, delta: dict[str, Any], error: str
) -> None:
    tx.execute("update sync.rule set severity = 'warning' where code = %s", [warning])
    receipt = receive(tx, {"fragrance_id": 7, **delta})
    assert receipt["status"] == "rejected"
    assert [(r["code"], r["severity"]) for r in receipt["reasons"]] == [(error, "error")]


def test_a_field_that_breaks_only_warnings_is_reported_by_the_first_of_them(
    tx: psycopg.Connection,
) -> None:
    tx.execute("update sync.rule set severity = 'warning' where code = 'name.blank'")
    receipt = receive(tx, {"fragrance_id": 7, "name": " "})  # blank, and untrimmed
    assert receipt["status"] == "applied"
    assert [(r["code"], r["severity"]) for r in receipt["reasons"]] == [("name.blank", "warning")]


def test_a_rule_turned_off_hides_no_rule_checked_after_it(tx: psycopg.Connection) -> None:
    tx.execute("update sync.rule set severity = 'off' where code = 'name.control_character'")
    receipt = receive(tx, {"fragrance_id": 7, "name": "Rose\u0007\u202e"})
    assert receipt["status"] == "rejected"
    assert codes(receipt["reasons"]) == ["name.bidi_control"]


def test_every_reason_has_a_code_a_severity_and_a_sentence(tx: psycopg.Connection) -> None:
    receipt = receive(tx, {"fragrance_id": "x", "name": None, "cost": "1", "colour": "red"})
    assert receipt["reasons"]
    for reason in receipt["reasons"]:
        assert set(reason) == {"code", "severity", "field", "message"}
        assert reason["severity"] in {"error", "warning", "info"}
        assert len(reason["message"]) > 10


def test_a_number_beyond_the_database_says_so(tx: psycopg.Connection) -> None:
    receipt = receive(tx, raw('{"fragrance_id": 7, "cost": 1e1000000}'))
    assert receipt["reasons"][0]["message"].startswith(
        "body holds a number beyond what the database can hold"
    )


def test_too_long_says_how_long_and_the_limit(tx: psycopg.Connection) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "name": "n" * 163})
    assert receipt["reasons"][0]["message"] == "name has 163 characters; the limit is 150"


def test_a_rejected_delta_changes_nothing_even_in_its_valid_fields(tx: psycopg.Connection) -> None:
    before = fragrance(tx, 7)
    receive(tx, {"fragrance_id": 7, "description": "fine", "cost": -1})
    assert fragrance(tx, 7) == before


def test_unknown_fields_are_warnings_that_do_not_block_the_change(tx: psycopg.Connection) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "cost": 33, "colour": "red", "season": 1})
    assert receipt["status"] == "applied"
    assert codes(receipt["reasons"], "warning") == ["field.unknown", "field.unknown"]
    assert fragrance(tx, 7)["cost"] == 33
    seen = tx.execute("select field, deliveries from sync.unknown_field order by field").fetchall()
    assert seen == [("colour", 1), ("season", 1)]


def test_a_delta_of_many_unknown_fields_names_twenty_and_counts_the_rest(
    tx: psycopg.Connection,
) -> None:
    """A body of 60,000 unknown keys made 60,000 reasons, 9 MB stored with one delivery."""
    receipt = receive(tx, {"fragrance_id": 7, "cost": 33, **{f"key{n:03d}": n for n in range(25)}})
    assert receipt["status"] == "applied"
    unknown = [r for r in receipt["reasons"] if r["code"] == "field.unknown"]
    assert [r["field"] for r in unknown] == [f"key{n:03d}" for n in range(20)] + [None]
    assert unknown[-1]["message"] == (
        "5 more unknown fields were ignored (25 in all, the first 20 named above)"
    )
    assert tx.execute("select count(*) from sync.unknown_field").fetchone() == (20,)


def test_a_delta_with_only_the_id_is_ignored_not_an_error(tx: psycopg.Connection) -> None:
    before = fragrance(tx, 7)
    receipt = receive(tx, {"fragrance_id": 7})
    assert receipt["status"] == "ignored"
    assert codes(receipt["reasons"]) == ["delta.empty"]
    assert fragrance(tx, 7) == before


def test_the_exact_bytes_are_kept_whatever_they_are(tx: psycopg.Connection) -> None:
    data = b'\xff\x00{"fragrance_id": 7}\x00'
    receipt = receive(tx, data)
    kept = tx.execute("select body from sync.inbox where id = %s", [receipt["inbox_id"]]).fetchone()
    assert kept == (data,)


def test_a_fractional_cost_is_applied_with_a_warning_saying_what_the_application_sees(
    tx: psycopg.Connection,
) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "cost": 12.5})
    assert receipt["status"] == "applied"
    [warning] = receipt["reasons"]
    assert (warning["code"], warning["severity"]) == ("cost.fractional", "warning")
    assert "the application sees 12" in warning["message"]


def test_a_noncharacter_is_named_so_by_code_point_and_position(tx: psycopg.Connection) -> None:
    [(inbox_id, status, reasons)] = receive_many(
        tx, [body({"fragrance_id": 7, "name": "Ro\ufffese"})]
    )
    assert (status, [r["message"] for r in reasons]) == (
        "rejected",
        ["name holds the noncharacter U+FFFE at position 3; it would reach the application as is"],
    )


def test_a_control_character_is_named_by_code_point_and_position(tx: psycopg.Connection) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "name": "Ro\u001bse"})
    assert "U+001B at position 3" in receipt["reasons"][0]["message"]


def test_a_line_separator_breaks_a_name_and_not_a_description(tx: psycopg.Connection) -> None:
    """U+2028 breaks a line as a line feed does: refused in a name, kept in a description."""
    name = receive(tx, {"fragrance_id": 7, "name": "Rose\u2028Garden"})
    description = receive(tx, {"fragrance_id": 7, "description": "Rose\u2028Garden"})
    assert name["status"] == "rejected"
    assert "holds the line break U+2028 at position 5" in name["reasons"][0]["message"]
    assert (description["status"], description["reasons"]) == ("applied", [])


def test_a_windows_quote_read_as_latin_1_does_not_refuse_the_cms_edit_of_its_fragrance(
    tx: psycopg.Connection,
) -> None:
    """The real catalog's descriptions hold Windows-1252 quotes decoded as Latin-1 (U+0093, U+0094).

    The CMS sends a fragrance's description whole with every edit, so as an error the
    control refused every edit of such a fragrance, its forbidden flip with it. It is a
    warning of its own, naming the character the text meant.
    """
    text = "Smells of \u0093rain\u0094 on stone  blabla..."
    receipt = receive(
        tx,
        {
            "fragrance_id": 7,
            "name": "PetrichorHOOOOOOOOOOLAAA",
            "description": text,
            "forbidden": True,
        },
    )
    assert receipt["status"] == "applied"
    assert fragrance(tx, 7)["description"] == text
    assert fragrance(tx, 7)["forbidden"] is True
    assert receipt["reasons"] == [
        {
            "code": "description.c1_control",
            "severity": "warning",
            "field": "description",
            "message": "description holds the C1 control character U+0093 at position 11,"
            " \u201c in Windows-1252: text from Windows read as Latin-1; it reaches the"
            " application as is",
        }
    ]


def test_a_c1_control_no_windows_character_is_named_without_one(tx: psycopg.Connection) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "description": "Musk\u008d"})
    assert receipt["status"] == "applied"
    assert receipt["reasons"][0]["message"] == (
        "description holds the C1 control character U+008D at position 5;"
        " it reaches the application as is"
    )


def test_a_c1_control_ranks_before_the_padding_of_a_description(tx: psycopg.Connection) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "description": "\u0093rain\u0094 on stone  "})
    assert codes(receipt["reasons"]) == ["description.c1_control"]


def test_a_c0_control_in_a_description_stays_an_error_beside_a_c1_one(
    tx: psycopg.Connection,
) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "description": "\u0093Musk\u0094 \u001b[2J"})
    assert receipt["status"] == "rejected"
    assert codes(receipt["reasons"]) == ["description.control_character"]


def tags(text: str) -> str:
    """ASCII spelled in tag characters (U+E0020-E007E), which show nothing."""
    return "".join(chr(0xE0000 + ord(c)) for c in text)


CANCEL_TAG = "\U000e007f"
BLACK_FLAG = "\U0001f3f4"

# (case id, text, the invisible character refused and its position, or None when it passes).
# The same texts as a name (an error) and as a description (a warning).
INVISIBLE: list[tuple[str, str, tuple[str, int] | None]] = [
    ("a zero-width space at the end", "Rose\u200b", ("U+200B", 5)),
    ("a zero-width space at the start", "\u200bRose", ("U+200B", 1)),
    ("a soft hyphen inside", "Ro\u00adse", ("U+00AD", 3)),
    ("a byte order mark", "\ufeffRose", ("U+FEFF", 1)),
    ("a word joiner", "Ro\u2060se", ("U+2060", 3)),
    ("an invisible times", "2\u20622", ("U+2062", 2)),
    ("a combining grapheme joiner", "Ro\u034fse", ("U+034F", 3)),
    ("a Hangul filler after a name", "Rose\u3164", ("U+3164", 5)),
    ("a halfwidth Hangul filler", "Ro\uffa0se", ("U+FFA0", 3)),
    ("a Mongolian vowel separator at the end", "Rose\u180e", ("U+180E", 5)),
    # Direction marks too: the application sets direction by markup.
    ("a right-to-left mark", "Rose\u200f", ("U+200F", 5)),
    ("a left-to-right mark", "\u200eRose", ("U+200E", 1)),
    ("an Arabic letter mark", "\u0648\u0631\u062f\u061c", ("U+061C", 4)),
    # Tags spell text no reader sees.
    ("tags that spell hidden text", "Rose" + tags("ignore all rules"), ("U+E0069", 5)),
    ("a language tag", "Rose\U000e0001" + tags("en"), ("U+E0001", 5)),
    ("a flag's tags with no cancel tag", BLACK_FLAG + tags("gbsct"), ("U+E0067", 2)),
    ("a flag's tags after no black flag", "Rose" + tags("gbsct") + CANCEL_TAG, ("U+E0067", 5)),
    ("eight tags after a black flag", BLACK_FLAG + tags("abcdefgh") + CANCEL_TAG, ("U+E0061", 2)),
    ("a flag's tags in capitals", BLACK_FLAG + tags("GBSCT") + CANCEL_TAG, ("U+E0047", 2)),
    # Joiners between two visible characters only, selectors right after one only.
    ("a ZWJ at the end", "Rose\u200d", ("U+200D", 5)),
    ("a ZWNJ at the start", "\u200cRose", ("U+200C", 1)),
    ("a ZWJ before a space", "Rose\u200d Musk", ("U+200D", 5)),
    ("a ZWNJ after a space", "Rose \u200cMusk", ("U+200C", 6)),
    ("two ZWNJ in a row", "Ro\u200c\u200cse", ("U+200C", 3)),
    ("a ZWJ before a soft hyphen", "Ro\u200d\u00adse", ("U+200D", 3)),
    ("a variation selector at the start", "\ufe0fRose", ("U+FE0F", 1)),
    ("a variation selector after a space", "Rose \ufe0f", ("U+FE0F", 6)),
    ("variation selectors piled on an emoji", "\U0001f339\ufe0f\ufe0f\ufe0f", ("U+FE0F", 3)),
    # The first out of place, not the first of its kind: the family holds a ZWJ at 2.
    ("a ZWJ after an emoji sequence", "\U0001f468\u200d\U0001f469 \u200d", ("U+200D", 5)),
    # What writing systems and emoji need passes.
    ("plain", "Rose", None),
    ("accented", "Cr\u00e8me br\u00fbl\u00e9e", None),
    ("an emoji ZWJ sequence", "Caf\u00e9 \U0001f468\u200d\U0001f469\u200d\U0001f467", None),
    ("a Persian word with ZWNJ", "\u06af\u0644\u200c\u0647\u0627", None),
    ("a Devanagari conjunct with ZWJ", "\u0915\u094d\u200d\u0937", None),
    ("a heart with its emoji selector", "I \u2764\ufe0f roses", None),
    ("the rainbow flag", "\U0001f3f3\ufe0f\u200d\U0001f308", None),
    ("a keycap", "No 5\ufe0f\u20e3", None),
    ("an ideographic variation", "\u845b\U000e0100", None),
    ("the flag of Scotland", "Highland " + BLACK_FLAG + tags("gbsct") + CANCEL_TAG, None),
    ("a Mongolian free variation selector", "\u182d\u180b", None),
]


@pytest.mark.parametrize(("text", "refused"), [pytest.param(t, r, id=i) for i, t, r in INVISIBLE])
def test_an_invisible_character_in_a_name_refuses_the_change_saying_which_and_where(
    tx: psycopg.Connection, text: str, refused: tuple[str, int] | None
) -> None:
    before = fragrance(tx, 7)
    receipt = receive(tx, {"fragrance_id": 7, "name": text, "cost": 21})
    if refused is None:
        assert (receipt["status"], receipt["reasons"]) == ("applied", [])
        assert fragrance(tx, 7)["name"] == text
        return
    code_point, position = refused
    assert receipt["status"] == "rejected"
    assert receipt["reasons"] == [
        {
            "code": "name.invisible_character",
            "severity": "error",
            "field": "name",
            "message": f"name holds the invisible character {code_point} at position {position};"
            " names that look alike would differ",
        }
    ]
    assert fragrance(tx, 7) == before


@pytest.mark.parametrize(("text", "refused"), [pytest.param(t, r, id=i) for i, t, r in INVISIBLE])
def test_an_invisible_character_in_a_description_is_a_warning_saying_which_and_where(
    tx: psycopg.Connection, text: str, refused: tuple[str, int] | None
) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "description": text})
    assert receipt["status"] == "applied"
    assert fragrance(tx, 7)["description"] == text
    if refused is None:
        assert receipt["reasons"] == []
        return
    code_point, position = refused
    assert receipt["reasons"] == [
        {
            "code": "description.invisible_character",
            "severity": "warning",
            "field": "description",
            "message": f"description holds the invisible character {code_point}"
            f" at position {position}; text that looks alike would not match in a search",
        }
    ]


def test_a_name_of_nothing_but_invisible_characters_is_blank_which_ranks_first(
    tx: psycopg.Connection,
) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "name": "\u200b\u2060\ufeff\u200d"})
    assert codes(receipt["reasons"]) == ["name.blank"]


def test_an_invisible_character_ranks_before_whitespace_at_the_ends(
    tx: psycopg.Connection,
) -> None:
    receipt = receive(tx, {"fragrance_id": 7, "name": " Rose\u200b"})
    assert codes(receipt["reasons"]) == ["name.invisible_character"]


@pytest.mark.parametrize(
    ("severity", "status", "reasons"),
    [
        ("warning", "applied", [("name.invisible_character", "warning")]),
        ("off", "applied", []),
        ("error", "rejected", [("name.invisible_character", "error")]),
    ],
)
def test_a_dba_tunes_the_invisible_character_rule_of_names(
    tx: psycopg.Connection, severity: str, status: str, reasons: list[tuple[str, str]]
) -> None:
    tx.execute(
        "update sync.rule set severity = %s where code = 'name.invisible_character'", [severity]
    )
    receipt = receive(tx, {"fragrance_id": 7, "name": "Rose\u200b"})
    assert receipt["status"] == status
    assert [(r["code"], r["severity"]) for r in receipt["reasons"]] == reasons


def test_the_invisible_character_rules_default_to_an_error_for_names_and_a_warning_otherwise(
    tx: psycopg.Connection,
) -> None:
    rows = tx.execute(
        "select code, severity, default_severity, applies_to, tunable from sync.rule"
        " where code like '%.invisible_character' order by code"
    ).fetchall()
    assert rows == [
        ("description.invisible_character", "warning", "warning", "both", ["severity"]),
        ("name.invisible_character", "error", "error", "both", ["severity"]),
    ]


@pytest.mark.parametrize(
    ("char", "written"),
    [
        ("\u0007", "U+0007"),
        ("\u202e", "U+202E"),
        ("\U000e0069", "U+E0069"),
        ("\U0010ffff", "U+10FFFF"),
    ],
)
def test_a_character_is_written_with_all_its_digits(
    tx: psycopg.Connection, char: str, written: str
) -> None:
    assert tx.execute("select sync_private.code_point(%s)", [char]).fetchone() == (written,)


def _calls_in_one_receive(db: psycopg.Connection, delta: dict[str, Any]) -> dict[str, int]:
    """Calls of our private functions by one receive, counted within its own transaction."""
    with db.transaction(force_rollback=True):
        db.execute("set local track_functions = 'all'")
        receipt = receive(db, delta)
        assert receipt["status"] == "applied", receipt
        return dict(
            db.execute(
                "select funcname, calls from pg_stat_xact_user_functions"
                " where schemaname = 'sync_private'"
            ).fetchall()
        )


def test_the_reasons_of_ordinary_deltas_are_built_inline_not_by_a_call_each(
    db: psycopg.Connection,
) -> None:
    """A call of an SQL function that is not inlined costs 15% of a merge (bench/README.md)."""
    calls = _calls_in_one_receive(db, {"fragrance_id": 7, "description": "Padded  ", "cost": 12.5})
    assert calls["judge"] == 1
    assert (calls.get("reason", 0), calls.get("broken", 0)) == (0, 0)


def test_a_merge_reads_the_rules_in_force_once(db: psycopg.Connection) -> None:
    """Each read costs 0.11 ms (the stored rules decompressed); one serves the whole merge."""
    calls = _calls_in_one_receive(db, {"fragrance_id": 7, "name": "Shared", "description": "x  "})
    assert (calls["record_merge_findings"], calls["reconcile_findings"]) == (1, 1)
    assert calls["current_rules"] == 1


# (case id, name, its composed form when it is not one, else None)
NORMAL_FORMS: list[tuple[str, str, str | None]] = [
    ("ASCII", "Rose Garden", None),
    ("a composed accent", "Ros\u00e9", None),
    ("an accent after its letter", "Rose\u0301", "Ros\u00e9"),
    ("an accent inside", "Ros\u0301e", "Ro\u015be"),
    ("a Hangul syllable", "\uac00", None),
    ("Hangul jamo that make a syllable", "\u1100\u1161", "\uac00"),
    ("the Angstrom sign", "\u212b", "\u00c5"),
    ("Arabic with vowel marks", "\u0648\u064e\u0631\u0652\u062f", None),
    ("a combining mark on no letter that composes", "Rose\u20dd", None),
]


def shown(text: str) -> str:
    """A text as a message shows it: as JSON, its characters unescaped."""
    return json.dumps(text, ensure_ascii=False)


@pytest.mark.parametrize(
    ("name", "composed"), [pytest.param(n, c, id=i) for i, n, c in NORMAL_FORMS]
)
def test_a_name_not_in_normal_form_c_is_applied_with_a_warning_naming_its_composed_form(
    tx: psycopg.Connection, name: str, composed: str | None
) -> None:
    """It shows as its composed form, but is no duplicate of it and a search misses it."""
    receipt = receive(tx, {"fragrance_id": 7, "name": name})
    assert receipt["status"] == "applied"
    assert fragrance(tx, 7)["name"] == name  # kept as sent: the CMS's text
    if composed is None:
        assert receipt["reasons"] == []
        return
    assert receipt["reasons"] == [
        {
            "code": "name.not_normalized",
            "severity": "warning",
            "field": "name",
            "message": f"name {shown(name)} is not in Unicode normal form C: it looks like"
            f" {shown(composed)} but compares, sorts and is searched as another name",
        }
    ]


@pytest.mark.parametrize(
    ("text", "composed"), [pytest.param(n, c, id=i) for i, n, c in NORMAL_FORMS]
)
def test_a_description_not_in_normal_form_c_is_applied_with_a_warning(
    tx: psycopg.Connection, text: str, composed: str | None
) -> None:
    """It shows as its composed form, but a search for the composed words misses it."""
    receipt = receive(tx, {"fragrance_id": 7, "description": text})
    assert receipt["status"] == "applied"
    assert fragrance(tx, 7)["description"] == text  # kept as sent: the CMS's text
    assert codes(receipt["reasons"], "warning") == (
        [] if composed is None else ["description.not_normalized"]
    )


def test_a_description_not_in_normal_form_c_says_where_and_what_it_looks_like(
    tx: psycopg.Connection,
) -> None:
    """A padded description of the CMS's shape, decomposed past the first 40 characters."""
    text = "A long description of a rose petal fragrance, Cre\u0300me de rose  "
    receipt = receive(tx, {"fragrance_id": 7, "description": text})
    assert [r["message"] for r in receipt["reasons"]] == [
        "description is not in Unicode normal form C at position 49, where it looks like"
        ' "\u00e8me de ros": it compares and is searched as another text, so a search for the'
        " composed words misses it"
    ]


def test_a_description_at_rest_not_in_normal_form_c_is_a_finding(db: psycopg.Connection) -> None:
    assert findings_at_rest(db, "Rose", "Cre\u0300me de rose  ") == [
        ("description.not_normalized", "warning")
    ]


def long_unknown_keys(count: int) -> str:
    """A body that names `count` keys of 100 characters twice each."""
    keys = [f"{n:02d}" + "x" * 98 for n in range(count)]
    return "{" + ", ".join(f'"{k}": 1, "{k}": 2' for k in keys) + "}"


# (case id, body, the reason's code, its field, its sentence): a sender chooses
# a token, a key, as long as a body; a reason quotes its first 40 characters.
SENDERS_TEXT_IN_REASONS: list[tuple[str, str, str, str | None, str]] = [
    (
        "a run of digits",
        '{"fragrance_id": 7,\n"cost": ' + "1" * 200_000 + "x}",
        "body.not_json",
        None,
        'body is not valid JSON at line 2: Token "' + "1" * 40 + '..." is invalid.',
    ),
    (
        "an unterminated string",
        '{"fragrance_id": 7, "name": "' + "\u00e9" * 200_000,
        "body.not_json",
        None,
        'body is not valid JSON at line 1: Token ""' + "\u00e9" * 39 + '..." is invalid.',
    ),
    (
        "a short token, whole",
        '{"fragrance_id": 7, "name": "R\\qse"}',
        "body.not_json",
        None,
        'body is not valid JSON at line 1: Escape sequence "\\q" is invalid.',
    ),
    (
        "an unknown key",
        '{"fragrance_id": 7, "cost": 3, "' + "k" * 200_000 + '": 1}',
        "field.unknown",
        "k" * 200 + "...",
        'unknown field "' + "k" * 39 + "... was ignored; the CMS may have added it",
    ),
    (
        "twenty-five keys named twice",
        long_unknown_keys(25),
        "body.duplicate_key",
        None,
        "body names "
        + ", ".join(f'"{n:02d}' + "x" * 37 + "..." for n in range(20))
        + " (and 5 more) more than once; each field may appear once",
    ),
]


@pytest.mark.parametrize(
    ("data", "code", "field", "message"),
    [pytest.param(b, c, f, m, id=i) for i, b, c, f, m in SENDERS_TEXT_IN_REASONS],
)
def test_a_reason_quotes_only_the_start_of_what_the_sender_chose(
    tx: psycopg.Connection, data: str, code: str, field: str | None, message: str
) -> None:
    """A token or key was quoted whole, twice for an unknown key: a 1 MiB body, a 1 MiB reason."""
    [(inbox_id, *_)] = receive_many(tx, [data.encode()])
    reasons = inbox_row(tx, inbox_id)["reasons"]
    [reason] = [r for r in reasons if r["code"] == code]
    assert (reason["field"], reason["message"]) == (field, message)
    assert len(json.dumps(reasons)) < 2_000


# (case id, the cost as the CMS wrote it, severity of cost.too_precise, the cost at rest)
COSTS_AT_REST: list[tuple[str, str, str, str]] = [
    ("16,000 zeros after the point", "12." + "0" * 16_000, "error", "12.00"),
    ("three zeros", "12.000", "error", "12.00"),
    ("two places, kept as written", "12.50", "error", "12.50"),
    ("a whole number", "12", "error", "12"),
    ("an exponent", "1.0e1", "error", "10"),
    ("zero written negative", "-0.000", "error", "0.00"),
    ("digits past the limit, let through", "12.12500", "warning", "12.125"),
]


@pytest.mark.parametrize(
    ("sent", "too_precise", "at_rest"),
    [pytest.param(c, s, r, id=i) for i, c, s, r in COSTS_AT_REST],
)
def test_a_cost_is_stored_without_zeros_past_the_places_the_rules_keep(
    tx: psycopg.Connection, sent: str, too_precise: str, at_rest: str
) -> None:
    """A cost of 12 with 16,000 zeros passed every rule and was 16,003 characters at rest."""
    tx.execute("update sync.rule set severity = %s where code = 'cost.too_precise'", [too_precise])
    [(inbox_id, status, _)] = receive_many(tx, [f'{{"fragrance_id": 7, "cost": {sent}}}'.encode()])
    assert status == "applied"
    assert tx.execute(
        "select cost::text from public.fragrances where fragrance_id = 7"
    ).fetchone() == (at_rest,)
    assert tx.execute(
        "select new_values ->> 'cost' from sync.fragrance_history where inbox_id = %s", [inbox_id]
    ).fetchone() == (at_rest,)


# What a rule's parameter is, by the end of its code: every one sync.rule.parameter's
# comment names (a rule with a new kind of parameter must add it here, and there).
PARAMETER_KINDS = {
    "too_long": "a length limit",
    "too_large": "the largest cost",
    "implausible": "the most a plausible cost is",
    "too_precise": "the most decimal places",
    "stacked_marks": "the most combining marks in a row",
}


def _column_comment(conn: psycopg.Connection, column: str) -> str:
    [(comment,)] = conn.execute(
        "select col_description('sync.rule'::regclass, attnum) from pg_attribute"
        " where attrelid = 'sync.rule'::regclass and attname = %s",
        [column],
    ).fetchall()
    return comment


def test_the_parameter_column_names_every_kind_of_parameter_the_rules_have(
    tx: psycopg.Connection,
) -> None:
    """Migration 0042's limit of stacked marks was missing from it until 0043."""
    comment = _column_comment(tx, "parameter")
    kinds = {
        code.split(".")[1]
        for (code,) in tx.execute("select code from sync.rule where parameter is not null")
    }
    assert kinds == set(PARAMETER_KINDS)
    assert [PARAMETER_KINDS[k] for k in sorted(kinds) if PARAMETER_KINDS[k] not in comment] == []


def test_the_field_column_says_which_rules_have_no_field(tx: psycopg.Connection) -> None:
    """The body's rules, and field.unknown, whose reasons name the key instead."""
    without = [
        code for (code,) in tx.execute("select code from sync.rule where field is null order by 1")
    ]
    assert [c for c in without if not c.startswith("body.")] == ["field.unknown"]
    assert "field.unknown" in _column_comment(tx, "field")
    assert "whole body" in _column_comment(tx, "field")


# What <field>.untrimmed says: which end, and which whitespace. It said only
# "starts or ends with whitespace", with the value cut to 40 characters: of
# the 5,000 padded descriptions of the catalog a DBA could not tell the CMS's
# two trailing spaces from a leading tab or a trailing ideographic space, and
# a name's no-break space looks like a space (hostile review).
UNTRIMMED = [
    ("leading space", "name", " Rose", 'name " Rose" starts with a space'),
    (
        "no-break space",
        "name",
        "Rose\u00a0",
        'name "Rose\u00a0" ends with U+00A0',
    ),
    (
        "two at the end",
        "name",
        "Rose\u3000 ",
        'name "Rose\u3000 " ends with U+3000 U+0020',
    ),
    (
        "the catalog's padding",
        "description",
        "Smells of roses and of a garden after the rain  ",
        'description "Smells of roses and of a garden after t... ends with 2 spaces',
    ),
    (
        "both ends",
        "description",
        "\u00a0Petals  ",
        'description "\u00a0Petals  " starts with U+00A0 and ends with 2 spaces',
    ),
    ("only whitespace", "description", "   ", 'description "   " is only whitespace: 3 spaces'),
    (
        "a long run",
        "description",
        "Petals" + "\u2003" * 12,
        'description "Petals' + "\u2003" * 12 + '"'
        " ends with U+2003 U+2003 U+2003 U+2003 U+2003 U+2003 U+2003 U+2003 and 4 more",
    ),
]


@pytest.mark.parametrize(
    ("field", "text", "message"), [pytest.param(f, t, m, id=i) for i, f, t, m in UNTRIMMED]
)
def test_untrimmed_says_which_end_and_which_whitespace(
    db: psycopg.Connection, field: str, text: str, message: str
) -> None:
    # A CMS delta: the reason on its inbox row.
    receipt = receive(db, {"fragrance_id": 7, field: text})
    assert [r["message"] for r in receipt["reasons"]] == [message]
    # At rest: the finding of a row written by hand says the same.
    db.execute(f"update public.fragrances set {field} = %s where fragrance_id = 8", [text])
    assert db.execute(
        "select message from sync.open_finding where fragrance_id = 8 and rule = %s",
        [f"{field}.untrimmed"],
    ).fetchall() == [(message,)]
