"""The text rules that sync_private.broken_text_rule tests only on a text beyond ASCII.

Ten of a text field's rules look for characters beyond ASCII (C1 and bidirectional
controls, invisible characters, normal form C, stacked and leading marks, mixed
scripts, unassigned code points, the replacement characters, a double encoding),
and broken_text_rule tests them only on a text whose bytes outnumber its
characters: on the bench's bodies that made the judge 0.83 x as costly
(bench/README.md, step 43). It is right only while none of them can match an ASCII
text. Here each one is asked, alone, of every ASCII character (but NUL, which no
text holds) alone, thrice, between letters and after a space, and of every pair of
them between letters: a rule changed to match ASCII must leave the guard.
"""

from __future__ import annotations

import psycopg
import pytest

# Each rule the guard holds, as the test of broken_text_rule, true when the text breaks it.
GUARDED: list[tuple[str, str]] = [
    ("c1_control", "sync_private.first_c1_control(t) is not null"),
    ("bidi_control", "sync_private.first_bidi_control(t) is not null"),
    ("invisible_character", "sync_private.first_invisible(t) is not null"),
    ("not_normalized", "sync_private.is_unnormalized(t)"),
    ("stacked_marks", "sync_private.stacked_marks(t, 1) is not null"),
    ("mixed_script", "sync_private.mixed_script(t) is not null"),
    ("leading_mark", "sync_private.starts_with_mark(t)"),
    ("unassigned_character", "sync_private.first_unassigned(t) is not null"),
    ("replacement_character", "sync_private.first_replacement(t) is not null"),
    ("double_encoded", "sync_private.first_double_encoding(t) is not null"),
]
GUARDED_IDS = [rule for rule, _ in GUARDED]

ASCII_TEXTS = """
    select x.t
    from generate_series(1, 127) as a (c)
    cross join lateral (values (chr(a.c)), (repeat(chr(a.c), 3)), ('Ro' || chr(a.c) || 'se'),
                               (chr(a.c) || 'Rose'), ('Rose' || chr(a.c)),
                               ('Rose ' || chr(a.c))) as x (t)
    union all
    select 'x' || chr(a.c) || chr(b.c) || 'y'
    from generate_series(1, 127) as a (c), generate_series(1, 127) as b (c)
"""


@pytest.mark.parametrize(("rule", "test"), GUARDED, ids=GUARDED_IDS)
def test_no_guarded_rule_matches_an_ascii_text(
    tx: psycopg.Connection, rule: str, test: str
) -> None:
    query = (
        f"select count(*), count(*) filter (where {test}),"
        f" (array_agg(t) filter (where {test}))[1:5] from ({ASCII_TEXTS}) as s (t)"
    )
    row = tx.execute(query).fetchone()
    assert row is not None
    texts, broken, examples = row
    assert texts == 127 * 6 + 127 * 127
    assert (broken, examples) == (0, None), f"{rule} matches ASCII: move it out of the guard"


@pytest.mark.parametrize(
    ("field", "text", "code"),
    [
        ("description", "Rose \u0093Noir\u0094  ", "description.c1_control"),
        ("name", "Rose\u202e", "name.bidi_control"),
        ("name", "Ro\u200bse", "name.invisible_character"),
        ("name", "Rose\u0301", "name.not_normalized"),
        ("name", "R" + "\u0334" * 12 + "ose", "name.stacked_marks"),
        ("name", "R\u043ese", "name.mixed_script"),
        ("name", "\u0301Rose", "name.leading_mark"),
        ("name", "Rose\u0378", "name.unassigned_character"),
        ("name", "Cr\ufffdme", "name.replacement_character"),
        ("name", "Caf\u00c3\u00a9", "name.double_encoded"),
        # Beyond ASCII, the rules outside the guard are told as before, in their order.
        ("name", "Ros\u00e9 ", "name.untrimmed"),
        ("name", "=Ros\u00e9", "name.spreadsheet_formula"),
        ("name", "Ros\u00e9 &amp; Oud", "name.html"),
        ("description", "\u0301Rose  ", "description.leading_mark"),
        ("description", "Ros\u00e9  ", "description.untrimmed"),
        # ASCII: the rules outside the guard still run.
        ("name", "Rose\u0007", "name.control_character"),
        ("name", "   ", "name.blank"),
        ("name", "Rose ", "name.untrimmed"),
        ("name", "@Rose", "name.spreadsheet_formula"),
        ("name", "undefined", "name.placeholder"),
        ("description", "<p>Petals</p>  ", "description.html"),
        ("name", "Rose", None),
    ],
)
def test_each_text_is_reported_by_its_rule(
    tx: psycopg.Connection, field: str, text: str, code: str | None
) -> None:
    row = tx.execute(
        "select sync_private.broken_text_rule(%s, %s, r.rules)"
        " from sync_private.current_rules() as r",
        (field, text),
    ).fetchone()
    assert row == (code,)
