"""JSON Schema checks for registry definitions and values, with errors that say where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from jarvis.errors import ValidationFailed
from jarvis.kit.canonical import canonical_json

# A value is business configuration, not a document store.
MAX_VALUE_BYTES = 64 * 1024
MAX_SCHEMA_BYTES = 64 * 1024
MASK = "********"


def compile_schema(schema: Any, *, loc: Sequence[str | int] = ("body", "valueSchema")) -> Validator:
    """A validator for ``schema`` (JSON Schema 2020-12); 422 when the schema is invalid.

    ``$ref`` resolves only within the schema itself: nothing is fetched over the network.
    """
    if not isinstance(schema, dict):
        raise ValidationFailed.field(list(loc), "must be a JSON Schema object")
    if len(canonical_json(schema)) > MAX_SCHEMA_BYTES:
        raise ValidationFailed.field(list(loc), f"is larger than {MAX_SCHEMA_BYTES} bytes")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"/{p}" for p in exc.absolute_path) or "/"
        raise ValidationFailed.field(
            list(loc), f"is not a valid JSON Schema at {path}: {exc.message}"
        ) from None
    validator: Validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return validator


def schema_errors(
    validator: Validator, value: Any, *, loc: Sequence[str | int]
) -> list[dict[str, Any]]:
    """Every way ``value`` breaks the schema: JSON path, the rule (keyword) and a message."""
    out = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path))):
        rule = str(error.validator)
        out.append(
            {
                "loc": [*loc, *error.absolute_path],
                "jsonPath": error.json_path,
                "rule": rule,
                "msg": f"{error.message} (rule '{rule}' at {error.json_path})",
            }
        )
    return out


def validate_value(
    validator: Validator, value: Any, *, key: str, loc: Sequence[str | int] = ("body", "value")
) -> None:
    """422 unless ``value`` is small enough and satisfies the key's schema."""
    if len(canonical_json(value)) > MAX_VALUE_BYTES:
        raise ValidationFailed.field(list(loc), f"is larger than {MAX_VALUE_BYTES} bytes")
    errors = schema_errors(validator, value, loc=loc)
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"the value of '{key}' breaks its schema at {first['jsonPath']}: {first['msg']}",
            errors=errors,
        )


def mask(value: Any, secret: bool) -> Any:
    """What reads, logs and exports show of a value."""
    return MASK if secret and value is not None else value
