r"""The character classes of ``sync_private.script_class``, generated from Unicode data.

``<field>.mixed_script`` refuses a word (a run of letters and marks) that
mixes Latin letters with Cyrillic or Greek ones, as "Rоse" with a Cyrillic
о: the mixes that Unicode's "highly restrictive" identifiers refuse (UTS
#39, 5.2) among the scripts whose letters look alike. PostgreSQL's regular
expressions know no ``\p{Script=...}``, so the classes are written into
``db/10-rules.sql`` as ranges of code points, made by this script from
Python's ``unicodedata``::

    .venv/bin/python -m devtools.script_class          # print the classes
    .venv/bin/python -m devtools.script_class --write  # rewrite them in db/10-rules.sql

``unicodedata`` has no Script property, so a letter's script is read from
what it does have, in this order:

1. its name: a letter (general category L*) whose name holds the word
   LATIN, CYRILLIC or GREEK is of that script ("LATIN SMALL LETTER A",
   "FULLWIDTH LATIN CAPITAL LETTER A", "MODIFIER LETTER CYRILLIC EN",
   "GREEK SMALL LETTER OMEGA");
2. else its decomposition, when it is canonical or ``<super>`` / ``<sub>``
   and gives one letter of such a name: KELVIN SIGN is K, OHM SIGN is Ω,
   ª is a superscript a, ᵝ a superscript β. Not ``<font>``: the
   mathematical letters (𝐑, ℝ) are of no script in Unicode's Scripts.txt
   (Common), as the micro sign is;
3. else, when it has no decomposition, its case partner's: U+2183 ROMAN
   NUMERAL REVERSED ONE HUNDRED is the capital of U+2184 LATIN SMALL LETTER
   REVERSED C (the micro sign µ, whose capital is Greek, decomposes: Common);
4. else ``ALSO``: the 8 letters Scripts.txt calls Latin that none of the
   above says.

Checked once, by hand, against Unicode's Scripts.txt and
ScriptExtensions.txt as the regex package (2026.11.15) holds them: the
letters of Python's Unicode 14 in each class are exactly those whose Script
is Latin, Cyrillic or Greek, but U+0374 GREEK NUMERAL SIGN, Common with the
extension Greek (UTS #39 reads the extensions). The letters Common with
extensions in two scripts or more (the modifier apostrophe U+02BC, the
tone letters U+02C7-02CD) are in none, as UTS #39 resolves them.

Marks carry no script here: a mark belongs to the word of the letter it is
drawn on (a word is letters and marks), and a word mixes scripts by its
letters alone. UTS #39 also counts the few marks of one script (a Cyrillic
titlo on a Latin letter): they stack on a letter, they do not pass for one.

The fourth class, ``word``, is what a word is made of: letters and marks
of every script, and the unassigned code points, so that a letter newer
than Python's data stays inside its word. Digits, punctuation, symbols and
spaces end a word: "Nº5" and "Rose-Роза" are words of one script each.
``tests/test_rules_mixed_script.py`` holds the database to the same definition.
"""

from __future__ import annotations

import re
import sys
import unicodedata

from devtools.blank_class import as_ranges, generate, range_lines

SCRIPTS = ("latin", "cyrillic", "greek")

# Letters Scripts.txt calls Latin whose name, decomposition and case say
# nothing: modifier letters with no decomposition, the Claudian turned F.
ALSO: dict[str, tuple[int, ...]] = {
    "latin": (0x1D2F, 0x1D3B, 0x1D4E, 0x2132, 0x214E, 0x10780, 0x10781, 0x10782),
    "cyrillic": (),
    "greek": (),
}

DECOMPOSITIONS = ("", "<super>", "<sub>")


def _named(code_point: int) -> str | None:
    """The script the name of a letter says, or None."""
    words = unicodedata.name(chr(code_point), "").split()
    found = [s for s in SCRIPTS if s.upper() in words]
    return found[0] if len(found) == 1 else None


def script(code_point: int) -> str | None:
    """latin, cyrillic or greek for a letter of that script, else None (other scripts, Common)."""
    char = chr(code_point)
    if not unicodedata.category(char).startswith("L"):
        return None
    for name, extra in ALSO.items():
        if code_point in extra:
            return name
    named = _named(code_point)
    if named:
        return named
    parts = unicodedata.decomposition(char).split()
    tag = parts[0] if parts and parts[0].startswith("<") else ""
    decomposed = parts[1:] if tag else parts
    if decomposed and tag in DECOMPOSITIONS:
        # The letter it is written with (a canonical decomposition may add marks after it).
        return _named(int(decomposed[0], 16))
    if parts:
        # Any other decomposition (<font>, <compat>...) says Common: µ, the
        # micro sign, is <compat> μ, and its capital is the Greek Μ.
        return None
    for partner in (char.lower(), char.upper()):
        if len(partner) == 1 and partner != char:
            named = _named(ord(partner))
            if named:
                return named
    return None


def is_word(code_point: int) -> bool:
    """Whether a code point belongs to a word: a letter, a mark, or unassigned."""
    category = unicodedata.category(chr(code_point))
    return category[0] in "LM" or category == "Cn"


def ranges(which: str) -> list[tuple[int, int]]:
    """The code points of one class (a script's letters, or word), as the fewest ranges."""
    return as_ranges(
        c for c in range(1, 0x110000) if (is_word(c) if which == "word" else script(c) == which)
    )


def _constant(which: str, indent: str, per_line: int) -> str:
    lines = range_lines(ranges(which), per_line)
    return f"\n{indent}    ".join([f"E'{lines[0]}'", *(f"'{line}'" for line in lines[1:])])


def classes_sql(indent: str = "        ", per_line: int = 8) -> str:
    """The body's case expression: each class's ranges, one E'' constant continued across lines."""
    whens = [
        f"{indent}when {which!r} then\n{indent}    {_constant(which, indent, per_line)}"
        for which in (*SCRIPTS, "word")
    ]
    return "case p_class\n" + "\n".join(whens) + f"\n{indent}end"


# The case expression in script_class's body: from "select" to the closing ";".
CLASSES_IN_SQL = re.compile(
    r"(create function sync_private\.script_class\(.*?\n    select\n {8})(.*?)(;\n)", re.DOTALL
)


def main(argv: list[str]) -> int:
    """Print the classes, or rewrite them in db/10-rules.sql with --write."""
    return generate(
        argv,
        __doc__ or "",
        CLASSES_IN_SQL,
        "script_class's classes",
        classes_sql,
        sum(len(ranges(which)) for which in (*SCRIPTS, "word")),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
