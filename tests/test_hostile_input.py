"""Hostile and broken deliveries, through sync.receive, plus hypothesis fuzzing of the rules.

For every case: the exact bytes are stored, status and error codes are as
specified, and public.fragrances changes only by a valid change, exactly as
the change says. tests/test_rules.py holds one case per data rule; this file
adds the attacks and edge cases around them. Fragrance 7 exists.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import Server
from helpers import codes, fuzz_settings, receive
from hypothesis import given
from hypothesis import strategies as st
from psycopg.rows import dict_row

CATALOG = "select md5(string_agg(f::text, '|' order by fragrance_id)) from public.fragrances as f"
MIB = 1024 * 1024


def nested(depth: int, inner: str = "1") -> str:
    """A JSON array nested `depth` levels deep."""
    return "[" * depth + inner + "]" * depth


def obj(**fields: Any) -> bytes:
    """A delivery about fragrance 7 with the given fields."""
    return json.dumps({"fragrance_id": 7, **fields}).encode()


def text(body: str) -> bytes:
    return body.encode()


# (case id, body, expected status, expected error codes)
CORPUS: list[tuple[str, bytes, str, list[str]]] = [
    # not JSON, or not the JSON we read
    ("whitespace only", b" \r\n\t ", "rejected", ["body.not_json"]),
    ("byte order mark", b'\xef\xbb\xbf{"fragrance_id": 7}', "rejected", ["body.not_json"]),
    (
        "two objects",
        text('{"fragrance_id": 7}\n{"fragrance_id": 8}'),
        "rejected",
        ["body.not_json"],
    ),
    ("single quotes", text("{'fragrance_id': 7}"), "rejected", ["body.not_json"]),
    ("trailing comma", text('{"fragrance_id": 7,}'), "rejected", ["body.not_json"]),
    ("comment", text('{"fragrance_id": 7} // note'), "rejected", ["body.not_json"]),
    ("hex number", text('{"fragrance_id": 7, "cost": 0x10}'), "rejected", ["body.not_json"]),
    ("leading zero", text('{"fragrance_id": 7, "cost": 01}'), "rejected", ["body.not_json"]),
    ("bare fraction", text('{"fragrance_id": 7, "cost": .5}'), "rejected", ["body.not_json"]),
    ("-Infinity", text('{"fragrance_id": 7, "cost": -Infinity}'), "rejected", ["body.not_json"]),
    ("form encoded", text("fragrance_id=7&cost=1"), "rejected", ["body.not_json"]),
    # JSON that is not an object
    ("number", text("7"), "rejected", ["body.not_object"]),
    ("boolean", text("true"), "rejected", ["body.not_object"]),
    (
        "array of a valid change",
        text('[{"fragrance_id": 7, "cost": 1}]'),
        "rejected",
        ["body.not_object"],
    ),
    ("empty object", text("{}"), "rejected", ["fragrance_id.missing"]),
    # invalid UTF-8 and unstorable unicode
    (
        "overlong encoding",
        b'{"fragrance_id": 7, "name": "\xc0\xaf"}',
        "rejected",
        ["body.not_utf8"],
    ),
    (
        "utf-8 surrogate",
        b'{"fragrance_id": 7, "name": "\xed\xa0\x80"}',
        "rejected",
        ["body.not_utf8"],
    ),
    (
        "truncated sequence",
        b'{"fragrance_id": 7, "name": "\xe2\x82"}',
        "rejected",
        ["body.not_utf8"],
    ),
    (
        "latin-1 body",
        '{"fragrance_id": 7, "name": "Café"}'.encode("latin-1"),
        "rejected",
        ["body.not_utf8"],
    ),
    ("lone nul byte", b"\x00", "rejected", ["body.not_utf8"]),
    (
        "escaped lone surrogate",
        text('{"fragrance_id": 7, "name": "\\ud800"}'),
        "rejected",
        ["body.not_json"],
    ),
    (
        "escaped nul in a key",
        text('{"fragrance_id": 7, "a\\u0000": 1}'),
        "rejected",
        ["body.unsupported_unicode"],
    ),
    (
        "escaped nul at the end",
        text('{"fragrance_id": 7, "name": "a\\u0000"}'),
        "rejected",
        ["body.unsupported_unicode"],
    ),
    (
        "escaped surrogate pair",
        text('{"fragrance_id": 7, "name": "\\ud83c\\udf39"}'),
        "applied",
        [],
    ),
    # numbers as strings, booleans as strings
    ("cost 'NaN'", obj(cost="NaN"), "rejected", ["cost.not_number"]),
    ("cost '1e400'", obj(cost="1e400"), "rejected", ["cost.not_number"]),
    ("id '7'", text('{"fragrance_id": "7", "cost": 1}'), "rejected", ["fragrance_id.not_integer"]),
    (
        "id 'true'",
        text('{"fragrance_id": "true", "cost": 1}'),
        "rejected",
        ["fragrance_id.not_integer"],
    ),
    ("forbidden 'false'", obj(forbidden="false"), "rejected", ["forbidden.not_boolean"]),
    ("forbidden 't'", obj(forbidden="t"), "rejected", ["forbidden.not_boolean"]),
    ("forbidden 0", obj(forbidden=0), "rejected", ["forbidden.not_boolean"]),
    # extreme numbers
    ("cost -1e400", text('{"fragrance_id": 7, "cost": -1e400}'), "rejected", ["cost.not_finite"]),
    (
        "cost just past double",
        text('{"fragrance_id": 7, "cost": 1.8e308}'),
        "rejected",
        ["cost.not_finite"],
    ),
    ("cost 1e308", text('{"fragrance_id": 7, "cost": 1e308}'), "rejected", ["cost.too_large"]),
    ("cost 1E2", text('{"fragrance_id": 7, "cost": 1E2}'), "applied", []),
    ("cost -0.0", text('{"fragrance_id": 7, "cost": -0.0}'), "applied", []),
    (
        "id 1e400",
        text('{"fragrance_id": 1e400, "cost": 1}'),
        "rejected",
        ["fragrance_id.out_of_range"],
    ),
    (
        "id of 5,000 digits",
        text('{"fragrance_id": ' + "9" * 5000 + ', "cost": 1}'),
        "rejected",
        ["fragrance_id.out_of_range"],
    ),
    (
        "id -2147483649",
        text('{"fragrance_id": -2147483649, "cost": 1}'),
        "rejected",
        ["fragrance_id.out_of_range"],
    ),
    ("id 7e0", text('{"fragrance_id": 7e0, "cost": 3}'), "applied", []),
    ("id 7.000", text('{"fragrance_id": 7.000, "cost": 3}'), "applied", []),
    (
        "id 7.0000000001",
        text('{"fragrance_id": 7.0000000001, "cost": 3}'),
        "rejected",
        ["fragrance_id.not_integer"],
    ),
    # deep nesting (10,000 levels) and huge values
    ("body nested 10,000 deep", text(nested(10_000)), "rejected", ["body.not_object"]),
    (
        "name nested 10,000 deep",
        text('{"fragrance_id": 7, "name": ' + nested(10_000) + "}"),
        "rejected",
        ["name.not_string"],
    ),
    (
        "unknown field nested 10,000 deep",
        text('{"fragrance_id": 7, "cost": 2, "x": ' + nested(10_000) + "}"),
        "applied",
        [],
    ),
    ("name of 1 MiB", obj(name="n" * MIB), "rejected", ["name.too_long"]),
    ("description of 1 MiB", obj(description="d" * MIB), "rejected", ["description.too_long"]),
    ("unknown field of 1 MiB", obj(cost=4, notes="x" * MIB), "applied", []),
    # duplicate keys
    (
        "duplicate id",
        text('{"fragrance_id": 7, "fragrance_id": 8, "cost": 1}'),
        "rejected",
        ["body.duplicate_key"],
    ),
    (
        "duplicate id, the last out of range",
        text('{"fragrance_id": 1, "fragrance_id": 2147483648}'),
        "rejected",
        ["body.duplicate_key"],
    ),
    (
        "duplicate valid fields",
        text('{"fragrance_id": 7, "cost": 1, "cost": 1}'),
        "rejected",
        ["body.duplicate_key"],
    ),
    # SQL and HTML: data, stored and applied verbatim
    ("sql in a name", obj(name="Rose'); drop table public.fragrances; --"), "applied", []),
    (
        "html in a description",
        obj(description='<script>alert("x")</script><img src=x onerror=1>'),
        "applied",
        [],
    ),
    (
        "sql in a key",
        text('{"fragrance_id": 7, "cost": 5, "cost\\"; drop table sync.inbox; --": 1}'),
        "applied",
        [],
    ),
    ("psql meta in a name", obj(name="\\! rm -rf / \\gexec"), "applied", []),
    ("format directives", obj(name="%s %I %L %1$s"), "applied", []),
    # unicode: lengths are characters (code points), not bytes
    ("151 emoji", obj(name="\U0001f339" * 151), "rejected", ["name.too_long"]),
    ("1,024 emoji description", obj(description="\U0001f339" * 1024), "applied", []),
    (
        "1,025 emoji description",
        obj(description="\U0001f339" * 1025),
        "rejected",
        ["description.too_long"],
    ),
    ("150 code points with combining marks", obj(name="e\u0301" * 75), "applied", []),
    (
        "151 code points with combining marks",
        obj(name="e" + "\u0301" * 150),
        "rejected",
        ["name.too_long"],
    ),
    ("right-to-left override", obj(name="\u202eesoR"), "rejected", ["name.bidi_control"]),
    ("arabic and hebrew", obj(name="عطر ורד"), "applied", []),
    ("emoji zwj family", obj(name="\U0001f468\u200d\U0001f469\u200d\U0001f467"), "applied", []),
]


def _expected_row(before: dict[str, Any], data: bytes) -> dict[str, Any]:
    """The fragrance after a valid change: each field it carries, with its new value."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 25_000))  # the 10,000-deep cases
    try:
        payload = json.loads(data, parse_float=Decimal, parse_int=Decimal)
    finally:
        sys.setrecursionlimit(limit)
    after = dict(before)
    for field in ("name", "description", "cost", "forbidden"):
        if field in payload:
            after[field] = payload[field]
    return after


@pytest.mark.parametrize(
    ("data", "status", "errors"), [pytest.param(b, s, e, id=i) for i, b, s, e in CORPUS]
)
def test_a_hostile_delivery_is_kept_exactly_and_changes_only_what_is_valid(
    tx: psycopg.Connection, data: bytes, status: str, errors: list[str]
) -> None:
    catalog_before = tx.execute(CATALOG).fetchone()
    with tx.cursor(row_factory=dict_row) as cur:
        before = cur.execute("select * from public.fragrances where fragrance_id = 7").fetchone()
    receipt = receive(tx, data)

    assert (receipt["status"], codes(receipt["reasons"], "error")) == (status, errors)
    stored = tx.execute("select body from sync.inbox where id = %s", [receipt["inbox_id"]])
    assert stored.fetchone() == (data,)
    assert all(len(r["message"]) < 300 for r in receipt["reasons"])
    if status == "applied":
        with tx.cursor(row_factory=dict_row) as cur:
            after = cur.execute("select * from public.fragrances where fragrance_id = 7").fetchone()
        assert after == _expected_row(before, data)
    else:
        assert tx.execute(CATALOG).fetchone() == catalog_before


def test_json_nested_deeper_than_the_database_reads_is_not_called_invalid(
    tx: psycopg.Connection,
) -> None:
    """Deeper than the server's stack reads (max_stack_depth), JSON is refused, still JSON.

    The reason said "body is not valid JSON": a DBA looked for a syntax error in a
    body a JSON parser reads, where only the depth is at fault.
    """
    data = text('{"fragrance_id": 7, "cost": 2, "x": ' + nested(100_000) + "}")
    receipt = receive(tx, data)
    assert receipt["status"] == "rejected"
    [reason] = receipt["reasons"]
    assert reason["code"] == "body.not_json"
    assert "not valid JSON" not in reason["message"]
    assert "nests deeper than the database reads" in reason["message"]


def test_sql_in_values_is_only_data(tx: psycopg.Connection) -> None:
    receive(tx, obj(name="x'); drop table public.fragrances; --"))
    receive(tx, text('{"fragrance_id": 7, "cost": 5, "cost\\"; drop table sync.inbox; --": 1}'))
    assert tx.execute("select count(*) from public.fragrances").fetchone() == (5000,)
    assert tx.execute("select count(*) from sync.inbox").fetchone() == (2,)


# --- Fuzzing ----------------------------------------------------------------------------

FUZZ = fuzz_settings(120)
FIELDS = ("name", "description", "cost", "forbidden")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Objects shaped like a change, each field anything at all.
change_like = st.fixed_dictionaries(
    {},
    optional={
        "fragrance_id": st.integers(min_value=-3, max_value=5005) | json_values,
        **{f: json_values for f in FIELDS},
        "extra": json_values,
    },
)
# Valid bodies with bytes inserted, deleted or flipped somewhere.
valid_body = st.builds(
    lambda i: json.dumps({"fragrance_id": i, "cost": 1, "forbidden": True}).encode(),
    st.integers(0, 4999),
)
mangled = st.builds(
    lambda b, at, cut, junk: b[: at % (len(b) + 1)] + junk + b[at % (len(b) + 1) + cut :],
    valid_body,
    st.integers(0, 200),
    st.integers(0, 3),
    st.binary(max_size=4),
)

# What a valid name or description may hold: no controls, no bidirectional overrides, no
# invisible characters (sync_private.first_invisible; its joiners and selectors, and the
# braille blank, pass in place, but a random text puts them anywhere), no private use, no
# code point Unicode leaves unassigned (<field>.unassigned_character warns; Cn as Python's
# Unicode 14 says, all assigned in the Unicode 18 the rule reads), no U+FFFC or U+FFFD
# (<field>.replacement_character: a character lost before the CMS).
INVISIBLE = [
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xE000, 0xF8FF),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0x1BCA0, 0x1BCA3),
    (0x1D159, 0x1D159),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
    (0xF0000, 0x10FFFF),
]
visible = st.characters(
    codec="utf-8",
    exclude_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufffc\ufffd",
    exclude_categories=("Cs", "Cc", "Cn"),
).filter(lambda c: not any(first <= ord(c) <= last for first, last in INVISIBLE))


def encoded_twice(text: str) -> bool:
    """Whether ``text`` holds a character's UTF-8 bytes read as Windows-1252 characters.

    What <field>.double_encoded looks for ("Ã©" for é), judged by Python's codecs.
    """
    for start in range(len(text)):
        for size in (2, 3, 4):
            part = text[start : start + size]
            try:
                if len(part) == size and len(part.encode("cp1252").decode("utf-8")) == 1:
                    return True
            except UnicodeError:
                continue
    return False


#: What <field>.placeholder reports, trimmed and in small letters (and "lorem ipsum" to start).
PLACEHOLDERS = frozenset(
    {"null", "undefined", "none", "nil", "nan", "n/a", "tbd", "tba", "todo", "fixme", "test"}
    | {"xxx", "untitled", "string", "[object object]"}
)


def placeholder(text: str) -> bool:
    """Whether ``text`` is a placeholder left where no value was given."""
    return text.strip().lower() in PLACEHOLDERS or text.lower().startswith("lorem ipsum")


#: What <field>.html reports: a tag or a character reference (sync_private.first_html).
HTML = re.compile(
    r"<(?:/?[A-Za-z]|!)[^<>]*>|&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});"
)


def html(text: str) -> bool:
    """Whether ``text`` holds an HTML tag or character reference."""
    return HTML.search(text) is not None


# Trimmed, or <field>.untrimmed warns: Python's whitespace is Unicode's White_Space for
# every character that is no control, as in sync_private.is_untrimmed.
# A name holds no line break: the line and paragraph separators are name.control_character.
# It is composed (NFC), or name.not_normalized warns.
valid_name = (
    st.builds(
        lambda a, b: a + b,
        st.sampled_from("AZaz09"),
        st.text(visible.filter(lambda c: c not in "\u2028\u2029"), max_size=149),
    )
    .map(lambda text: unicodedata.normalize("NFC", text))
    .filter(lambda text: text == text.strip() and len(text) <= 150)
    # Nor encoded twice, a placeholder or markup, or name.double_encoded, .placeholder or
    # .html warns.
    .filter(lambda text: not encoded_twice(text) and not placeholder(text) and not html(text))
)
valid_delta = st.fixed_dictionaries(
    {"fragrance_id": st.integers(min_value=0, max_value=4999)},
    optional={
        "name": valid_name,
        # Composed too, or description.not_normalized warns.
        "description": st.text(visible, max_size=1024)
        .map(lambda text: unicodedata.normalize("NFC", text))
        .filter(lambda text: text == text.strip() and len(text) <= 1024)
        # Nor starts as a spreadsheet formula, or description.spreadsheet_formula warns.
        .filter(lambda text: not text.startswith(("=", "+", "-", "@")))
        .filter(lambda text: not encoded_twice(text) and not placeholder(text))
        .filter(lambda text: not html(text)),
        # Up to cost.implausible's limit, or it warns (tests/test_rules_implausible_cost.py
        # applies costs up to 2^53 - 1 with that warning).
        "cost": st.integers(min_value=0, max_value=1000),
        "forbidden": st.booleans(),
    },
).filter(lambda d: len(d) > 1)


@pytest.fixture(scope="module")
def fuzz_db(server: Server, shared_dbname: str) -> Iterator[psycopg.Connection]:
    """One connection for every example; each example runs in a transaction rolled back."""
    with psycopg.connect(server.url(shared_dbname)) as conn:
        yield conn


def _deliver_and_check(conn: psycopg.Connection, data: bytes) -> dict[str, Any]:
    """Deliver, then check what every delivery must satisfy; return the receipt."""
    history_before = conn.execute("select count(*) from sync.fragrance_history").fetchone()
    receipt = receive(conn, data)
    stored = conn.execute("select body from sync.inbox where id = %s", [receipt["inbox_id"]])
    assert stored.fetchone() == (data,)
    has_error = bool(codes(receipt["reasons"], "error"))
    assert receipt["status"] in {"applied", "ignored", "rejected"}
    assert (receipt["status"] == "rejected") == has_error
    if has_error:
        assert (
            conn.execute("select count(*) from sync.fragrance_history").fetchone() == history_before
        )
    return receipt


@FUZZ
@given(data=st.binary(max_size=300) | mangled)
def test_any_bytes_are_stored_exactly_and_never_raise(
    fuzz_db: psycopg.Connection, data: bytes
) -> None:
    with fuzz_db.transaction(force_rollback=True):
        _deliver_and_check(fuzz_db, data)


@FUZZ
@given(payload=json_values | change_like)
def test_any_json_is_stored_exactly_and_applied_only_without_errors(
    fuzz_db: psycopg.Connection, payload: Any
) -> None:
    with fuzz_db.transaction(force_rollback=True):
        _deliver_and_check(fuzz_db, json.dumps(payload).encode())


@FUZZ
@given(delta=valid_delta)
def test_a_valid_delta_applies_exactly_its_fields(
    fuzz_db: psycopg.Connection, delta: dict[str, Any]
) -> None:
    data = json.dumps(delta).encode()
    with fuzz_db.transaction(force_rollback=True), fuzz_db.cursor(row_factory=dict_row) as cur:
        query = "select * from public.fragrances where fragrance_id = %s"
        before = cur.execute(query, [delta["fragrance_id"]]).fetchone()
        receipt = _deliver_and_check(fuzz_db, data)
        assert (receipt["status"], receipt["reasons"]) == ("applied", [])
        assert cur.execute(query, [delta["fragrance_id"]]).fetchone() == _expected_row(before, data)
        changed = cur.execute(
            "select distinct fragrance_id from sync.fragrance_history where inbox_id = %s",
            [receipt["inbox_id"]],
        ).fetchall()
        assert [r["fragrance_id"] for r in changed] in ([], [delta["fragrance_id"]])
