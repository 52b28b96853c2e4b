"""Characters that stand for one lost before the text reached the CMS, table-driven.

"Cr\ufffdme Noir" passed every rule: U+FFFD is the character a decoder writes for bytes
it could not read ("Crème" saved as Windows-1252 and read as UTF-8), U+FFFC the placeholder
an editor leaves where an image or another object was pasted. Both are drawn (a diamond
with a question mark, a box), so no other rule saw them, and what stood there cannot be
read back from the row. name.replacement_character is an error, description's a warning
(the CMS sends the description whole with every edit). Judged on the hook's path (a batch
through sync.receive_many) and at rest (sync.check_catalog).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from helpers import (
    findings_at_rest,
    fragrance,
    prepared_messages,
    receipt_codes,
)

# (case id, a text holding a character that stands for a lost one).
LOST: list[tuple[str, str]] = [
    ("Windows-1252 read as UTF-8", "Crème Noir".encode("cp1252").decode("utf-8", "replace")),
    ("a lone replacement character", "\ufffd"),
    ("at the end", "Rose\ufffd"),
    ("a pasted image's placeholder", "Rose \ufffc Noir"),
    ("after a non-Latin script", "\u0440\u043e\u0437\u0430\ufffd"),
]
LOST_IDS = [case for case, _ in LOST]

# (case id, a text of characters beside those two, which no rule reports).
KEPT: list[tuple[str, str]] = [
    ("question marks", "\u00bfRosa?"),
    ("the question mark ornament emoji", "Rose \u2753"),
    ("a white diamond", "Rose \u25c7"),
    ("the halfwidth white circle, U+FFEE", "Rose \uffee"),
]


@pytest.mark.parametrize("name", [n for _, n in LOST], ids=LOST_IDS)
def test_a_name_holding_a_lost_character_is_refused(tx: psycopg.Connection, name: str) -> None:
    before = fragrance(tx, 7)
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name, "forbidden": True}])
    assert reasons == ["name.replacement_character:error"]
    assert fragrance(tx, 7) == before


@pytest.mark.parametrize("text", [n for _, n in LOST], ids=LOST_IDS)
def test_a_description_holding_a_lost_character_is_applied_with_a_warning(
    tx: psycopg.Connection, text: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == ["description.replacement_character:warning"]
    assert fragrance(tx, 7)["description"] == text


@pytest.mark.parametrize("text", [n for _, n in LOST], ids=LOST_IDS)
def test_a_row_at_rest_holding_a_lost_character_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, text: str
) -> None:
    assert findings_at_rest(db, text, text) == [
        ("description.replacement_character", "warning"),
        ("name.replacement_character", "error"),
    ]


@pytest.mark.parametrize("name", [n for _, n in KEPT], ids=[c for c, _ in KEPT])
def test_a_character_that_only_looks_like_a_placeholder_passes(
    tx: psycopg.Connection, name: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == []


def test_an_error_told_before_it_is_told_first(tx: psycopg.Connection) -> None:
    """A name with a bell and a replacement character is refused for the bell, as before."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "Ros\ufffde\u0007"}])
    assert reasons == ["name.control_character:error"]


def test_it_outranks_a_warning_told_before_it(tx: psycopg.Connection) -> None:
    """An untrimmed name that lost a character is refused, not only warned of."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "Ros\ufffd "}])
    assert reasons == ["name.replacement_character:error"]


@pytest.mark.parametrize(
    ("delta", "sentence"),
    [
        pytest.param(
            {"fragrance_id": 1, "name": "Cr\ufffdme"},
            "name holds U+FFFD at position 3, the replacement character a decoder writes for"
            " bytes it could not read: what stood there was lost before it reached the CMS",
            id="replacement",
        ),
        pytest.param(
            {"fragrance_id": 1, "description": "See \ufffc below"},
            "description holds U+FFFC at position 5, the placeholder an editor leaves for a"
            " pasted image or object: what stood there was lost before it reached the CMS",
            id="object",
        ),
    ],
)
def test_the_sentence_names_the_character_where_it_stands_and_what_it_means(
    tx: psycopg.Connection, delta: dict[str, Any], sentence: str
) -> None:
    assert prepared_messages(tx, delta) == [sentence]


def test_a_dba_can_turn_the_name_rule_down_to_a_warning(tx: psycopg.Connection) -> None:
    tx.execute(
        "update sync.rule set severity = 'warning' where code = 'name.replacement_character'"
    )
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "Cr\ufffdme"}])
    assert reasons == ["name.replacement_character:warning"]
    assert fragrance(tx, 7)["name"] == "Cr\ufffdme"


def test_the_rules_are_tunable_by_severity(tx: psycopg.Connection) -> None:
    rows = tx.execute(
        "select code, severity, default_severity, applies_to, tunable, parameter from sync.rule"
        " where code like '%.replacement_character' order by code"
    ).fetchall()
    assert rows == [
        ("description.replacement_character", "warning", "warning", "both", ["severity"], None),
        ("name.replacement_character", "error", "error", "both", ["severity"], None),
    ]
