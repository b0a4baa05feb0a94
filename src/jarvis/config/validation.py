"""JSON Schema checks for registry definitions and values, with errors that say where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from jarvis.errors import ValidationFailed
from jarvis.kit.canonical import canonical_json

# A value is business configuration, not a document store.
MAX_VALUE_BYTES = 64 * 1024
MAX_SCHEMA_BYTES = 64 * 1024
MASK = "********"
_BASE_URI = "urn:jarvis:config-schema"
# No retrieval: a ``$ref`` to anything outside the schema is unresolvable, never fetched.
_NO_RETRIEVAL: Registry[Any] = Registry()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("$ref", "$dynamicRef") and isinstance(v, str)]
        for value in node.values():
            found.extend(_refs(value))
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _check_refs(schema: dict[str, Any], loc: Sequence[str | int]) -> None:
    resource = DRAFT202012.create_resource(schema)
    base = resource.id() or _BASE_URI
    resolver = _NO_RETRIEVAL.with_resource(base, resource).resolver(base_uri=base)
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ValidationFailed.field(
                list(loc),
                f"$ref '{ref}' does not resolve within the schema (nothing is fetched from "
                "elsewhere; put the definitions under $defs)",
            ) from None


def compile_schema(schema: Any, *, loc: Sequence[str | int] = ("schema",)) -> Validator:
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
    _check_refs(schema, loc)
    validator: Validator = Draft202012Validator(
        schema, registry=_NO_RETRIEVAL, format_checker=FormatChecker()
    )
    return validator


def schema_errors(
    validator: Validator, value: Any, *, loc: Sequence[str | int], secret: bool = False
) -> list[dict[str, Any]]:
    """Every way ``value`` breaks the schema: JSON path, the rule (keyword) and a message.

    For a secret key the message leaves the value out (jsonschema's messages quote it).
    """
    out = []
    try:
        found = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
    except Unresolvable as exc:  # a $ref the registration check could not see (e.g. $id)
        return [
            {
                "loc": list(loc),
                "jsonPath": "$",
                "rule": "$ref",
                "msg": f"the key's schema has a $ref that does not resolve: {exc}",
            }
        ]
    for error in found:
        rule = str(error.validator)
        message = (
            f"the value breaks '{rule}': {error.validator_value!r}"
            if secret and rule not in ("enum", "const")
            else "the value is not one of the allowed values"
            if secret
            else error.message
        )
        out.append(
            {
                "loc": [*loc, *error.absolute_path],
                "jsonPath": error.json_path,
                "rule": rule,
                "msg": f"{message} (rule '{rule}' at {error.json_path})",
            }
        )
    return out


def validate_value(
    validator: Validator,
    value: Any,
    *,
    key: str,
    loc: Sequence[str | int] = ("value",),
    secret: bool = False,
) -> None:
    """422 unless ``value`` is small enough and satisfies the key's schema."""
    if len(canonical_json(value)) > MAX_VALUE_BYTES:
        raise ValidationFailed.field(list(loc), f"is larger than {MAX_VALUE_BYTES} bytes")
    errors = schema_errors(validator, value, loc=loc, secret=secret)
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"the value of '{key}' breaks its schema at {first['jsonPath']}: {first['msg']}",
            errors=errors,
        )


def mask(value: Any, secret: bool) -> Any:
    """What reads, logs and exports show of a value."""
    return MASK if secret and value is not None else value
