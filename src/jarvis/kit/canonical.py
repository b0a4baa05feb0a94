"""Canonical JSON: one byte string per value, so hashes over JSON are reproducible."""

import json
from decimal import Decimal
from typing import Any


def canonical_json(value: Any) -> str:
    """Serialise ``value`` with sorted keys, no insignificant whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _number_as_jsonb(literal: str) -> float | int:
    # PostgreSQL's jsonb keeps a number as the decimal its literal spells, and gives back
    # "1e+16" as 10000000000000000 (an integer) and "-0.0" as 0.0. Read floats the same
    # way here, so a value stored and read back hashes as it did when it was written.
    exponent = Decimal(literal).as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(Decimal(literal))
    number = float(literal)
    return 0.0 if number == 0 else number


def json_roundtrip(value: Any) -> Any:
    """Return ``value`` as plain JSON types (what a JSON or jsonb column gives back)."""
    return json.loads(json.dumps(value, default=str), parse_float=_number_as_jsonb)
