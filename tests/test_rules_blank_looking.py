"""Characters that look blank or invisible in a name or a description, table-driven.

Each passed every rule before hostile review: a symbol drawn as an empty cell
or as nothing, a private-use character that no standard font draws, a
variation selector or a Mongolian vowel separator between Latin letters, where
nothing uses them. A name that holds one looks like the name without it and
differs from it (no name.duplicate, no name.lookalike: NFKC keeps them all).
They are judged on the hook's path (a batch through sync.receive_many, as
sync.store_many and the merger judge it) and at rest (sync.check_catalog on
rows loaded without the write triggers, as an adopted catalog arrives).
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import findings_at_rest, prepared_messages, receipt_codes

# (case id, name, the rule a name is refused by; a description with it is that
# rule's description.* twin, a warning, or nothing when the rule is name.blank)
LOOK_BLANK: list[tuple[str, str, str]] = [
    ("a braille blank at the end", "Rose\u2800", "name.invisible_character"),
    ("a braille blank at the start", "\u2800Rose", "name.invisible_character"),
    ("a braille blank between words", "Rose\u2800Garden", "name.invisible_character"),
    ("a braille blank after a braille cell", "\u2817\u2800", "name.invisible_character"),
    ("the musical null notehead", "Rose\U0001d159", "name.invisible_character"),
    ("the musical null notehead alone", "\U0001d159", "name.blank"),
    ("a null notehead and a braille blank", "\U0001d159\u2800", "name.blank"),
    ("a Mongolian vowel separator between Latin letters", "Ro\u180ese", "name.invisible_character"),
    (
        "a Mongolian vowel separator after a Latin letter",
        "Rosa\u180e\u1820",
        "name.invisible_character",
    ),
    ("a zero-width joiner between ASCII letters", "Ro\u200dse", "name.invisible_character"),
    ("a zero-width non-joiner between ASCII letters", "Ro\u200cse", "name.invisible_character"),
    ("a zero-width joiner before an emoji", "Rose\u200d\U0001f339", "name.invisible_character"),
    ("an emoji selector after an ASCII letter", "Rose\ufe0f", "name.invisible_character"),
    ("a text selector after an ASCII letter", "Rose\ufe0e", "name.invisible_character"),
    ("a variation selector between ASCII letters", "Ros\ufe00e", "name.invisible_character"),
    ("an ideographic selector after an ASCII letter", "Rose\U000e0100", "name.invisible_character"),
    ("a Mongolian free selector after an ASCII letter", "Rose\u180b", "name.invisible_character"),
    ("a private-use character", "Rose\ue000", "name.invisible_character"),
    ("Apple's logo in private use", "\uf8ff Rose", "name.invisible_character"),
    ("a private-use character alone", "\ue123", "name.invisible_character"),
    ("a private-use character of plane 15", "Rose\U000f0000", "name.invisible_character"),
    ("a private-use character of plane 16", "Rose\U0010fffd", "name.invisible_character"),
]

IDS = [case for case, _, _ in LOOK_BLANK]


@pytest.mark.parametrize(("name", "rule"), [(n, r) for _, n, r in LOOK_BLANK], ids=IDS)
def test_a_name_that_looks_blank_or_holds_what_no_reader_sees_is_refused(
    tx: psycopg.Connection, name: str, rule: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == [f"{rule}:error"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() != (
        name,
    )


@pytest.mark.parametrize(("text", "rule"), [(n, r) for _, n, r in LOOK_BLANK], ids=IDS)
def test_a_description_that_holds_what_no_reader_sees_is_a_warning(
    tx: psycopg.Connection, text: str, rule: str
) -> None:
    # A description has no .blank rule: what a blank name is, a description holds invisibly.
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == ["description.invisible_character:warning"]


@pytest.mark.parametrize(("name", "rule"), [(n, r) for _, n, r in LOOK_BLANK], ids=IDS)
def test_a_row_at_rest_that_holds_it_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, name: str, rule: str
) -> None:
    assert findings_at_rest(db, name, name) == [
        ("description.invisible_character", "warning"),
        (rule, "error"),
    ]


def test_the_sentence_names_a_private_use_character_for_what_it_is(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "Rose \uf8ff"}) == [
        "name holds the private-use character, which no standard font shows, U+F8FF at position 6;"
        " names that look alike would differ"
    ]


# Where each of them has a use, it passes (these passed before, and must still).
IN_PLACE: list[tuple[str, str]] = [
    ("braille words with a braille blank", "\u2817\u2815\u280e\u2811\u2800\u281b\u2801\u2817"),
    ("a Mongolian vowel separator before a final a", "\u1828\u1822\u180e\u1820"),
    ("a red heart after a name", "Rose \u2764\ufe0f"),
    ("a Persian word with a ZWNJ", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),
    ("a Devanagari conjunct with a ZWJ", "\u0915\u094d\u200d\u0937"),
    ("a family emoji", "Rose \U0001f468\u200d\U0001f469\u200d\U0001f467"),
    ("the rainbow flag", "Rose \U0001f3f3\ufe0f\u200d\U0001f308"),
    ("a keycap", "No 1\ufe0f\u20e3"),
    ("a slashed zero", "Rose 0\ufe00"),
    ("an ideographic variant", "\u845b\U000e0100"),
    ("a Mongolian free selector after a Mongolian letter", "\u1828\u180b"),
]


@pytest.mark.parametrize("name", [n for _, n in IN_PLACE], ids=[c for c, _ in IN_PLACE])
def test_where_braille_mongolian_emoji_and_ideographs_use_them_they_pass(
    tx: psycopg.Connection, name: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name, "description": name}])
    assert reasons == []
