r"""The character class of ``sync_private.stacked_marks``, generated from Unicode data.

PostgreSQL's regular expressions know no ``\p{M}``, so the class of marks
that are drawn on the character before them is written into
``db/10-rules.sql`` as ranges of code points. This script makes them from
Python's ``unicodedata``::

    .venv/bin/python -m devtools.mark_class          # print the class
    .venv/bin/python -m devtools.mark_class --write  # rewrite it in db/10-rules.sql

A mark is: every code point of the nonspacing (Mn) and enclosing (Me) marks,
the two categories Unicode's security mechanisms count (UTS #39, 5.4), but
those drawn as nothing (``DRAW_NOTHING``: selectors and the combining
grapheme joiner, which ``name.invisible_character`` judges); and the whole
blocks of combining marks (``BLOCKS``), their unassigned code points
included, so a mark newer than Python's data counts there too. Spacing marks
(Mc) are not counted: they advance as a letter does, and stack nothing.
``tests/test_rules_stacked_marks.py`` holds the database to the same definition.
"""

from __future__ import annotations

import re
import sys
import unicodedata

from devtools.blank_class import as_ranges, generate, range_lines

CATEGORIES = frozenset({"Mn", "Me"})

# Nonspacing marks drawn as nothing: the combining grapheme joiner, the
# Mongolian free variation selectors, the variation selectors. A keycap
# (digit, U+FE0F, U+20E3) holds one mark that shows.
DRAW_NOTHING: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F),
    (0x180B, 0x180D),
    (0x180F, 0x180F),
    (0xFE00, 0xFE0F),
    (0xE0100, 0xE01EF),
)

# Blocks of nothing but combining marks, whole: Combining Diacritical Marks
# (but U+034F), Combining Diacritical Marks Extended and Supplement,
# Combining Diacritical Marks for Symbols, Combining Half Marks.
BLOCKS: tuple[tuple[int, int], ...] = (
    (0x0300, 0x034E),
    (0x0350, 0x036F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
)


def is_mark(code_point: int) -> bool:
    """Whether a code point is a mark drawn on the character before it."""
    if any(first <= code_point <= last for first, last in DRAW_NOTHING):
        return False
    if any(first <= code_point <= last for first, last in BLOCKS):
        return True
    return unicodedata.category(chr(code_point)) in CATEGORIES


def mark_ranges() -> list[tuple[int, int]]:
    """Every mark, as the fewest ranges, in order."""
    return as_ranges(c for c in range(1, 0x110000) if is_mark(c))


def class_sql(indent: str = "        ", per_line: int = 8) -> str:
    """The bracket expression as one E'' constant continued across lines (PostgreSQL joins them)."""
    lines = range_lines(mark_ranges(), per_line)
    return f"\n{indent}".join(["E'['", *(f"'{line}'" for line in lines), "']'"])


# The class in mark_class's body: from "select" to the closing ";".
CLASS_IN_SQL = re.compile(
    r"(create function sync_private\.mark_class\(\).*?\n    select\n {8})(.*?)(;\n)", re.DOTALL
)


def main(argv: list[str]) -> int:
    """Print the class, or rewrite it in db/10-rules.sql with --write."""
    return generate(
        argv, __doc__ or "", CLASS_IN_SQL, "mark_class's class", class_sql, len(mark_ranges())
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
