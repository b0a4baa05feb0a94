"""Canonical JSON: one byte string per value, so hashes over JSON are reproducible."""

import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Serialise ``value`` with sorted keys, no insignificant whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_roundtrip(value: Any) -> Any:
    """Return ``value`` as plain JSON types (what a JSON column gives back when read)."""
    return json.loads(json.dumps(value, default=str))
