"""What the real CMS does to a fragrance on each tick, and the chaos it may add.

Pure functions of a row and a random generator, so a seed repeats a run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from random import Random
from typing import Any

#: Appended to the name when the name changes (the contract's example).
NAME_SUFFIX = "HOOOOOOOOOOLAAA"
#: Appended to the description on every change. Catalog descriptions end in
#: two spaces, so "Produced from animals  " becomes the contract's
#: "Produced from animals  blabla...".
DESCRIPTION_SUFFIX = "blabla..."

#: The columns a delta may carry, in the order the CMS writes them.
FIELDS = ("name", "description", "cost", "forbidden")


@dataclass(frozen=True)
class Fragrance:
    """One row of the CMS's fragrances table."""

    fragrance_id: int
    name: str | None
    description: str | None
    cost: Decimal | int | None
    forbidden: bool | None


def change(row: Fragrance, rng: Random) -> dict[str, Any]:
    """The CMS's edit of one fragrance: its id and the NEW values of the fields it changed.

    ``forbidden`` always flips and ``description`` always grows; ``name``
    grows about half the time; ``cost`` about half the time becomes the old
    cost truncated to an integer plus 5 to 10. The generator is drawn the
    same number of times whatever is chosen, so one seed gives one sequence.
    """
    rename = rng.random() < 0.5
    reprice = rng.random() < 0.5
    raise_by = rng.randint(5, 10)
    delta: dict[str, Any] = {"fragrance_id": row.fragrance_id}
    if rename:
        delta["name"] = (row.name or "") + NAME_SUFFIX
    delta["description"] = (row.description or "") + DESCRIPTION_SUFFIX
    if reprice:
        delta["cost"] = math.trunc(row.cost or 0) + raise_by
    delta["forbidden"] = not row.forbidden
    return delta


def encode(payload: Any) -> bytes:
    """A JSON body as the CMS serialises it (Python's default separators)."""
    return json.dumps(payload).encode()


# Chaos: deliveries the real CMS does not send but another CMS, a proxy or a
# bug could. Each returns the exact bytes to send; ``n`` picks the variant in
# turn, so every variant of a kind is sent once in as many uses.

#: One poisoned field per invalid delivery: (field, value) pairs.
_INVALID_VALUES: tuple[tuple[str, Any], ...] = (
    ("name", "N" * 151),
    ("description", "D" * 1025),
    ("cost", -7),
    ("cost", "12"),
    ("cost", None),
    ("name", 42),
    ("name", None),
    ("name", "   "),
    ("description", None),
    ("description", ["a", "list"]),
    ("forbidden", "true"),
    ("forbidden", 1),
    ("forbidden", None),
    ("fragrance_id", "12"),
    ("fragrance_id", None),
    ("fragrance_id", -1),
)

#: Bodies that are not a JSON object the rules can read; ``{id}`` is filled in.
_MALFORMED_BODIES: tuple[bytes, ...] = (
    b'{"fragrance_id": {id}, "name": "cut off',
    b"{'fragrance_id': {id}, 'forbidden': true}",
    b'{"fragrance_id": {id}, "forbidden": true,}',
    b'{"fragrance_id": {id}, "cost": NaN}',
    b'{"fragrance_id": {id}, "fragrance_id": 1, "forbidden": true}',
    b'\xff\xfe{"fragrance_id": {id}}',
    b'[{"fragrance_id": {id}, "forbidden": true}]',
    b"",
)

#: Keys the rules do not know, as a CMS schema change would add them.
_UNKNOWN_FIELDS: tuple[tuple[str, Any], ...] = (
    ("colour", "amber"),
    ("notes", ["citrus", "musk"]),
    ("updated_by", "editor@cms"),
)


def invalid(delta: dict[str, Any], n: int) -> bytes:
    """The delta with one field replaced by a value the data rules refuse."""
    field, value = _INVALID_VALUES[n % len(_INVALID_VALUES)]
    return encode({**delta, field: value})


def unknown_id(delta: dict[str, Any], absent_id: int) -> bytes:
    """The delta's description and forbidden, aimed at a fragrance that does not exist.

    Never all four fields: a full delta for a new id would create the
    fragrance in the smart library, which is not an error.
    """
    return encode(
        {
            "fragrance_id": absent_id,
            "description": delta["description"],
            "forbidden": delta["forbidden"],
        }
    )


def unknown_field(delta: dict[str, Any], n: int) -> bytes:
    """The real delta plus a key the rules do not know (schema drift)."""
    field, value = _UNKNOWN_FIELDS[n % len(_UNKNOWN_FIELDS)]
    return encode({**delta, field: value})


def malformed(fragrance_id: int, n: int) -> bytes:
    """A body that is not valid JSON, not UTF-8, ambiguous, empty or not an object."""
    body = _MALFORMED_BODIES[n % len(_MALFORMED_BODIES)]
    return body.replace(b"{id}", str(fragrance_id).encode())
