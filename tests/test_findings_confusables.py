"""Names written in Cyrillic or Greek letters that look Latin are name.lookalike of the Latin name.

"СОСО" in Cyrillic capitals, "РОМА", or Greek "ΑΙΡ" passed every rule beside
"COCO", "POMA" and "AIP": a word of one script is no mixed_script, and
name.lookalike folded names with NFKC and lower case, which keep Cyrillic and
Greek letters as they are. sync_private.name_key now folds the Cyrillic and
Greek letters whose skeleton in Unicode's confusables (UTS #39) is an ASCII
letter's to that letter, the other case with them (devtools/confusable_fold.py
says which and why). Such a name is a real Russian or Greek word as often as a
spoof: it is never refused as a delta, and two names of the catalog that look
the same are a finding at rest, as NFKC lookalikes are. Judged three ways:
the catalog check of rows loaded without the write triggers (an adopted
catalog), the triggers that judge a DBA's UPDATE, and the merge of deliveries.
The fold in the database is held to the generator's, code point by code point,
and the index to the function. Greek final ς folds as σ (migration 0070): lower()
keeps it, though "ΡΟΔΟΣ" and "ροδος" are one word.
"""

from __future__ import annotations

import re
import unicodedata

import psycopg
import pytest
from conftest import ROOT
from helpers import (
    as_replica,
    body,
    check_catalog,
    check_changes_no_lookalike,
    lookalike_pair,
    lookalikes_of_1_and_2,
    receive_many,
    rename_1_and_2,
)

from devtools.confusable_fold import GATE, KEY_IN_SQL, fold, key_sql
from devtools.script_class import script

# (case id, names of fragrances 1 and 2, whether both are then name.lookalike).
PAIRS: list[tuple[str, tuple[str, str], bool]] = [
    ("Cyrillic capitals", ("\u0421\u041e\u0421\u041e", "COCO"), True),
    ("Cyrillic capitals, Latin title case", ("\u0421\u041e\u0421\u041e", "Coco"), True),
    ("Cyrillic small letters", ("\u0441\u043e\u0441\u043e", "coco"), True),
    ("Cyrillic Р М look Latin P M", ("\u0420\u041e\u041c\u0410", "POMA"), True),
    ("Cyrillic Н В Т К look Latin H B T K", ("\u041d\u0412\u0422\u041a", "HBTK"), True),
    ("Greek capitals", ("\u0391\u0399\u03a1", "AIP"), True),
    ("Greek capitals beside Cyrillic ones", ("\u0391\u0399\u03a1", "\u0410\u0406\u0420"), True),
    ("Greek Βeta Εpsilon Τau Αlpha", ("\u0392\u0395\u03a4\u0391", "Beta"), True),
    ("Cyrillic ё folds as е with its diaeresis", ("\u0401\u0421\u041e", "\u00cbCO"), True),
    ("Greek ό folds as ο with its accent", ("\u039a\u03cc\u03ba\u03bf", "K\u00f3ko"), True),
    ("Ukrainian і and ј, Macedonian ѕ", ("\u0405\u0456\u0458\u0430", "Sija"), True),
    ("full width and Cyrillic", ("\uff23\uff2f\uff23\uff2f", "\u0441\u043e\u0441\u043e"), True),
    # A small letter folds with its capital, whatever it looks like alone: н as Н.
    ("a small letter folds as its capital", ("\u043d\u043e\u0442\u0430", "Hota"), True),
    # lower() keeps a small letter that is not its capital's small letter: folded to it
    # (migration 0070). A word-final sigma is written ς, and lower('Σ') is σ.
    (
        "Greek final ς is σ",
        ("\u03a1\u039f\u0394\u039f\u03a3", "\u03c1\u03bf\u03b4\u03bf\u03c2"),
        True,
    ),
    (
        "Greek final ς, title case",
        ("\u03a1\u03bf\u03b4\u03bf\u03c2", "\u03a1\u039f\u0394\u039f\u03a3"),
        True,
    ),
    (
        "Greek final ς and σ in two words",
        (
            "\u0394\u03c1\u03bf\u03c3\u03bf\u03c2 \u039d\u03bf\u03c2",
            "\u0394\u03a1\u039f\u03a3\u039f\u03a3 \u039d\u039f\u03a3",
        ),
        True,
    ),
    (
        "Greek lunate ϲ is ς, so σ",
        ("\u03a1\u039f\u0394\u039f\u03a3", "\u03c1\u03bf\u03b4\u03bf\u03f2"),
        True,
    ),
    ("old Cyrillic ᲁ is д", ("\u0414\u041e\u041c", "\u1c81\u043e\u043c"), True),
    (
        "old Cyrillic ᲆ ᲇ are ъ ѣ",
        ("\u041e\u0411\u042a\u0462\u041b\u042a", "\u043e\u0431\u1c86\u1c87\u043b\u1c86"),
        True,
    ),
    # What lower() or NFKC fold already: the capital sharp s ẞ is ß, the Kelvin sign K.
    ("capital sharp s ẞ is ß", ("STRA\u1e9eE", "Stra\u00dfe"), True),
    ("Kelvin sign", ("\u212aOKO", "koko"), True),
    ("angstrom sign", ("\u212bS", "\u00e5s"), True),
    # Guards: names that do not look alike stay apart.
    (
        "σ is no final ς's other letter",
        ("\u03c1\u03bf\u03b4\u03bf\u03c2", "\u03c1\u03bf\u03b4\u03bf"),
        False,
    ),
    ("ß is not ss (Masse and Maße are two words)", ("Masse", "Ma\u00dfe"), False),
    ("Turkish dotless ı is a letter of its own", ("k\u0131rm\u0131z\u0131", "kirmizi"), False),
    ("Greek Ρ is a P, not an R", ("\u0391\u0399\u03a1", "AIR"), False),
    (
        "a transliteration is another name",
        ("\u041c\u043e\u0441\u043a\u0432\u0430", "Moskva"),
        False,
    ),
    ("Russian з is no s", ("\u0420\u043e\u0437\u0430", "Posa"), False),
    ("two Russian names", ("\u0420\u043e\u0437\u0430", "\u0420\u043e\u0441\u0430"), False),
    (
        "two Russian names of foldable letters",
        ("\u0412\u0435\u0440\u0430", "\u0412\u0435\u043d\u0430"),
        False,
    ),
    ("two Greek names", ("\u039c\u03ad\u03bb\u03b9", "\u039c\u03ae\u03bb\u03bf"), False),
    ("Greek Athena", ("\u0391\u03b8\u03b7\u03bd\u03ac", "Athena"), False),
    # г looks like r, but Г like no Latin letter: neither folds (Г would be an R).
    ("Russian г is not folded", ("\u0433\u043e\u0440\u0430", "ropa"), False),
    ("an accent is another letter", ("\u0421\u041e\u0421\u041e", "C\u00d3CO"), False),
]
IDS = [i for i, _, _ in PAIRS]


@pytest.mark.parametrize(("names", "lookalike"), [(n, e) for _, n, e in PAIRS], ids=IDS)
def test_an_adopted_catalog_is_checked_for_names_that_look_alike_across_scripts(
    db: psycopg.Connection, names: tuple[str, str], lookalike: bool
) -> None:
    with as_replica(db):  # a bulk load: no trigger
        rename_1_and_2(db, names)
    check_catalog(db)
    assert lookalikes_of_1_and_2(db) == lookalike_pair(lookalike)


@pytest.mark.parametrize(("names", "lookalike"), [(n, e) for _, n, e in PAIRS], ids=IDS)
def test_a_dbas_rename_opens_the_lookalike_finding_of_both_names(
    db: psycopg.Connection, names: tuple[str, str], lookalike: bool
) -> None:
    """The second rename judges the first fragrance again; the check then changes nothing."""
    rename_1_and_2(db, names)
    assert lookalikes_of_1_and_2(db) == lookalike_pair(lookalike)
    check_changes_no_lookalike(db)


@pytest.mark.parametrize(("names", "lookalike"), [(n, e) for _, n, e in PAIRS], ids=IDS)
def test_deliveries_of_such_names_are_applied_and_their_lookalikes_found(
    db: psycopg.Connection, names: tuple[str, str], lookalike: bool
) -> None:
    """A Russian or Greek name is never refused for looking Latin: a finding, not a reason."""
    receipts = receive_many(
        db, [body({"fragrance_id": i, "name": n}) for i, n in enumerate(names, 1)]
    )
    assert [r[1] for r in receipts] == ["applied", "applied"]
    assert lookalikes_of_1_and_2(db) == lookalike_pair(lookalike)
    assert db.execute(
        "select count(*) from sync.inbox where id = any(%s) and reasons::text like '%%lookalike%%'",
        [[r[0] for r in receipts]],
    ).fetchone() == (0,)


def test_the_finding_says_the_name_and_names_the_other_fragrances(db: psycopg.Connection) -> None:
    names = {1: "\u0421\u041e\u0421\u041e", 2: "COCO", 3: "Coco", 4: "\u0441\u043e\u0441\u043e"}
    receive_many(db, [body({"fragrance_id": i, "name": n}) for i, n in names.items()])
    rows = db.execute(
        "select fragrance_id, value, shared_with, message from sync.open_finding"
        " where rule = 'name.lookalike' and fragrance_id <= 4 order by fragrance_id"
    ).fetchall()
    assert [r[:3] for r in rows] == [
        (1, names[1], [2, 3, 4]),
        (2, names[2], [1, 3, 4]),
        (3, names[3], [1, 2, 4]),
        (4, names[4], [1, 2, 3]),
    ]
    assert rows[0][3].startswith(
        'name "\u0421\u041e\u0421\u041e" differs from another fragrance\'s name only in case,'
        " width or another compatibility form, in Cyrillic or Greek letters that look like"
        " Latin ones, or in its spaces"
    )


def test_a_word_that_mixes_scripts_is_refused_and_at_rest_also_a_lookalike(
    db: psycopg.Connection,
) -> None:
    """A Cyrillic о in "Rose": mixed_script as before, and now a lookalike of "Rose" too."""
    with as_replica(db):
        db.execute("update public.fragrances set name = 'Rose' where fragrance_id = 1")
        db.execute("update public.fragrances set name = 'R\u043ese' where fragrance_id = 2")
    check_catalog(db)
    assert lookalikes_of_1_and_2(db) == {1: [2], 2: [1]}
    assert db.execute(
        "select rule from sync.open_finding where fragrance_id = 2 and rule like 'name.%'"
        " order by rule"
    ).fetchall() == [("name.lookalike",), ("name.mixed_script",)]


def test_the_fold_in_the_database_is_the_generators() -> None:
    """After a new confusables.txt: python -m devtools.confusable_fold --write."""
    text = (ROOT / "db" / "45-findings.sql").read_text()
    copies = list(KEY_IN_SQL.finditer(text))
    assert len(copies) == 3  # name_key, and the view's two sides
    for found in copies:
        assert found[0] == key_sql(found[1], found[2])
    # Migration 0070 built the index of the same expression, the column's name as argument.
    migration = (ROOT / "migrations" / "0070-final-sigma-lookalikes.sql").read_text()
    [index] = KEY_IN_SQL.findall(migration)
    assert key_sql("name::text", index[1]) in migration


def test_every_character_the_fold_can_change_is_inside_the_gate() -> None:
    """A name outside the gate skips translate(): no character of it may hold a folded letter."""
    folded = set(fold())
    outside = [
        f"U+{c:04X}"
        for c in range(1, 0x110000)
        if not 0xD800 <= c <= 0xDFFF
        and any(ord(p) in folded for p in unicodedata.normalize("NFKD", chr(c)))
        and not any(first <= c <= last for first, last in GATE)
    ]
    assert outside == []


def test_each_cyrillic_and_greek_letter_folds_in_the_database_as_the_generator_says(
    tx: psycopg.Connection,
) -> None:
    """Every letter of the two scripts, alone and after an ASCII letter, as Python folds it.

    Its spaces folded too (migration 0053): NFKC writes Greek ypogegrammeni U+037A as a
    space and a mark, and the key drops a space at either end.
    """
    letters = [c for c in range(1, 0x110000) if script(c) in ("cyrillic", "greek")]
    folded = [
        unicodedata.normalize("NFKC", unicodedata.normalize("NFKD", chr(c)).translate(fold()))
        for c in letters
    ]
    rows = tx.execute(
        "select c, sync_private.name_key(chr(c)) = lower(normalize(a, nfkc)),"
        " sync_private.name_key('x' || chr(c)) = 'x' || lower(normalize(b, nfkc))"
        " from unnest(%s::int[], %s::text[], %s::text[]) as u (c, a, b)",
        [letters, [spaces(f) for f in folded], [spaces("x" + f)[1:] for f in folded]],
    ).fetchall()
    assert len(rows) > 700
    assert [f"U+{c:04X}" for c, alone, after in rows if not (alone and after)] == []
    ascii_keys = tx.execute(
        "select count(*) from unnest(%s::int[]) as c"
        " where sync_private.name_key(chr(c)) ~ '^[a-z]$'",
        [letters],
    ).fetchone()
    # The letters that fold, and those whose NFKD is one of them (Greek ϐ is β, so b).
    assert ascii_keys == (sum(1 for f in folded if len(f) == 1 and f.isascii()),)


def spaces(text: str) -> str:
    """A run of spaces as one and none at either end, as name_key folds them."""
    return re.sub(" {2,}", " ", text).strip(" ")


def test_a_letter_and_its_other_case_fold_alike() -> None:
    """The key folds case too: a name folds alike in capitals and in small letters."""
    table = fold()
    broken = []
    for code_point, target in table.items():
        char = chr(code_point)
        other = char.lower() if char.isupper() else char.upper()
        if len(other) != 1 or other == char or script(ord(other)) != script(code_point):
            continue
        if unicodedata.normalize("NFKD", other) != other:
            continue
        # Σ folds by lower() alone, to σ, where final ς folds.
        if table.get(ord(other), other).lower() != target.lower():
            broken.append(f"U+{code_point:04X}")
    assert broken == []
    assert len(table) > 60


def test_the_index_is_the_functions_expression(tx: psycopg.Connection) -> None:
    """Migration 0070's index, to the letter: a lookup by sync_private.name_key reads it by key."""
    tx.execute("set local enable_seqscan = off")
    plan = tx.execute(
        "explain (costs off) select fragrance_id from public.fragrances"
        " where sync_private.name_key(name) = sync_private.name_key(%s)",
        ["\u0421\u041e\u0421\u041e"],
    ).fetchall()
    text = "\n".join(r[0] for r in plan)
    assert "sync_fragrances_name_key_idx" in text and "Index Cond" in text, text
