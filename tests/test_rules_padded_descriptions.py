"""A padded description hides none of its other warnings, table-driven.

Every description of the catalog and of the CMS ends in two spaces, so every
one breaks description.untrimmed. A field is told by one rule, its first
error, else its first warning; ranked 8th, description.untrimmed was the
first warning of every real description, and the warnings ranked after it
(stacked_marks, mixed_script, leading_mark, unassigned_character) were never
told of one, on a delta or at rest. A description's untrimmed now ranks last;
a name's stays where it was. Judged on the hook's path (a batch through
sync.receive_many) and at rest (sync.check_catalog).
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import findings_at_rest, receipt_codes

# (case id, a description as the CMS writes one, two spaces at its end, the rule it is told by).
PADDED: list[tuple[str, str, str]] = [
    ("a word mixing scripts", "R\u043ese petals  ", "description.mixed_script"),
    ("stacked marks", "Rose" + "\u0300" * 7 + " petals  ", "description.stacked_marks"),
    ("a leading mark", "\u0301Rose petals  ", "description.leading_mark"),
    ("an unassigned code point", "Rose\u0378 petals  ", "description.unassigned_character"),
    # Decomposed, told after the warnings above (stacked marks are seldom composed).
    ("a decomposed accent", "Cre\u0300me de rose  ", "description.not_normalized"),
    # Ranked before untrimmed already: told as they were.
    ("a C1 control", "A \u0093rose\u0094  ", "description.c1_control"),
    ("an invisible character", "Rose\u200b petals  ", "description.invisible_character"),
    ("nothing else", "Rose petals  ", "description.untrimmed"),
]
IDS = [case for case, _, _ in PADDED]


@pytest.mark.parametrize(("text", "rule"), [(t, r) for _, t, r in PADDED], ids=IDS)
def test_a_padded_description_is_told_by_its_other_warning_before_its_padding(
    tx: psycopg.Connection, text: str, rule: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == [f"{rule}:warning"]


@pytest.mark.parametrize(("text", "rule"), [(t, r) for _, t, r in PADDED], ids=IDS)
def test_a_padded_description_at_rest_is_a_finding_of_its_other_warning(
    db: psycopg.Connection, text: str, rule: str
) -> None:
    assert findings_at_rest(db, "Rose", text) == [(rule, "warning")]


def test_a_padded_description_turned_to_an_error_is_refused_for_its_padding(
    tx: psycopg.Connection,
) -> None:
    """An error still outranks every warning, wherever it stands."""
    tx.execute("update sync.rule set severity = 'error' where code = 'description.untrimmed'")
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": "R\u043ese petals  "}])
    assert reasons == ["description.untrimmed:error"]


def test_a_padded_name_is_still_told_by_its_padding_first(tx: psycopg.Connection) -> None:
    """A name's untrimmed keeps its place, before the warnings ranked after it."""
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": "Rose\u0378 "}])
    assert reasons == ["name.untrimmed:warning"]
