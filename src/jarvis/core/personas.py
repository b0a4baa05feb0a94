"""How personas are named and coloured: the patterns every domain validates against."""

from __future__ import annotations

from typing import Final

# A persona's key: lower-case identifier (``admin``, ``underwriter``, ``it_support``).
PERSONA_KEY_PATTERN: Final = r"^[a-z][a-z0-9_]{1,63}$"

# One pattern for validation and for the OpenAPI schema, so it is written in the subset
# Python and JSON Schema (ECMA 262) read alike: no \d or \s, which take any Unicode digit
# or space in Python ("rgba(1, 2, 3, 0.\u0665)") and no CSS parser reads.
_SPACE = r"[ \t\n\r\f\v]*"
_BYTE = r"[0-9]{1,3}"
CSS_COLOUR_PATTERN: Final = (
    r"^(?:#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"
    rf"|rgba?\({_SPACE}{_BYTE}{_SPACE},{_SPACE}{_BYTE}{_SPACE},{_SPACE}{_BYTE}{_SPACE}"
    rf"(?:,{_SPACE}(?:0|1|0?\.[0-9]+){_SPACE})?\))$"
)
