"""What name.blank calls blank: a text that shows nothing, in every script (sync_private.is_blank).

PostgreSQL's regular expressions know no Unicode properties, so the class is
ranges of code points generated from Unicode data (devtools/blank_class.py).
These tests hold it to Python's Unicode data, code point by code point.
"""

from __future__ import annotations

import unicodedata

import psycopg
import pytest
from conftest import ROOT

from devtools.blank_class import pattern_sql

# Controls, format characters, nonspacing and enclosing marks, spaces, separators.
SHOW_NOTHING = {"Cc", "Cf", "Mn", "Me", "Zs", "Zl", "Zp"}
# Format characters that show a sign (Prepended_Concatenation_Mark).
PREPENDED_MARKS = [*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD]
# Letters and symbols that show nothing: the Hangul fillers, the braille blank, the
# musical null notehead.
FILLERS = [0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x1D159]


def code_points(*categories: str) -> list[int]:
    """Every code point of these general categories (or families) in Python's Unicode data."""
    return [
        c
        for c in range(1, 0x110000)
        if unicodedata.category(chr(c)) in categories
        or unicodedata.category(chr(c))[0] in categories
    ]


def not_blank(conn: psycopg.Connection, texts: list[str]) -> list[str]:
    """The texts sync_private.is_blank does not call blank, as U+XXXX."""
    rows = conn.execute(
        "select t from unnest(%s::text[]) as t where not sync_private.is_blank(t)", [texts]
    ).fetchall()
    return [" ".join(f"U+{ord(c):04X}" for c in t) for (t,) in rows]


def blank(conn: psycopg.Connection, texts: list[str]) -> list[str]:
    """The texts sync_private.is_blank calls blank, as U+XXXX."""
    rows = conn.execute(
        "select t from unnest(%s::text[]) as t where sync_private.is_blank(t)", [texts]
    ).fetchall()
    return [" ".join(f"U+{ord(c):04X}" for c in t) for (t,) in rows]


def test_every_character_that_shows_nothing_is_blank_alone_and_repeated(
    tx: psycopg.Connection,
) -> None:
    invisible = [c for c in code_points(*SHOW_NOTHING) if c not in PREPENDED_MARKS] + FILLERS
    assert len(invisible) > 2000
    assert not_blank(tx, [chr(c) for c in invisible] + [chr(c) * 3 for c in invisible]) == []


def test_every_letter_digit_punctuation_and_symbol_shows(tx: psycopg.Connection) -> None:
    shown = [c for c in code_points("L", "N", "P", "S") if c not in FILLERS]
    assert len(shown) > 100_000
    assert blank(tx, [chr(c) for c in shown]) == []


def test_a_prepended_concatenation_mark_shows(tx: psycopg.Connection) -> None:
    assert blank(tx, [chr(c) for c in PREPENDED_MARKS]) == []


@pytest.mark.parametrize(
    "name",
    [
        "Rose",
        "Ros\u0301e",  # é decomposed: a letter and its accent
        "\u0301Rose",  # a mark before the letter shows nothing, the letter does
        "\u8587\u8587",  # CJK
        "\u0648\u0631\u062f",  # Arabic letters
        "\u0648\u064e\u0631\u0652\u062f",  # Arabic letters with vowel marks
        "\u05e9\u05b8\u05dc\u05d5\u05b9\u05dd",  # Hebrew with points
        "\u0915\u0941\u0938\u0941\u092e",  # Devanagari with vowel signs
        "\u0e01\u0e31",  # Thai consonant and vowel mark
        "42",
        "\U0001f339",  # an emoji
        "\u200b\U0001f339\ufe0f",  # an emoji between invisibles
    ],
)
def test_a_name_with_anything_that_shows_is_not_blank(tx: psycopg.Connection, name: str) -> None:
    assert blank(tx, [name]) == []


def test_the_ranges_in_the_database_are_the_generators() -> None:
    """After an upgrade of Python's Unicode data: python -m devtools.blank_class --write."""
    assert pattern_sql() in (ROOT / "db" / "10-rules.sql").read_text()


# (case id, a name of one character repeated, whether it is blank): characters
# that Python 3.11's Unicode data (14.0) does not know, judged by what they show.
NEWER_THAN_PYTHONS_DATA = [
    ("Egyptian hieroglyph format control, Unicode 15", "\U00013439", True),
    ("Egyptian hieroglyph full blank: an empty quadrat", "\U00013441", True),
    ("Egyptian hieroglyph half blank", "\U00013442", True),
    ("Egyptian hieroglyph lost sign: a hatched area", "\U00013443", False),
    ("Egyptian hieroglyph half lost sign", "\U00013444", False),
    ("Egyptian hieroglyph tall lost sign", "\U00013445", False),
    ("Egyptian hieroglyph wide lost sign", "\U00013446", False),
    ("Egyptian hieroglyph modifier damaged, a mark", "\U00013447", True),
]


@pytest.mark.parametrize(
    ("name", "is_blank"), [pytest.param(n, b, id=i) for i, n, b in NEWER_THAN_PYTHONS_DATA]
)
def test_a_character_newer_than_pythons_data_is_blank_only_if_it_shows_nothing(
    tx: psycopg.Connection, name: str, is_blank: bool
) -> None:
    texts = [name, name * 3]
    assert blank(tx, texts) == (
        [" ".join(f"U+{ord(c):04X}" for c in t) for t in texts] if is_blank else []
    )
