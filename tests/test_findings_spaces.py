"""Names that differ only in their spaces are name.lookalike of each other.

"Rose  Noir" with two spaces passed every rule beside "Rose Noir": no rule
judges the spaces inside a name, and name.lookalike folded names with NFKC
and lower case, which keep a run of spaces as it is. A web page collapses a
run of spaces into one and drops them at either end, so a reader sees one
name. sync_private.name_key now writes a run of spaces, after NFKC (which
makes every other space character a plain one), as one space, and none at
either end (migration 0053). Judged three ways, as the Cyrillic and Greek
lookalikes are (tests/test_findings_confusables.py): the catalog check of
rows loaded without the write triggers, the triggers that judge a DBA's
UPDATE, and the merge of deliveries.
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import (
    as_replica,
    body,
    check_catalog,
    check_changes_no_lookalike,
    lookalike_pair,
    lookalikes_of_1_and_2,
    receive_many,
    rename_1_and_2,
)

# (case id, names of fragrances 1 and 2, whether both are then name.lookalike).
PAIRS: list[tuple[str, tuple[str, str], bool]] = [
    ("two spaces", ("Rose  Noir", "Rose Noir"), True),
    ("three spaces and two", ("Rose   Noir", "Rose  Noir"), True),
    ("two runs", ("Eau  de  Rose", "Eau de Rose"), True),
    ("two spaces and case", ("ROSE  NOIR", "rose noir"), True),
    ("a no-break space beside a space", ("Rose\u00a0 Noir", "Rose Noir"), True),
    ("two ideographic spaces", ("Rose\u3000\u3000Noir", "Rose Noir"), True),
    ("an accented name with two spaces", ("Ros\u00e9  Noir", "Ros\u00e9 Noir"), True),
    ("Cyrillic letters with two spaces", ("\u0421\u041e\u0421\u041e  N", "COCO N"), True),
    ("a space at the start", (" Rose Noir", "Rose Noir"), True),
    ("spaces at the end", ("Rose Noir  ", "Rose Noir"), True),
    ("a no-break space at the end", ("Rose Noir\u00a0", "Rose Noir"), True),
    # Guards: a space is a character of the name; other blanks are other rules'.
    ("a space is not nothing", ("RoseNoir", "Rose Noir"), False),
    ("a space moved", ("Ros eNoir", "Rose Noir"), False),
    ("a tab is no space", ("Rose\tNoir", "Rose Noir"), False),
    ("the same name is name.duplicate only", ("Rose  Noir", "Rose  Noir"), False),
]
IDS = [i for i, _, _ in PAIRS]
#: The pairs the CMS can deliver: a name with spaces at either end is name.untrimmed, an
#: error, and a tab name.control_character.
DELIVERABLE = [
    (names, lookalike)
    for _, names, lookalike in PAIRS
    if all(n == n.strip(" \u00a0") and "\t" not in n for n in names)
]


@pytest.mark.parametrize(("names", "lookalike"), [(n, e) for _, n, e in PAIRS], ids=IDS)
def test_an_adopted_catalog_is_checked_for_names_that_differ_in_their_spaces(
    db: psycopg.Connection, names: tuple[str, str], lookalike: bool
) -> None:
    with as_replica(db):  # a bulk load: no trigger
        rename_1_and_2(db, names)
    check_catalog(db)
    assert lookalikes_of_1_and_2(db) == lookalike_pair(lookalike)


@pytest.mark.parametrize(("names", "lookalike"), [(n, e) for _, n, e in PAIRS], ids=IDS)
def test_a_dbas_rename_opens_the_lookalike_finding_of_names_that_differ_in_their_spaces(
    db: psycopg.Connection, names: tuple[str, str], lookalike: bool
) -> None:
    """The second rename judges the first fragrance again; the check then changes nothing."""
    rename_1_and_2(db, names)
    assert lookalikes_of_1_and_2(db) == lookalike_pair(lookalike)
    check_changes_no_lookalike(db)


@pytest.mark.parametrize(("names", "lookalike"), DELIVERABLE)
def test_deliveries_of_names_that_differ_in_their_spaces_are_applied_and_found_alike(
    db: psycopg.Connection, names: tuple[str, str], lookalike: bool
) -> None:
    """A run of spaces inside a name refuses nothing: a finding at rest, not a reason."""
    receipts = receive_many(
        db, [body({"fragrance_id": i, "name": n}) for i, n in enumerate(names, 1)]
    )
    assert [r[1] for r in receipts] == ["applied", "applied"]
    assert lookalikes_of_1_and_2(db) == lookalike_pair(lookalike)


def test_a_lookup_by_a_name_with_a_run_of_spaces_reads_the_folded_name_index(
    tx: psycopg.Connection,
) -> None:
    """Migration 0053's index is the function's expression, in its ASCII branch too."""
    tx.execute("set local enable_seqscan = off")
    plan = tx.execute(
        "explain (costs off) select fragrance_id from public.fragrances"
        " where sync_private.name_key(name) = sync_private.name_key(%s)",
        ["Rose  Noir"],
    ).fetchall()
    text = "\n".join(r[0] for r in plan)
    assert "sync_fragrances_name_key_idx" in text and "Index Cond" in text, text
