r"""The character class of ``sync_private.is_blank``, generated from Unicode data.

PostgreSQL's regular expressions know no ``\p{...}``, so the class of
characters that show nothing is written into ``db/10-rules.sql`` as ranges
of code points. This script makes them from Python's ``unicodedata``::

    .venv/bin/python -m devtools.blank_class          # print the class
    .venv/bin/python -m devtools.blank_class --write  # rewrite it in db/10-rules.sql

Blank is: every code point of the general categories below (controls,
format characters, marks that combine with nothing before them, spaces and
separators), but U+0000 (text cannot hold it) and the prepended
concatenation marks (format characters that show a sign over the digits
after them, and a sign alone); and, whatever the categories, what
``is_blank`` held before it was generated (``ALSO``).
``tests/test_blank_names.py`` holds the database to the same definition.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

RULES_SQL = Path(__file__).resolve().parent.parent / "db" / "10-rules.sql"

# Cc controls, Cf format characters, Mn nonspacing and Me enclosing marks,
# Zs spaces, Zl and Zp the line and paragraph separators.
CATEGORIES = frozenset({"Cc", "Cf", "Mn", "Me", "Zs", "Zl", "Zp"})

# Prepended_Concatenation_Mark (PropList.txt): Cf, yet they show.
SHOWN = frozenset(
    {*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD}
)

# What is_blank held before it was generated, kept: whole blocks of marks,
# spaces, selectors and tags (code points they leave unassigned included),
# the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0) and the braille blank
# (U+2800), letters and a symbol that show nothing; the musical null notehead
# (U+1D159), a symbol drawn as nothing (added by hostile review: a name of
# it alone passed). And the block of
# Egyptian hieroglyph format controls, completed in Unicode 15, after Python
# 3.11's 14.0 (U+13430-1345F, marks and unassigned code points included),
# but for its four lost signs, U+13443-13446: letters (Lo) that show a
# hatched area where signs are lost, so a name of them is not blank. Its
# full and half blank, U+13441-13442, show an empty quadrat: blank.
ALSO: tuple[tuple[int, int], ...] = (
    (0x0001, 0x0020),
    (0x007F, 0x00A0),
    (0x00AD, 0x00AD),
    (0x0300, 0x036F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x1680, 0x1680),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x2000, 0x200F),
    (0x2028, 0x202F),
    (0x205F, 0x206F),
    (0x20D0, 0x20FF),
    (0x2800, 0x2800),
    (0x3000, 0x3000),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFE20, 0xFE2F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF9, 0xFFFB),
    (0x13430, 0x13442),
    (0x13447, 0x1345F),
    (0x1BCA0, 0x1BCA3),
    (0x1D159, 0x1D159),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F),
    (0xE0100, 0xE01EF),
)


def is_blank_by_category(code_point: int) -> bool:
    """Whether a code point shows nothing by its Unicode general category (ALSO aside)."""
    return (
        code_point != 0
        and code_point not in SHOWN
        and unicodedata.category(chr(code_point)) in CATEGORIES
    )


def as_ranges(code_points: Iterable[int]) -> list[tuple[int, int]]:
    """Code points given in increasing order, as the fewest ranges (first, last)."""
    ranges: list[tuple[int, int]] = []
    for c in code_points:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return ranges


def range_lines(ranges: list[tuple[int, int]], per_line: int = 8) -> list[str]:
    """Ranges as a bracket expression writes them (escape), ``per_line`` to a line."""
    items = [
        escape(first) if first == last else f"{escape(first)}-{escape(last)}"
        for first, last in ranges
    ]
    return ["".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]


def blank_ranges() -> list[tuple[int, int]]:
    """Every blank code point, as the fewest ranges, in order."""
    blank = {c for c in range(0x110000) if is_blank_by_category(c)}
    for first, last in ALSO:
        blank.update(range(first, last + 1))
    return as_ranges(sorted(blank))


def escape(code_point: int) -> str:
    """A code point as PostgreSQL's regular expressions write it, in an E'' constant."""
    # E'\\u0001' reads the same whatever standard_conforming_strings says;
    # '\u0001' is an escape of the string itself where it is off.
    return f"\\\\u{code_point:04x}" if code_point <= 0xFFFF else f"\\\\U{code_point:08x}"


def class_lines(per_line: int = 8) -> list[str]:
    """The bracket expression's ranges, a few per line."""
    return range_lines(blank_ranges(), per_line)


def pattern_sql(indent: str = "        ") -> str:
    """The pattern as one E'' constant continued across lines (PostgreSQL joins them)."""
    lines = ["E'^['", *(f"'{line}'" for line in class_lines()), "']*$'"]
    return f"\n{indent}".join(lines)


# The pattern in is_blank's body: from "p_text ~ (" to the closing ");".
PATTERN_IN_SQL = re.compile(
    r"(create function sync_private\.is_blank\(.*?select p_text ~ \(\n {8})(.*?)(\);\n)", re.DOTALL
)


def generate(
    argv: list[str],
    usage: str,
    where: re.Pattern[str],
    what: str,
    sql: Callable[..., str],
    ranges: int,
    source: str = f"Unicode {unicodedata.unidata_version}",
) -> int:
    """A generator's command line: print ``sql()``, or put it in db/10-rules.sql with --write.

    ``where`` matches the text around it there (groups 1 and 3 stay); ``what`` names it in
    the error, ``ranges`` counts the code point ranges it holds, ``source`` the data it
    was made from.
    """
    if argv == ["--write"]:
        text = RULES_SQL.read_text()
        new, count = where.subn(lambda m: m[1] + sql() + m[3], text)
        if count != 1:
            print(f"{what} not found in {RULES_SQL}", file=sys.stderr)
            return 1
        RULES_SQL.write_text(new)
        print(f"{RULES_SQL}: {ranges} ranges ({source})")
        return 0
    if argv:
        print(usage, file=sys.stderr)
        return 2
    print(sql(indent=""))
    return 0


def main(argv: list[str]) -> int:
    """Print the class, or rewrite it in db/10-rules.sql with --write."""
    return generate(
        argv, __doc__ or "", PATTERN_IN_SQL, "is_blank's pattern", pattern_sql, len(blank_ranges())
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
