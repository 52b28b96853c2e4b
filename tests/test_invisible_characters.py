"""What <field>.invisible_character calls invisible (sync_private.first_invisible), by code point.

The class is spelled out by code point in db/10-rules.sql; these tests hold
it to Python's Unicode data, as tests/test_blank_names.py holds the blank
class. tests/test_rules.py holds the rule itself, through sync.receive.
"""

from __future__ import annotations

import unicodedata

import psycopg
import pytest

# Format characters that show a sign (Prepended_Concatenation_Mark) and bidirectional
# controls (the bidi_control rule's): none is default ignorable.
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
}
# Invisible characters that are no format character: combining grapheme joiner, Khmer
# inherent vowels, Hangul fillers.
NOT_FORMAT = [0x034F, 0x17B4, 0x17B5, 0x115F, 0x1160, 0x3164, 0xFFA0]
# Symbols that show nothing: the braille blank (but between two braille cells) and the
# musical null notehead.
SYMBOLS_OF_NOTHING = [0x2800, 0x1D159]
JOINERS = [0x200C, 0x200D]
# Egyptian hieroglyph format controls: no default ignorable, they arrange the signs next
# to them in a quadrat, and show nothing next to anything else.
EGYPTIAN_CONTROLS = list(range(0x13430, 0x13440))
MONGOLIAN_VOWEL_SEPARATOR = "\u180e"
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
        if c not in SHOWN_OR_ANOTHER_RULES and c not in JOINERS and c not in EGYPTIAN_CONTROLS
    ]
    assert len(always) > 100  # the tags among them
    assert first_invisible(tx, [f"a{chr(c)}b" for c in always]) == [chr(c) for c in always]


def test_every_character_that_shows_passes_between_two_letters(tx: psycopg.Connection) -> None:
    invisible = set(NOT_FORMAT + SELECTORS + SYMBOLS_OF_NOTHING)
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
    a, b = "\u0628", "\u062a"  # Arabic beh and teh: Persian joins them with ZWNJ
    assert (
        first_invisible(tx, [f"{a}{j}{b}", f"\u0915\u094d{j}\u0937", f"\u2764\ufe0f{j}\u2764"])
        == [None] * 3
    )
    out_of_place = [
        f"{j}{a}{b}",
        f"{a}{b}{j}",
        f"{a} {j}{b}",
        f"{a}{j} {b}",
        f"{a}{j}{j}{b}",
        f"{a}\u00ad{j}{b}",
    ]
    assert first_invisible(tx, out_of_place) == [j, j, j, j, j, "\u00ad"]
    # Next to an ASCII letter it joins nothing a reader sees: "Ro" ZWJ "se" shows as "Rose".
    assert first_invisible(tx, [f"Ro{j}se", f"a{j}{b}", f"{a}{j}b", f"Z{j}\u2764"]) == [j] * 4


# (case id, a text holding a joiner next to a letter of Latin, Cyrillic or Greek but ASCII).
JOINED_LETTERS = [
    ("between Latin letters beyond ASCII", "Cr\u00e8{j}\u00e9me"),
    ("between Cyrillic letters", "\u0420\u043e{j}\u0437\u0430"),
    ("between Greek letters", "\u03c1\u03cc{j}\u03b4\u03bf"),
    ("a Latin letter before Arabic", "\u00e9{j}\u0628"),
    ("Arabic before a Greek letter", "\u0628{j}\u03b1"),
]


@pytest.mark.parametrize("joiner", JOINERS, ids=[f"U+{c:04X}" for c in JOINERS])
@pytest.mark.parametrize("text", [t for _, t in JOINED_LETTERS], ids=[c for c, _ in JOINED_LETTERS])
def test_a_joiner_next_to_any_latin_cyrillic_or_greek_letter_is_out_of_place(
    tx: psycopg.Connection, joiner: int, text: str
) -> None:
    """As next to an ASCII letter: "Ros" ZWJ "é" shows as "Rosé" and differs from it."""
    j = chr(joiner)
    assert first_invisible(tx, [text.format(j=j)]) == [j]


def test_the_mongolian_vowel_separator_passes_between_two_mongolian_letters_only(
    tx: psycopg.Connection,
) -> None:
    m = MONGOLIAN_VOWEL_SEPARATOR
    assert first_invisible(tx, [f"\u1828\u1822{m}\u1820", f"\u1821{m}\u1821"]) == [None] * 2
    out_of_place = [f"a{m}b", f"\u1828{m}", f"{m}\u1820", f"\u1828{m}a", f"a{m}\u1820"]
    assert first_invisible(tx, out_of_place) == [m] * 5


@pytest.mark.parametrize(
    "braille", ["\u2817\u2800\u281b", "\u28ff\u2800\u2801"], ids=["words", "full cells"]
)
def test_the_braille_blank_passes_between_two_braille_cells_only(
    tx: psycopg.Connection, braille: str
) -> None:
    b = "\u2800"
    assert first_invisible(tx, [braille]) == [None]
    assert (
        first_invisible(tx, [f"a{b}b", f"\u2817{b}", f"{b}\u2817", f"\u2817{b}{b}\u2817"])
        == [b] * 4
    )


SIGN, OTHER_SIGN, DAMAGED = "\U00013000", "\U00013001", "\U00013447"
# (case id, a text holding an Egyptian hieroglyph format control {c}, refused or not).
EGYPTIAN_CASES = [
    ("between two signs", f"{SIGN}{{c}}{OTHER_SIGN}", False),
    ("after a sign, at the end", f"{SIGN}{{c}}", False),
    ("before a sign, at the start", f"{{c}}{SIGN}", False),
    ("in a run of controls between signs", f"{SIGN}{{c}}\U00013437{OTHER_SIGN}\U00013438", False),
    ("after a damaged sign's mark", f"{SIGN}{DAMAGED}{{c}}{OTHER_SIGN}", False),
    ("at the end of a Latin name", "Rose{c}", True),
    ("inside a Latin name", "Ro{c}se", True),
    ("at the start of a Latin name", "{c}Rose", True),
    ("alone", "{c}", True),
    ("a space away from a sign", f"{SIGN} {{c}}", True),
    ("in a run of controls between two letters", "a{c}\U00013437\U00013438b", True),
]


@pytest.mark.parametrize("control", EGYPTIAN_CONTROLS[::5], ids=lambda c: f"U+{c:04X}")
@pytest.mark.parametrize(
    ("text", "is_refused"),
    [(t, r) for _, t, r in EGYPTIAN_CASES],
    ids=[case for case, _, _ in EGYPTIAN_CASES],
)
def test_an_egyptian_format_control_passes_next_to_a_hieroglyph_only(
    tx: psycopg.Connection, control: int, text: str, is_refused: bool
) -> None:
    """Next to anything else it shows nothing: "Rose" + U+13430 looked like "Rose" and passed."""
    c = chr(control)
    assert first_invisible(tx, [text.format(c=c)]) == [c if is_refused else None]


# Variation selectors choose a form of the character before them: an emoji, a CJK
# ideograph, a Mongolian letter, a mathematical symbol. No variation sequence of Unicode
# has an ASCII letter for its base.
BASES = ["\u845b", "\u2764", "\u1828", "\u2229"]


@pytest.mark.parametrize("selector", SELECTORS[::7] + [SELECTORS[-1]], ids=lambda c: f"U+{c:04X}")
def test_a_variation_selector_passes_right_after_a_visible_character_only(
    tx: psycopg.Connection, selector: int
) -> None:
    s = chr(selector)
    assert first_invisible(tx, [f"\u845b{s}", f"\u2764{s}b", f"\u845b{s} x"]) == [None] * 3
    assert first_invisible(
        tx, [f"{s}\u845b", f"\u845b {s}", f"\u845b{s}{s}", f"\u845b\u200d{s}", f"a{s}", f"Z{s}b"]
    ) == [s, s, s, "\u200d", s, s]


#: Letters of Latin, Cyrillic and Greek beyond ASCII: no variation sequence has one for its base.
LETTERS_NO_BASE = ["\u00e9", "\u0131", "\u1ec5", "\u043e", "\u0416", "\u03b1", "\u03a9"]


@pytest.mark.parametrize("letter", LETTERS_NO_BASE, ids=lambda c: f"U+{ord(c):04X}")
def test_a_variation_selector_after_any_latin_cyrillic_or_greek_letter_is_out_of_place(
    tx: psycopg.Connection, letter: str
) -> None:
    """As after an ASCII letter: "Rosé" + U+FE0F shows as "Rosé" and differs from it."""
    selectors = [chr(c) for c in SELECTORS]
    assert first_invisible(tx, [f"Ros{letter}{s} x" for s in selectors]) == selectors


@pytest.mark.parametrize("base", BASES, ids=lambda c: f"U+{ord(c):04X}")
def test_every_selector_passes_after_a_base_and_none_after_a_space_or_an_ascii_letter(
    tx: psycopg.Connection, base: str
) -> None:
    assert refused(tx, [f"{base}{chr(c)}" for c in SELECTORS]) == []
    assert first_invisible(tx, [f"{base} {chr(c)}" for c in SELECTORS]) == [
        chr(c) for c in SELECTORS
    ]
    assert first_invisible(tx, [f"{base}e{chr(c)}" for c in SELECTORS]) == [
        chr(c) for c in SELECTORS
    ]


@pytest.mark.parametrize(
    "private_use",
    [0xE000, 0xF8FF, 0xF0000, 0xFFFFD, 0x100000, 0x10FFFD],
    ids=lambda c: f"U+{c:04X}",
)
def test_a_private_use_character_is_refused_wherever_it_stands(
    tx: psycopg.Connection, private_use: int
) -> None:
    p = chr(private_use)
    assert first_invisible(tx, [p, f"a{p}b", f"\u845b{p}", f"{p}\u2764\ufe0f"]) == [p] * 4


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
