"""Words that mix scripts, and texts that start with a combining mark, table-driven.

"Rоse" with a Cyrillic о (U+043E), or "Ваnаna", Cyrillic В and а among Latin
letters, passed every rule before review, and name.lookalike folds with NFKC,
which leaves Cyrillic and Greek letters as they are: a spoof of an existing
name passed as another name. A word (a run of letters and marks) that mixes
letters of two of Latin, Cyrillic and Greek is name.mixed_script, an error, and
description.mixed_script, a warning; words of one script pass, whatever the
words beside them. A text that starts with a combining mark (U+0301 before "Rose")
puts it on whatever stands before it on screen: name.leading_mark, an error,
description.leading_mark, a warning. Judged on the hook's path (a batch through
sync.receive_many, as sync.store_many and the merger judge it) and at rest
(sync.check_catalog on rows loaded without the write triggers, as an adopted
catalog arrives). The script classes are spelled out by code point
(devtools/script_class.py); these tests hold them to the generator's
definition, code point by code point.
"""

from __future__ import annotations

import unicodedata

import psycopg
import pytest
from conftest import ROOT
from helpers import findings_at_rest, prepared_messages, receipt_codes

from devtools.script_class import SCRIPTS, classes_sql, is_word, script

# (case id, a text): each holds a word that mixes letters of two of Latin, Cyrillic and Greek.
MIXED: list[tuple[str, str]] = [
    ("a Cyrillic o in a Latin word", "R\u043ese"),
    ("Cyrillic letters among Latin ones", "\u0412\u0430n\u0430na"),
    ("a Cyrillic capital C", "\u0421hanel"),
    ("a Greek omicron in a Latin word", "R\u03bfse"),
    ("a Greek capital Nu before a Latin o", "\u039do 5"),
    ("the mix in the last word", "Eau de R\u043ese"),
    ("a Cyrillic letter after an apostrophe", "L'\u041er"),
    ("a Cyrillic letter under a mark", "R\u043e\u0301se"),
    ("a fullwidth Latin letter beside Cyrillic", "\uff32\u043ese"),
    ("a Kelvin sign, a Latin letter, before Greek", "\u212a\u03b1ppa"),
    ("a Latin letter in a Russian word", "\u041cocква"),
    ("a Greek omicron in a Russian word", "\u0420\u03bf\u0437\u0430"),
    ("a Cyrillic er in a Greek word", "\u0391\u0440\u03c9\u03bc\u03b1"),
    ("Latin, Cyrillic and Greek in one word", "R\u043e\u03c3e"),
]
MIXED_IDS = [case for case, _ in MIXED]


@pytest.mark.parametrize("name", [n for _, n in MIXED], ids=MIXED_IDS)
def test_a_name_with_a_word_of_mixed_scripts_is_refused(tx: psycopg.Connection, name: str) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == ["name.mixed_script:error"]
    assert tx.execute("select name from public.fragrances where fragrance_id = 7").fetchone() != (
        name,
    )


@pytest.mark.parametrize("text", [n for _, n in MIXED], ids=MIXED_IDS)
def test_a_description_with_a_word_of_mixed_scripts_is_a_warning(
    tx: psycopg.Connection, text: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == ["description.mixed_script:warning"]


@pytest.mark.parametrize("name", [n for _, n in MIXED], ids=MIXED_IDS)
def test_a_row_at_rest_with_a_word_of_mixed_scripts_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection, name: str
) -> None:
    assert findings_at_rest(db, name, name) == [
        ("description.mixed_script", "warning"),
        ("name.mixed_script", "error"),
    ]


def test_a_spoof_of_an_existing_name_is_refused_though_it_folds_apart(
    tx: psycopg.Connection,
) -> None:
    """Fragrance 8 takes fragrance 7's name with a Cyrillic о: no lookalike, a mixed script."""
    [(name,)] = tx.execute("select name from public.fragrances where fragrance_id = 7").fetchall()
    spoof = name.replace("o", "\u043e", 1) if "o" in name else "\u0430" + name
    [reasons] = receipt_codes(tx, [{"fragrance_id": 8, "name": spoof}])
    assert reasons == ["name.mixed_script:error"]


def test_the_sentence_names_the_word_the_scripts_and_where_the_second_starts(
    tx: psycopg.Connection,
) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "Eau de R\u043ese"}) == [
        'name holds the word "R\u043ese", which mixes Latin letters with Cyrillic ones'
        " (U+043E at position 9): it looks like a word of one script and differs from it"
    ]
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "\u0420\u03bf\u0437\u0430"}) == [
        'name holds the word "\u0420\u03bf\u0437\u0430", which mixes Cyrillic letters with Greek'
        " ones (U+03BF at position 2): it looks like a word of one script and differs from it"
    ]
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "\u0412\u0430n\u0430na"}) == [
        'name holds the word "\u0412\u0430n\u0430na", which mixes Cyrillic letters with Latin'
        " ones (U+006E at position 3): it looks like a word of one script and differs from it"
    ]


# (case id, a text in NFC): every word of one script (or of none), so it passes.
ONE_SCRIPT: list[tuple[str, str]] = [
    ("Russian", "\u041a\u0440\u0430\u0441\u043d\u0430\u044f \u041c\u043e\u0441\u043a\u0432\u0430"),
    ("Serbian", "\u0402\u0443\u0440\u0452\u0435\u0432\u0430\u043a"),
    ("Greek with a tonos", "\u0386\u03c1\u03c9\u03bc\u03b1"),
    ("a Greek letter as a word", "Eau de Parfum \u03a9"),
    ("a Latin and a Russian word", "Rose \u0420\u043e\u0437\u0430"),
    ("a Greek and a Russian word", "\u03a1\u03cc\u03b4\u03bf \u0420\u043e\u0437\u0430"),
    ("a hyphen between the scripts", "Rose-\u0420\u043e\u0437\u0430"),
    ("a numero sign", "\u21165"),
    ("a masculine ordinal, a Latin letter", "N\u00ba5"),
    ("French", "Cr\u00e8me Br\u00fbl\u00e9e"),
    ("Vietnamese", "Nguy\u1ec5n Th\u1ecb Ng\u1ecdc \u00c1nh"),
    ("Turkish dotless i", "I\u015f\u0131k"),
    ("German sharp s", "Stra\u00dfe"),
    ("the micro sign, of no script, before a Latin g", "5 \u00b5g"),
    ("Latin and Han in one word", "Rose\u8594\u8587"),
    ("Latin and Kana in one word", "Rose\u306e\u30d0\u30e9"),
    ("Latin and Hangul in one word", "Rose\uc7a5\ubbf8"),
    ("mathematical bold letters, of no script", "\U0001d411\U0001d428\U0001d42c\U0001d41e"),
    ("a Cyrillic word with a mathematical letter", "\U0001d411\u043e\u0437\u0430"),
    ("the modifier apostrophe, of two scripts, in a Latin word", "Rose\u02bcs"),
]


@pytest.mark.parametrize(
    "text",
    [unicodedata.normalize("NFC", t) for _, t in ONE_SCRIPT],
    ids=[c for c, _ in ONE_SCRIPT],
)
def test_words_of_one_script_pass_as_names_and_descriptions(
    tx: psycopg.Connection, text: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": text, "description": text}])
    assert reasons == []


def test_mathematical_letters_are_a_lookalike_of_the_name_they_spell_not_a_mixed_script(
    db: psycopg.Connection,
) -> None:
    """They pass as deltas; at rest, NFKC folds them to the Latin name: name.lookalike."""
    db.execute("update public.fragrances set name = 'Rose' where fragrance_id = 1")
    assert findings_at_rest(db, "\U0001d411\U0001d428\U0001d42c\U0001d41e", "d") == [
        ("name.lookalike", "warning")
    ]


def test_a_greek_mu_in_a_latin_unit_is_only_a_warning_in_a_description(
    tx: psycopg.Connection,
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": "5 \u03bcg of musk"}])
    assert reasons == ["description.mixed_script:warning"]


# (case id, a text, the rule a name is refused by, the rule a description is reported by)
LEADING: list[tuple[str, str, str, str]] = [
    ("an acute before a name", "\u0301Rose", "name.leading_mark", "description.leading_mark"),
    ("an enclosing circle", "\u20ddRose", "name.leading_mark", "description.leading_mark"),
    ("a Thai tone mark", "\u0e49Rose", "name.leading_mark", "description.leading_mark"),
    ("a Hebrew point", "\u05b8\u05e9\u05dc", "name.leading_mark", "description.leading_mark"),
    ("a Cyrillic titlo", "\u0483Rose", "name.leading_mark", "description.leading_mark"),
    ("a mark alone", "\u0301", "name.blank", "description.leading_mark"),
    (
        "six marks: stacked, ranked before",
        "\u0301" * 6 + "Rose",
        "name.stacked_marks",
        "description.stacked_marks",
    ),
    (
        "a variation selector: invisible",
        "\ufe0fRose",
        "name.invisible_character",
        "description.invisible_character",
    ),
    (
        "the combining grapheme joiner: invisible",
        "\u034fRose",
        "name.invisible_character",
        "description.invisible_character",
    ),
]
LEADING_IDS = [case for case, _, _, _ in LEADING]


@pytest.mark.parametrize(("name", "rule"), [(t, r) for _, t, r, _ in LEADING], ids=LEADING_IDS)
def test_a_name_that_starts_with_a_combining_mark_is_refused(
    tx: psycopg.Connection, name: str, rule: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == [f"{rule}:error"]


@pytest.mark.parametrize(("text", "rule"), [(t, r) for _, t, _, r in LEADING], ids=LEADING_IDS)
def test_a_description_that_starts_with_a_combining_mark_is_a_warning(
    tx: psycopg.Connection, text: str, rule: str
) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "description": text}])
    assert reasons == [f"{rule}:warning"]


def test_a_row_at_rest_that_starts_with_a_combining_mark_is_a_finding_of_the_catalog_check(
    db: psycopg.Connection,
) -> None:
    assert findings_at_rest(db, "\u0301Rose", "\u20ddPetals") == [
        ("description.leading_mark", "warning"),
        ("name.leading_mark", "error"),
    ]


def test_the_sentence_names_the_leading_mark(tx: psycopg.Connection) -> None:
    assert prepared_messages(tx, {"fragrance_id": 1, "name": "\u0301Rose"}) == [
        "name starts with the combining mark U+0301;"
        " it is drawn on whatever stands before the name on screen"
    ]


# Marks that are no leading mark: after a letter, or a spacing mark, which advances as a letter.
NOT_LEADING: list[tuple[str, str]] = [
    ("an accent on its letter", "Ros\u00e9"),
    ("a Devanagari visarga, a spacing mark", "\u0903Rose"),
    ("a Hebrew point on its letter", "\u05e9\u05b8\u05dc"),
]


@pytest.mark.parametrize("text", [t for _, t in NOT_LEADING], ids=[c for c, _ in NOT_LEADING])
def test_a_mark_on_a_letter_or_a_spacing_mark_passes(tx: psycopg.Connection, text: str) -> None:
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": text, "description": text}])
    assert reasons == []


# The 11th and 12th text rules rank as the 10 before them: errors before warnings, then by
# position. (case id, the severity of name.mixed_script, a name, the one reason it gets)
RANKED: list[tuple[str, str, str, str]] = [
    ("an error alone", "error", "R\u043ese", "name.mixed_script:error"),
    (
        "an error after two warnings (untrimmed, not normalized)",
        "error",
        " R\u043ese\u0301",
        "name.mixed_script:error",
    ),
    (
        "after an earlier error (invisible)",
        "error",
        "R\u043e\u200bse",
        "name.invisible_character:error",
    ),
    (
        "after an earlier error (stacked marks)",
        "error",
        "R\u043ese" + "\u20dd" * 10,
        "name.stacked_marks:error",
    ),
    ("before a later error (leading mark)", "error", "\u0301R\u043ese", "name.mixed_script:error"),
    ("a warning alone", "warning", "R\u043ese", "name.mixed_script:warning"),
    ("a warning after an earlier warning", "warning", "R\u043ese ", "name.untrimmed:warning"),
    (
        "a warning after an earlier error",
        "warning",
        "R\u043e\u200bse",
        "name.invisible_character:error",
    ),
    (
        "a warning before a later error (leading mark)",
        "warning",
        "\u0301R\u043ese",
        "name.leading_mark:error",
    ),
    ("off: the next rule", "off", " R\u043ese", "name.untrimmed:warning"),
    ("off: nothing", "off", "R\u043ese", ""),
]


@pytest.mark.parametrize(
    ("severity", "name", "reason"),
    [(s, n, r) for _, s, n, r in RANKED],
    ids=[c for c, _, _, _ in RANKED],
)
def test_the_eleventh_text_rule_ranks_by_severity_then_position(
    tx: psycopg.Connection, severity: str, name: str, reason: str
) -> None:
    tx.execute("update sync.rule set severity = %s where code = 'name.mixed_script'", [severity])
    [reasons] = receipt_codes(tx, [{"fragrance_id": 7, "name": name}])
    assert reasons == ([reason] if reason else [])


def test_the_new_rules_default_to_an_error_for_names_and_a_warning_for_descriptions(
    tx: psycopg.Connection,
) -> None:
    rows = tx.execute(
        "select code, severity, default_severity, applies_to, tunable, parameter from sync.rule"
        " where code like '%.mixed_script' or code like '%.leading_mark' order by code"
    ).fetchall()
    assert rows == [
        ("description.leading_mark", "warning", "warning", "both", ["severity"], None),
        ("description.mixed_script", "warning", "warning", "both", ["severity"], None),
        ("name.leading_mark", "error", "error", "both", ["severity"], None),
        ("name.mixed_script", "error", "error", "both", ["severity"], None),
    ]


def test_the_ranges_in_the_database_are_the_generators() -> None:
    """After an upgrade of Python's Unicode data: python -m devtools.script_class --write."""
    assert classes_sql() in (ROOT / "db" / "10-rules.sql").read_text()


@pytest.mark.parametrize("which", [*SCRIPTS, "word"])
def test_each_class_in_the_database_holds_the_generators_code_points(
    tx: psycopg.Connection, which: str
) -> None:
    """Every code point but the surrogates, in the database's class or not, as Python says."""
    [(in_database,)] = tx.execute(
        "select array_agg(c order by c) from generate_series(1, 1114111) as c"
        " where (c < 55296 or c > 57343)"
        " and chr(c) ~ ('[' || sync_private.script_class(%s) || ']')",
        [which],
    ).fetchall()
    expected = [
        c
        for c in range(1, 0x110000)
        if not 0xD800 <= c <= 0xDFFF and (is_word(c) if which == "word" else script(c) == which)
    ]
    assert len(expected) > {"latin": 1400, "cyrillic": 380, "greek": 350, "word": 960_000}[which]
    missing = sorted(set(expected) - set(in_database))
    extra = sorted(set(in_database) - set(expected))
    assert ([f"U+{c:04X}" for c in missing[:20]], [f"U+{c:04X}" for c in extra[:20]]) == ([], [])
