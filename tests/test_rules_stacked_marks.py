"""Combining marks stacked on one character ("Zalgo" text), table-driven: <field>.stacked_marks.

"o" under dozens of accents, or "Rose" with ten enclosing circles, passed every
rule before review: the application draws the marks one over the other, over
the lines above and below the name. A run of more combining marks than the
rule's parameter (5 by default) is name.stacked_marks, an error, and
description.stacked_marks, a warning. Legitimate text stacks fewer, and passes.
Judged on the hook's path (a batch through sync.receive_many, as sync.store_many
and the merger judge it) and at rest (sync.check_catalog on rows loaded without
the write triggers, as an adopted catalog arrives). The class of marks is
spelled out by code point (devtools/mark_class.py); these tests hold it to
Python's Unicode data too.
"""

from __future__ import annotations

import unicodedata

import psycopg
import pytest
from conftest import ROOT
from helpers import (
    findings_at_rest,
    prepared_messages,
    raises_sqlstate,
    receipt_codes,
)

from devtools.mark_class import DRAW_NOTHING, class_sql

GRAVE_TO_ACUTE = "".join(chr(c) for c in range(0x0300, 0x0320))

# (case id, name): each stacks more than 5 marks on one character.
ZALGO: list[tuple[str, str]] = [
    ("o under 32 accents", "o" + GRAVE_TO_ACUTE),
    ("Rose with ten enclosing circles", "Rose" + "\u20dd" * 10),
    ("every letter under 8 accents", "".join(c + GRAVE_TO_ACUTE[:8] for c in "Zalgo")),
    ("one mark more than the limit", "Ros\u00e9" + GRAVE_TO_ACUTE[:6]),
    ("a Thai tone mark ten times", "\u0e01" + "\u0e49" * 10),
    ("Cyrillic enclosing marks", "Rose" + "\u0488\u0489" * 3),
    ("marks of the supplement and extended blocks", "a" + "\u1dc0\u1dc1\u1dc2\u1ab0\u1ab1\u1ab2"),
    ("combining half marks", "Rose" + "\ufe20\ufe21" * 3),
    ("Hebrew accents piled on a Latin letter", "e" + "\u0591\u0592\u0593\u0594\u0595\u0596"),
    ("a run after a legitimate name", "Nguy\u1ec5n " + "x" + "\u0301" * 12),
]
ZALGO_IDS = [case for case, _ in ZALGO]


@pytest.mark.parametrize("name", [n for _, n in ZALGO], ids=ZALGO_IDS)
def test_a_name_with_marks_stacked_on_one_character_is_refused(
    tx: psycopg.Connection, name: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == ["name.stacked_marks:error"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() != (
        name,
    )


@pytest.mark.parametrize("text", [n for _, n in ZALGO], ids=ZALGO_IDS)
def test_a_description_with_marks_stacked_on_one_character_is_a_warning(
    tx: psycopg.Connection, text: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == ["description.stacked_marks:warning"]


@pytest.mark.parametrize("name", [n for _, n in ZALGO], ids=ZALGO_IDS)
def test_a_row_at_rest_with_stacked_marks_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, name: str
) -> None:
    assert findings_at_rest(db, name, name) == [
        ("description.stacked_marks", "warning"),
        ("name.stacked_marks", "error"),
    ]


def test_the_sentence_says_how_many_marks_where_and_the_limit(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "Rose" + "\u20dd" * 10}) == [
        "name holds 10 combining marks in a row at position 5, stacked on one character;"
        " the limit is 5: more are drawn over the text around it"
    ]


# (case id, a name in NFC): legitimate text stacks at most 5 marks on a character.
LEGITIMATE: list[tuple[str, str]] = [
    ("Vietnamese", "Nguy\u1ec5n Th\u1ecb Ng\u1ecdc \u00c1nh"),
    ("Hebrew with points", "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd"),
    # Shin with its dot, dagesh, qamats, meteg and an accent: 5 marks on one letter.
    (
        "Hebrew with points and cantillation",
        "\u05e9\u05bc\u05c1\u05b8\u05bd\u0596\u05dc\u05d5\u05b9\u05dd",
    ),
    (
        "Thai with vowels and tone marks",
        "\u0e19\u0e49\u0e33\u0e2b\u0e2d\u0e21 \u0e17\u0e35\u0e48\u0e2a\u0e38\u0e14",
    ),
    (
        "Devanagari with nukta, vowel and candrabindu",
        "\u0915\u093c\u0942\u0901 \u0939\u093f\u0902\u0926\u0940",
    ),
    ("Tibetan stacks", "\u0f56\u0f66\u0f92\u0fb2\u0f74\u0f56\u0f66 \u0f67\u0f71\u0f74\u0f83"),
    ("Arabic with harakat and shadda", "\u0645\u064f\u062d\u064e\u0645\u0651\u064e\u062f"),
    ("an emoji keycap", "No 1\ufe0f\u20e3"),
    ("a mark on every letter", "".join(c + "\u0301\u0308" for c in "Rose")),
]


@pytest.mark.parametrize(
    "name", [unicodedata.normalize("NFC", n) for _, n in LEGITIMATE], ids=[c for c, _ in LEGITIMATE]
)
def test_legitimate_scripts_pass_as_names_and_descriptions(
    tx: psycopg.Connection, name: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name, "description": name}])
    assert reasons == []


# (case id, a name in NFD): a warning that it is not composed, nothing about its marks.
DECOMPOSED: list[tuple[str, str]] = [
    ("Vietnamese in NFD", "Nguy\u1ec5n Th\u1ecb Ng\u1ecdc \u00c1nh \u1ec7"),
    ("pinyin in NFD", "l\u01da"),
    ("French in NFD", "Ros\u00e9e \u00e0 l'\u00e2me"),
]


@pytest.mark.parametrize(
    "name", [unicodedata.normalize("NFD", n) for _, n in DECOMPOSED], ids=[c for c, _ in DECOMPOSED]
)
def test_a_decomposed_name_is_only_not_normalized(tx: psycopg.Connection, name: str) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name, "description": name}])
    assert reasons == ["name.not_normalized:warning", "description.not_normalized:warning"]


# (case id, the limit set by a DBA, a name, the reasons it gets)
TUNED: list[tuple[str, int, str, list[str]]] = [
    ("raised to 7, six marks pass", 7, "Ros\u00e9" + GRAVE_TO_ACUTE[:6], []),
    (
        "raised to 7, eight are refused",
        7,
        "Rose" + GRAVE_TO_ACUTE[:8],
        ["name.stacked_marks:error"],
    ),
    (
        "lowered to 2, a Tibetan stack of 3 is refused",
        2,
        "\u0f56\u0f66\u0f92\u0fb2\u0f74",
        ["name.stacked_marks:error"],
    ),
    (
        "lowered to 2, Vietnamese in NFD passes",
        2,
        unicodedata.normalize("NFD", "\u1ec7"),
        ["name.not_normalized:warning"],
    ),
    ("the least, 1, refuses two marks", 1, "e\u0301\u0308", ["name.stacked_marks:error"]),
    ("the most, 30, lets 30 pass", 30, "Rose" + "\u20dd" * 30, []),
]


@pytest.mark.parametrize(
    ("limit", "name", "expected"),
    [(limit, n, e) for _, limit, n, e in TUNED],
    ids=[c for c, _, _, _ in TUNED],
)
def test_a_dba_tunes_the_limit_with_one_update(
    tx: psycopg.Connection, limit: int, name: str, expected: list[str]
) -> None:
    tx.execute("update sync.rule set parameter = %s where code = 'name.stacked_marks'", [limit])
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == expected


@pytest.mark.parametrize("limit", [0, 31, 2.5, None])
def test_a_limit_outside_its_bounds_is_refused(tx: psycopg.Connection, limit: float | None) -> None:
    with raises_sqlstate("FS073", "takes a whole number from 1 to 30"):
        tx.execute("update sync.rule set parameter = %s where code = 'name.stacked_marks'", [limit])


# The 10th text rule ranks as the 9 before it: errors before warnings, then by position.
# (case id, severity of name.stacked_marks, a name, the one reason it gets)
RANKED: list[tuple[str, str, str, str]] = [
    ("an error alone", "error", "Rose" + "\u20dd" * 10, "name.stacked_marks:error"),
    (
        "an error after two warnings (untrimmed, not normalized)",
        "error",
        " Rose" + "\u0301" + "\u20dd" * 10,
        "name.stacked_marks:error",
    ),
    (
        "after an earlier error",
        "error",
        "Ro\u200bse" + "\u20dd" * 10,
        "name.invisible_character:error",
    ),
    ("a warning alone", "warning", "Rose" + "\u20dd" * 10, "name.stacked_marks:warning"),
    (
        "a warning after an earlier warning",
        "warning",
        "Rose" + "\u20dd" * 10 + " ",
        "name.untrimmed:warning",
    ),
    (
        "a warning after an earlier error",
        "warning",
        "Ro\u200bse" + "\u20dd" * 10,
        "name.invisible_character:error",
    ),
    ("off: the next rule", "off", " Rose" + "\u20dd" * 10, "name.untrimmed:warning"),
]


@pytest.mark.parametrize(
    ("severity", "name", "reason"),
    [(s, n, r) for _, s, n, r in RANKED],
    ids=[c for c, _, _, _ in RANKED],
)
def test_the_tenth_text_rule_ranks_by_severity_then_position(
    tx: psycopg.Connection, severity: str, name: str, reason: str
) -> None:
    tx.execute("update sync.rule set severity = %s where code = 'name.stacked_marks'", [severity])
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == [reason]


def test_the_ranges_in_the_database_are_the_generators() -> None:
    """After an upgrade of Python's Unicode data: python -m devtools.mark_class --write."""
    assert class_sql() in (ROOT / "db" / "10-rules.sql").read_text()


def _drawn_nothing(code_point: int) -> bool:
    return any(first <= code_point <= last for first, last in DRAW_NOTHING)


def test_every_nonspacing_and_enclosing_mark_stacks_and_no_spacing_mark_or_selector_does(
    tx: psycopg.Connection,
) -> None:
    """Six of one mark on a letter is a run of six; six spacing marks or selectors are none."""
    marks = [
        c
        for c in range(1, 0x110000)
        if unicodedata.category(chr(c)) in ("Mn", "Me") and not _drawn_nothing(c)
    ]
    others = [
        c for c in range(1, 0x110000) if unicodedata.category(chr(c)) == "Mc" or _drawn_nothing(c)
    ]
    rows = tx.execute(
        "select c, sync_private.stacked_marks('a' || repeat(chr(c), 6), 5) is not null"
        " from unnest(%s::integer[]) as c",
        [marks + others],
    ).fetchall()
    stacked = {c for c, is_stacked in rows if is_stacked}
    assert [f"U+{c:04X}" for c in marks if c not in stacked] == []
    assert [f"U+{c:04X}" for c in others if c in stacked] == []
