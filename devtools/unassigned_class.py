r"""The character class of ``sync_private.unassigned_class``: code points Unicode leaves unassigned.

``<field>.unassigned_character`` warns of a code point no character is
assigned to (General_Category Cn): no font draws it, so a reader sees a box
or nothing, and text that looks alike differs. PostgreSQL's regular
expressions know no ``\p{Cn}``, so the class is written into
``db/10-rules.sql`` as ranges of code points, made by this script::

    .venv/bin/python -m devtools.unassigned_class          # print the class
    .venv/bin/python -m devtools.unassigned_class --write  # rewrite it in db/10-rules.sql

Python 3.11's ``unicodedata`` is Unicode 14 (2021): every character assigned
since (the emoji U+1FAE8 SHAKING FACE of Unicode 15, Unicode 17's CJK
extension J...) would read as unassigned there. The class comes from the
``regex`` package's tables instead (pinned in ``requirements-dev.txt``;
2026.11.15 holds Unicode 18). The noncharacters (U+FDD0-FDEF, and the last
two code points of every plane) are Cn too, but ``<field>.control_character``
reports them: they are left out, so each is told once. Surrogates (Cs)
cannot be in a text.
"""

from __future__ import annotations

import re
import sys

import regex

from devtools.blank_class import as_ranges, generate, range_lines

#: What the regex package says of an unassigned code point.
UNASSIGNED = regex.compile(r"\p{Cn}")


def is_noncharacter(code_point: int) -> bool:
    """U+FDD0-FDEF and U+xxFFFE-xxFFFF: for a program's internal use, never text."""
    return 0xFDD0 <= code_point <= 0xFDEF or code_point & 0xFFFE == 0xFFFE


def is_unassigned(code_point: int) -> bool:
    """Whether no character is assigned to a code point (noncharacters aside)."""
    return not is_noncharacter(code_point) and UNASSIGNED.match(chr(code_point)) is not None


def unassigned_ranges() -> list[tuple[int, int]]:
    """Every unassigned code point, as the fewest ranges, in order."""
    return as_ranges(c for c in range(0x110000) if is_unassigned(c))


def class_sql(indent: str = "        ", per_line: int = 8) -> str:
    """The bracket expression as one E'' constant continued across lines (PostgreSQL joins them)."""
    lines = range_lines(unassigned_ranges(), per_line)
    return f"\n{indent}".join(["E'['", *(f"'{line}'" for line in lines), "']'"])


# The class in unassigned_class's body: from "select" to the closing ";".
CLASS_IN_SQL = re.compile(
    r"(create function sync_private\.unassigned_class\(\).*?\n    select\n {8})(.*?)(;\n)",
    re.DOTALL,
)


def main(argv: list[str]) -> int:
    """Print the class, or rewrite it in db/10-rules.sql with --write."""
    return generate(
        argv,
        __doc__ or "",
        CLASS_IN_SQL,
        "unassigned_class's class",
        class_sql,
        len(unassigned_ranges()),
        f"regex {regex.__version__}",
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
