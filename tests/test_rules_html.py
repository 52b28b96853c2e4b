"""HTML tags and character references left in a plain text, table-driven.

A name "Rose &amp; Oud" or "<b>Rose</b>", a description "<p>Petals</p>", passed every
rule: valid text. It is markup a rich-text editor, or an export that escapes for a web
page, left in a plain text; the application shows it as characters (or runs it, were it
to write the text into a page unescaped), and a data scientist's search for "Rose & Oud"
misses it. Such a text is name.html or description.html, both warnings: told on the
delivery, a finding at rest, never refused. Judged on the hook's path (a batch through
sync.receive_many) and at rest (sync.check_catalog).
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import findings_at_rest, prepared_messages, receipt_codes

# (case id, a text holding markup).
MARKUP: list[tuple[str, str]] = [
    ("an escaped ampersand", "Rose &amp; Oud"),
    ("an escaped apostrophe, decimal", "Rose&#39;s Garden"),
    ("an escaped apostrophe, hex", "Rose&#x27;s Garden"),
    ("an escaped apostrophe, capital X", "Rose&#X27;s Garden"),
    ("an escaped accent", "Cr&egrave;me de Rose"),
    ("a no-break space escaped", "Rose&nbsp;Oud"),
    ("an escaped quote", "&quot;Noir&quot;"),
    ("a bold tag", "<b>Rose</b>"),
    ("a closing tag alone", "Rose</p>"),
    ("a paragraph with attributes", '<p class="x">Petals</p>'),
    ("a line break tag", "Rose<br/>Oud"),
    ("a comment", "Rose <!-- draft -->"),
    ("a script's image", "<img src=x onerror=alert(1)>"),
]
IDS = [case for case, _ in MARKUP]

# (case id, a text that holds "<", ">" or "&" and no markup).
PLAIN: list[tuple[str, str]] = [
    ("an ampersand between words", "Rose & Oud"),
    ("an ampersand in a word", "R&D"),
    ("an ampersand and a semicolon apart", "Rose & Oud; Amber"),
    ("a heart", "<3 Rose"),
    ("a comparison", "a < b and c > d"),
    ("angle brackets around nothing", "Rose <> Oud"),
    ("angle brackets around a number", "Rose <5>"),
    ("a lone ampersand before a semicolon", "Rose &; Oud"),
    ("one letter between & and ;", "A&B; C"),
    ("a hash with no digit", "Rose &#; Oud"),
    ("an arrow", "Rose -> Oud"),
]


@pytest.mark.parametrize("name", [n for _, n in MARKUP], ids=IDS)
def test_a_name_holding_markup_is_applied_with_a_warning(tx: psycopg.Connection, name: str) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == ["name.html:warning"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() == (
        name,
    )


@pytest.mark.parametrize("text", [n for _, n in MARKUP], ids=IDS)
def test_a_padded_description_holding_markup_is_a_warning(
    tx: psycopg.Connection, text: str
) -> None:
    """Padded as the CMS's are: told for the markup, not the padding."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text + "  "}])
    assert reasons == ["description.html:warning"]


@pytest.mark.parametrize("text", [n for _, n in MARKUP], ids=IDS)
def test_a_row_at_rest_holding_markup_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, text: str
) -> None:
    assert findings_at_rest(db, text, text) == [
        ("description.html", "warning"),
        ("name.html", "warning"),
    ]


@pytest.mark.parametrize("text", [n for _, n in PLAIN], ids=[case for case, _ in PLAIN])
def test_a_text_with_such_characters_but_no_markup_passes(
    tx: psycopg.Connection, text: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": text, "description": text}])
    assert reasons == []


def test_a_placeholder_is_told_before_markup(tx: psycopg.Connection) -> None:
    """name.placeholder ranks before it: both warnings, the first one is told."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "Lorem ipsum &amp; dolor"}])
    assert reasons == ["name.placeholder:warning"]


def test_the_sentence_says_what_markup_and_where(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "Rose &amp; Oud <b>"}) == [
        'name holds the HTML character reference "&amp;" at position 6: markup left by a'
        " rich-text editor or an escaping export; the application shows it as characters,"
        " and a search for the text it stands for misses it"
    ]


def test_the_sentence_calls_a_tag_a_tag(tx: psycopg.Connection) -> None:
    [message] = prepared_messages(tx, {"fragrance_id": 1, "description": "Petals <br> dust"})
    assert message.startswith('description holds the HTML tag "<br>" at position 8:')


def test_the_rules_are_warnings_a_dba_can_turn_up_or_off(tx: psycopg.Connection) -> None:
    rows = tx.execute(
        "select code, severity, default_severity, applies_to, tunable, parameter from sync.rule"
        " where code like '%.html' order by code"
    ).fetchall()
    assert rows == [
        ("description.html", "warning", "warning", "both", ["severity"], None),
        ("name.html", "warning", "warning", "both", ["severity"], None),
    ]


def test_a_dba_who_turns_the_name_rule_to_an_error_refuses_the_edit(
    tx: psycopg.Connection,
) -> None:
    tx.execute("update sync.rule set severity = 'error' where code = 'name.html'")
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "<b>Rose</b>", "forbidden": True}])
    assert reasons == ["name.html:error"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() != (
        "<b>Rose</b>",
    )
