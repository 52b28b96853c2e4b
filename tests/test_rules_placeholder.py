"""Placeholders left where no value was given, table-driven.

A name "undefined" or "[object Object]", a description "Lorem ipsum dolor sit amet"
passed every rule: valid text. They are what a form, a script or a draft leaves where no
value was given (JavaScript writes "undefined", "null", "NaN" and "[object Object]" for a
missing value or an object turned into text; an API's documentation page sends "string"
when tried as it stands), and the application showed them as the fragrance's. Such a
text is name.placeholder or description.placeholder, both warnings: told on the
delivery, a finding at rest, never refused. Judged on the hook's path (a batch through
sync.receive_many) and at rest (sync.check_catalog).

A text of punctuation alone ("?", "...", "\u2014") passed every rule too, and is the
placeholder an editor types where a form wants a value: the same rule (hostile review).
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import findings_at_rest, prepared_messages, receipt_codes

# (case id, a placeholder).
PLACEHOLDERS: list[tuple[str, str]] = [
    ("JavaScript's undefined", "undefined"),
    ("null as text", "null"),
    ("NULL in capitals", "NULL"),
    ("an object turned into text", "[object Object]"),
    ("NaN", "NaN"),
    ("an API page's example value", "string"),
    ("None", "None"),
    ("nil", "nil"),
    ("n/a", "N/A"),
    ("TBD", "TBD"),
    ("TBA", "tba"),
    ("TODO", "TODO"),
    ("FIXME", "FIXME"),
    ("test", "Test"),
    ("xxx", "XXX"),
    ("untitled", "Untitled"),
    ("Lorem ipsum alone", "Lorem ipsum"),
    ("Lorem ipsum to start a text", "Lorem ipsum dolor sit amet, consectetur adipiscing elit"),
    ("lorem ipsum in small letters", "lorem ipsum dolor"),
    # Punctuation alone: what an editor types where a value is not known.
    ("a question mark", "?"),
    ("question marks", "???"),
    ("a full stop", "."),
    ("three full stops", "..."),
    ("the ellipsis character", "\u2026"),
    ("an em dash", "\u2014"),
    ("a slash", "/"),
    ("an underscore", "_"),
    ("quotes", '""'),
    ("punctuation between spaces", "? ?"),
    ("Spanish question marks", "\u00bf?"),
    ("a full-width question mark", "\uff1f"),
    ("a Japanese full stop", "\u3002"),
]
IDS = [case for case, _ in PLACEHOLDERS]

# (case id, a text that holds such a word among others, or is a name a fragrance may have).
NAMES: list[tuple[str, str]] = [
    ("a word of the list among others", "Test of Time"),
    ("null inside a word", "Nullarbor"),
    ("Nonesuch", "Nonesuch"),
    ("a sample", "Sample"),
    ("an example", "Example"),
    ("the default", "Default"),
    ("Lorem ipsum not at the start", "Rose, lorem ipsum"),
    ("a string quartet", "String Quartet"),
    ("Nan, a name", "Nana"),
    # Punctuation beside a letter, a digit or another symbol is a name.
    ("punctuation before a word", "?!Rose"),
    ("a number", "No. 5"),
    ("digits and a point", "1.5"),
    ("a heart of a less-than sign and a digit", "<3"),
    ("an emoji", "\U0001f339"),
    ("a star", "\u2605"),
    ("Japanese with its full stop", "\u8594\u8587\u3002"),
    ("a name in quotes", '"Rose"'),
]


@pytest.mark.parametrize("name", [n for _, n in PLACEHOLDERS], ids=IDS)
def test_a_placeholder_name_is_applied_with_a_warning(tx: psycopg.Connection, name: str) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == ["name.placeholder:warning"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() == (
        name,
    )


@pytest.mark.parametrize("text", [n for _, n in PLACEHOLDERS], ids=IDS)
def test_a_padded_placeholder_description_is_a_warning(tx: psycopg.Connection, text: str) -> None:
    """Padded as the CMS's are: told for the placeholder, not the padding."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text + "  "}])
    assert reasons == ["description.placeholder:warning"]


@pytest.mark.parametrize("name", [n for _, n in PLACEHOLDERS], ids=IDS)
def test_a_row_at_rest_holding_a_placeholder_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, name: str
) -> None:
    assert findings_at_rest(db, name, name) == [
        ("description.placeholder", "warning"),
        ("name.placeholder", "warning"),
    ]


@pytest.mark.parametrize("text", [n for _, n in NAMES], ids=[case for case, _ in NAMES])
def test_a_name_that_only_holds_such_a_word_passes(tx: psycopg.Connection, text: str) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": text, "description": text}])
    assert reasons == []


def test_a_padded_name_is_told_for_its_padding_first(tx: psycopg.Connection) -> None:
    """name.untrimmed ranks before it: both warnings, the first one is told."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": " undefined "}])
    assert reasons == ["name.untrimmed:warning"]


def test_the_sentence_says_what_the_application_shows(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "[object Object]"}) == [
        'name is "[object Object]", a placeholder left where no value was given (by a form,'
        " a script or a draft): the application shows it as the name"
    ]


def test_the_rules_are_warnings_a_dba_can_turn_up_or_off(tx: psycopg.Connection) -> None:
    rows = tx.execute(
        "select code, severity, default_severity, applies_to, tunable, parameter from sync.rule"
        " where code like '%.placeholder' order by code"
    ).fetchall()
    assert rows == [
        ("description.placeholder", "warning", "warning", "both", ["severity"], None),
        ("name.placeholder", "warning", "warning", "both", ["severity"], None),
    ]


def test_a_dba_who_turns_the_name_rule_to_an_error_refuses_the_edit(
    tx: psycopg.Connection,
) -> None:
    tx.execute("update sync.rule set severity = 'error' where code = 'name.placeholder'")
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "undefined", "forbidden": True}])
    assert reasons == ["name.placeholder:error"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() != (
        "undefined",
    )
