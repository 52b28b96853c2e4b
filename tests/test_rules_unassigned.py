"""Code points Unicode assigns no character to, table-driven.

"Rose" with U+0378, or a code point of the unassigned planes 4 to 13, passed
every rule: no font draws it, so the application shows a box or nothing, and
names that look alike differ. Such a text is name.unassigned_character and
description.unassigned_character, both warnings: a character assigned after
the Unicode the class was generated from (18) would read as unassigned, so
nothing is refused; the delivery is told and the row at rest is a finding.
Judged on the hook's path (a batch through sync.receive_many) and at rest
(sync.check_catalog). The class is spelled out by code point
(devtools/unassigned_class.py); these tests hold it to the generator's.
"""

from __future__ import annotations

import psycopg
import pytest
from conftest import ROOT
from helpers import findings_at_rest, prepared_messages, receipt_codes

from devtools.unassigned_class import class_sql, is_unassigned

# (case id, a text holding an unassigned code point).
UNASSIGNED: list[tuple[str, str]] = [
    ("a gap in the Greek block", "Ros\u0378e"),
    ("a gap in the Thai block", "\u0e01\u0e3b"),
    ("the first code point of plane 4", "Rose \U00040000"),
    ("the end of the Hangul Jamo Extended-B block", "\ud55c\ud7fc"),
    ("after a Unicode 15 emoji", "\U0001fae8\u0378"),
]
UNASSIGNED_IDS = [case for case, _ in UNASSIGNED]

# (case id, a text of characters Unicode assigned after Python 3.11's Unicode 14).
ASSIGNED_SINCE_14: list[tuple[str, str]] = [
    ("the shaking face emoji, Unicode 15", "Rose \U0001fae8"),
    ("a Kawi letter, Unicode 15", "\U00011f04"),
    ("a CJK extension H ideograph, Unicode 15", "\U00031350"),
    ("a Tolong Siki letter, Unicode 17", "\U00011db0"),
]


@pytest.mark.parametrize("name", [n for _, n in UNASSIGNED], ids=UNASSIGNED_IDS)
def test_a_name_with_an_unassigned_code_point_is_applied_with_a_warning(
    tx: psycopg.Connection, name: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == ["name.unassigned_character:warning"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() == (
        name,
    )


@pytest.mark.parametrize("text", [n for _, n in UNASSIGNED], ids=UNASSIGNED_IDS)
def test_a_description_with_an_unassigned_code_point_is_a_warning(
    tx: psycopg.Connection, text: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == ["description.unassigned_character:warning"]


@pytest.mark.parametrize("name", [n for _, n in UNASSIGNED], ids=UNASSIGNED_IDS)
def test_a_row_at_rest_with_an_unassigned_code_point_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, name: str
) -> None:
    assert findings_at_rest(db, name, name) == [
        ("description.unassigned_character", "warning"),
        ("name.unassigned_character", "warning"),
    ]


@pytest.mark.parametrize(
    "name", [n for _, n in ASSIGNED_SINCE_14], ids=[c for c, _ in ASSIGNED_SINCE_14]
)
def test_a_character_assigned_since_pythons_unicode_passes(
    tx: psycopg.Connection, name: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == []


@pytest.mark.parametrize(
    ("name", "told_as"),
    [
        pytest.param("Rose\ufdd0", "name.control_character:error", id="a noncharacter"),
        pytest.param("Rose\U0010fffe", "name.control_character:error", id="a plane's last two"),
        pytest.param("Rose\ue000", "name.invisible_character:error", id="a private-use character"),
        # Default ignorable, as the rest of the tags' block: invisible, not unassigned.
        pytest.param("Rose\U000e0080", "name.invisible_character:error", id="a gap among the tags"),
    ],
)
def test_a_code_point_another_rule_reports_is_not_told_unassigned(
    tx: psycopg.Connection, name: str, told_as: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == [told_as]


def test_an_error_of_the_same_name_is_told_before_the_warning(tx: psycopg.Connection) -> None:
    """A name with a bell and an unassigned code point is refused for the bell."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "Ros\u0378e\u0007"}])
    assert reasons == ["name.control_character:error"]


def test_the_sentence_names_the_code_point_and_where_it_stands(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "\u00c9t\u00e9 \U00040000"}) == [
        "name holds U+40000 at position 5, a code point Unicode assigns no character to:"
        " no font draws it, so it shows as a box or nothing"
    ]


def test_the_rules_are_warnings_a_dba_can_turn_up_or_off(tx: psycopg.Connection) -> None:
    rows = tx.execute(
        "select code, severity, default_severity, applies_to, tunable, parameter from sync.rule"
        " where code like '%.unassigned_character' order by code"
    ).fetchall()
    assert rows == [
        ("description.unassigned_character", "warning", "warning", "both", ["severity"], None),
        ("name.unassigned_character", "warning", "warning", "both", ["severity"], None),
    ]


def test_the_ranges_in_the_database_are_the_generators() -> None:
    """After an upgrade of the regex package: python -m devtools.unassigned_class --write."""
    assert class_sql() in (ROOT / "db" / "10-rules.sql").read_text()


def test_the_class_in_the_database_holds_the_generators_code_points(tx: psycopg.Connection) -> None:
    """Every code point but the surrogates, in the database's class or not, as regex says."""
    [(in_database,)] = tx.execute(
        "select array_agg(c order by c) from generate_series(1, 1114111) as c"
        " where (c < 55296 or c > 57343)"
        " and sync_private.first_unassigned(chr(c)) is not null"
    ).fetchall()
    expected = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF and is_unassigned(c)]
    assert len(expected) > 790_000
    missing = sorted(set(expected) - set(in_database))
    extra = sorted(set(in_database) - set(expected))
    assert ([f"U+{c:04X}" for c in missing[:20]], [f"U+{c:04X}" for c in extra[:20]]) == ([], [])
