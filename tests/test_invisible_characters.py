"""What <field>.invisible_character calls invisible (sync_private.first_invisible), by code point.

The class is spelled out by code point in db/10-rules.sql; these tests hold
it to Python's Unicode data, as tests/test_blank_names.py holds the blank
class. tests/test_rules.py holds the rule itself, through sync.receive.
"""

from __future__ import annotations

import unicodedata

import psycopg
import pytest

# Format characters that show a sign (Prepended_Concatenation_Mark), bidirectional
# controls (the bidi_control rule's) and Egyptian hieroglyph format controls, which shape
# what they join: none is default ignorable.
SHOWN_OR_ANOTHER_RULES = {
    *range(0x0600, 0x0606),
    0x06DD,
    0x070F,
    0x0890,
    0x0891,
    0x08E2,
    0x110BD,
    0x110CD,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    *range(0x13430, 0x13440),
}
# Invisible characters that are no format character: combining grapheme joiner, Khmer
# inherent vowels, Hangul fillers.
NOT_FORMAT = [0x034F, 0x17B4, 0x17B5, 0x115F, 0x1160, 0x3164, 0xFFA0]
JOINERS = [0x180E, 0x200C, 0x200D]
SELECTORS = [0x180B, 0x180C, 0x180D, 0x180F, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]


def format_characters() -> list[int]:
    """Every format character (Cf) of Python's Unicode data."""
    return [c for c in range(1, 0x110000) if unicodedata.category(chr(c)) == "Cf"]


def first_invisible(conn: psycopg.Connection, texts: list[str]) -> list[str | None]:
    """sync_private.first_invisible of each text, in order."""
    rows = conn.execute(
        "select sync_private.first_invisible(t) from unnest(%s::text[]) with ordinality as u (t, n)"
        " order by n",
        [texts],
    ).fetchall()
    return [r[0] for r in rows]


def refused(conn: psycopg.Connection, texts: list[str]) -> list[str]:
    """The texts in which sync_private.first_invisible finds a character, as U+XXXX."""
    rows = conn.execute(
        "select t from unnest(%s::text[]) as t where sync_private.first_invisible(t) is not null",
        [texts],
    ).fetchall()
    return [" ".join(f"U+{ord(c):04X}" for c in t) for (t,) in rows]


def test_every_invisible_character_is_refused_even_between_two_letters(
    tx: psycopg.Connection,
) -> None:
    always = [
        c
        for c in format_characters() + NOT_FORMAT
        if c not in SHOWN_OR_ANOTHER_RULES and c not in JOINERS
    ]
    assert len(always) > 100  # the tags among them
    assert first_invisible(tx, [f"a{chr(c)}b" for c in always]) == [chr(c) for c in always]


def test_every_character_that_shows_passes_between_two_letters(tx: psycopg.Connection) -> None:
    invisible = set(NOT_FORMAT + SELECTORS)
    shown = [
        c
        for c in range(0x21, 0x110000)
        if unicodedata.category(chr(c))[0] in "LNPSM" and c not in invisible
    ]
    assert len(shown) > 100_000
    assert refused(tx, [f"a{chr(c)}b" for c in shown]) == []


@pytest.mark.parametrize("joiner", JOINERS, ids=[f"U+{c:04X}" for c in JOINERS])
def test_a_joiner_passes_between_two_visible_characters_only(
    tx: psycopg.Connection, joiner: int
) -> None:
    j = chr(joiner)
    assert (
        first_invisible(tx, [f"a{j}b", f"\u0915\u094d{j}\u0937", f"\u2764\ufe0f{j}\u2764"])
        == [None] * 3
    )
    out_of_place = [f"{j}ab", f"ab{j}", f"a {j}b", f"a{j} b", f"a{j}{j}b", f"a\u00ad{j}b"]
    assert first_invisible(tx, out_of_place) == [j, j, j, j, j, "\u00ad"]


@pytest.mark.parametrize("selector", SELECTORS[::7] + [SELECTORS[-1]], ids=lambda c: f"U+{c:04X}")
def test_a_variation_selector_passes_right_after_a_visible_character_only(
    tx: psycopg.Connection, selector: int
) -> None:
    s = chr(selector)
    assert first_invisible(tx, [f"a{s}", f"a{s}b", f"\u845b{s} x"]) == [None] * 3
    assert first_invisible(tx, [f"{s}a", f"a {s}", f"a{s}{s}", f"a\u200d{s}"]) == [
        s,
        s,
        s,
        "\u200d",
    ]


def test_every_selector_passes_after_a_letter_and_none_after_a_space(
    tx: psycopg.Connection,
) -> None:
    assert refused(tx, [f"a{chr(c)}" for c in SELECTORS]) == []
    assert first_invisible(tx, [f"a {chr(c)}" for c in SELECTORS]) == [chr(c) for c in SELECTORS]


def tags(text: str) -> str:
    return "".join(chr(0xE0000 + ord(c)) for c in text)


FLAG = "\U0001f3f4"
CANCEL = "\U000e007f"


@pytest.mark.parametrize(
    ("text", "first"),
    [
        # The flags of England, Scotland and Wales, as Unicode spells them (UTS #51).
        (FLAG + tags("gbeng") + CANCEL, None),
        (FLAG + tags("gbsct") + CANCEL, None),
        (FLAG + tags("gbwls") + CANCEL, None),
        ("Two " + FLAG + tags("gbsct") + CANCEL + FLAG + tags("gbwls") + CANCEL, None),
        (FLAG + tags("usca") + CANCEL, None),
        (FLAG + tags("001abcd") + CANCEL, None),  # 7 tags, the most a subdivision takes
        # Anything else that tags spell is hidden from every reader.
        (FLAG + tags("001abcde") + CANCEL, tags("0")),
        (FLAG + tags("gbsct"), tags("g")),
        (FLAG + tags("gb sct") + CANCEL, tags("g")),  # its run stops at the space
        (FLAG + CANCEL, CANCEL),
        (FLAG + tags("gbsct") + CANCEL + CANCEL, CANCEL),
        ("\U0001f3f3" + tags("gbsct") + CANCEL, tags("g")),
        ("a" + tags("gbsct") + CANCEL, tags("g")),
        (FLAG + "\U000e0001" + tags("en") + CANCEL, "\U000e0001"),
    ],
)
def test_tags_pass_only_as_an_emoji_flag(
    tx: psycopg.Connection, text: str, first: str | None
) -> None:
    assert first_invisible(tx, [text]) == [first]
