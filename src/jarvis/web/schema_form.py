"""Metadata-driven forms: a JSON Schema (an agent kind's config, a configuration key's value)
becomes labelled form fields, and the posted fields become the JSON value again.

Scalars get their natural control (checkbox, number, select for enums, text or a text area
for long strings); lists of strings are one per line (or checkboxes for an enum); anything
nested (objects in lists, ``$ref``s, unions) is edited as JSON in a text area. Field names are
``<name>.<property>`` with the schema's property names (the API's camelCase), so a service's
validation error at ``config.threshold`` lands next to the field ``config.threshold``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jarvis.web.forms import FieldErrors, FormData

EXTRA = "__extra"
LONG_TEXT = 300


@dataclass
class SchemaField:
    """One form control generated from a schema property."""

    name: str
    label: str
    kind: str  # checkbox, number, select, text, textarea, lines, checkboxes, json
    value: Any = ""
    help: str | None = None
    required: bool = False
    options: list[tuple[str, str]] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def control(self) -> str:
        """The ui.field macro's kind for this control."""
        return {"lines": "textarea", "json": "textarea"}.get(self.kind, self.kind)


def humanise(name: str) -> str:
    """``requiresApproval`` → "Requires approval", ``rule_set`` → "Rule set"."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace(".", " ")
    words = words.strip().lower()
    return words[:1].upper() + words[1:] if words else name


def _optional_type(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """``anyOf: [X, {type: null}]`` as (X, nullable)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        concrete = [o for o in options if o.get("type") != "null"]
        if len(concrete) == 1 and len(options) == 2:
            merged = {**concrete[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
            return merged, True
    return schema, False


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return "number"
    if kind == "string":
        if isinstance(schema.get("enum"), list):
            return "select"
        return "textarea" if int(schema.get("maxLength", 0)) > LONG_TEXT else "text"
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, Mapping) and items.get("type") == "string":
            return "checkboxes" if isinstance(items.get("enum"), list) else "lines"
    return "json"


def _display(kind: str, value: Any) -> Any:
    """A JSON value as the control shows it."""
    if value is None:
        return [] if kind == "checkboxes" else ("" if kind != "checkbox" else False)
    if kind == "checkbox":
        return bool(value)
    if kind == "lines":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if kind == "checkboxes":
        return [str(v) for v in value] if isinstance(value, list) else []
    if kind == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return str(value) if not isinstance(value, bool) else str(value).lower()


def _number_attrs(schema: Mapping[str, Any]) -> dict[str, str]:
    attrs = {"step": "1" if schema.get("type") == "integer" else "any"}
    for key, attr in (("minimum", "min"), ("maximum", "max")):
        if isinstance(schema.get(key), int | float):
            attrs[attr] = str(schema[key])
    return attrs


def property_field(
    name: str, schema: Mapping[str, Any], value: Any, *, required: bool, label: str | None = None
) -> SchemaField:
    """The control for one schema (``value`` is the current JSON value, None when unset)."""
    schema, nullable = _optional_type(schema)
    kind = _kind(schema)
    if value is None and "default" in schema and kind != "json":
        value = schema["default"]
    item = SchemaField(
        name=name,
        label=label or str(schema.get("title") or humanise(name.rsplit(".", 1)[-1])),
        kind=kind,
        value=_display(kind, value),
        help=str(schema["description"]) if schema.get("description") else None,
        required=required and not nullable and kind not in ("checkbox", "checkboxes"),
    )
    if kind == "number":
        item.attrs = _number_attrs(schema)
    elif kind == "select":
        blank = [] if item.required else [("", "(not set)")]
        item.options = blank + [(str(v), humanise(str(v))) for v in schema["enum"]]
    elif kind == "checkboxes":
        items = schema["items"]
        item.options = [(str(v), humanise(str(v))) for v in items["enum"]]
    elif kind == "lines":
        item.help = ((item.help + " ") if item.help else "") + "One per line."
    elif kind == "json":
        item.help = ((item.help + " ") if item.help else "") + "JSON."
    if kind == "text" and isinstance(schema.get("maxLength"), int):
        item.attrs["maxlength"] = str(schema["maxLength"])
    # Pydantic's generated titles ("Requiresapproval") read worse than the property name.
    if label is None and str(schema.get("title", "")).replace(" ", "").lower() == name.rsplit(
        ".", 1
    )[-1].lower().replace("_", ""):
        item.label = humanise(name.rsplit(".", 1)[-1])
    return item


def is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" and isinstance(schema.get("properties"), Mapping)


def fields_for(schema: Mapping[str, Any], value: Any, name: str) -> list[SchemaField]:
    """The controls for ``value`` under ``schema``: one per property of an object schema
    (``<name>.<property>``), plus a JSON area for the extra keys of an open object; a single
    control named ``name`` otherwise."""
    if not is_object(schema):
        return [property_field(name, schema, value, required=True, label="Value")]
    current = value if isinstance(value, Mapping) else {}
    required = set(schema.get("required", []))
    properties: Mapping[str, Any] = schema["properties"]
    out = [
        property_field(f"{name}.{prop}", sub, current.get(prop), required=prop in required)
        for prop, sub in properties.items()
    ]
    if schema.get("additionalProperties", True) is not False:
        extra = {k: v for k, v in current.items() if k not in properties}
        out.append(
            SchemaField(
                name=f"{name}.{EXTRA}",
                label="Further settings",
                kind="json",
                value=json.dumps(extra, indent=2, ensure_ascii=False) if extra else "",
                help="Keys this kind does not describe, as a JSON object.",
            )
        )
    return out


def _parse_number(text: str, schema: Mapping[str, Any]) -> int | float:
    if schema.get("type") == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    try:
        number = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return int(number) if number.is_integer() and "." not in text else number


def _parse_one(item: SchemaField, schema: Mapping[str, Any], form: FormData) -> Any:
    """The JSON value of one control; ``...`` (Ellipsis) when left blank (unset)."""
    schema, _ = _optional_type(schema)
    if item.kind == "checkbox":
        return form.get(item.name) in ("true", "on", "1")
    if item.kind == "checkboxes":
        return form.getlist(item.name)
    raw = form.get(item.name)
    if item.kind == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if not raw.strip():
        return ...
    if item.kind == "number":
        return _parse_number(raw.strip(), schema)
    if item.kind == "json":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
    return raw


def parse_fields(
    schema: Mapping[str, Any], form: FormData, name: str, *, current: Any = None
) -> tuple[Any, FieldErrors, list[SchemaField]]:
    """The JSON value the form's controls describe, the errors of controls that could not be
    read, and the controls again (showing what was posted) for re-rendering."""
    errors = FieldErrors()
    controls = fields_for(schema, current, name)
    for control in controls:  # show what the user typed, not the stored value
        if control.kind == "checkbox":
            control.value = form.get(control.name) in ("true", "on", "1")
        elif control.kind == "checkboxes":
            control.value = form.getlist(control.name)
        else:
            control.value = form.get(control.name)
    if not is_object(schema):
        try:
            value = _parse_one(controls[0], schema, form)
        except ValueError as exc:
            errors.add(name, str(exc))
            return None, errors, controls
        return (None if value is ... else value), errors, controls
    properties: Mapping[str, Any] = schema["properties"]
    result: dict[str, Any] = {}
    for control in controls:
        prop = control.name[len(name) + 1 :]
        try:
            if prop == EXTRA:
                extra = _parse_one(control, {}, form)
                if extra is ...:
                    continue
                if not isinstance(extra, dict):
                    raise ValueError("must be a JSON object")
                result.update({k: v for k, v in extra.items() if k not in properties})
                continue
            value = _parse_one(control, properties[prop], form)
        except ValueError as exc:
            errors.add(control.name, str(exc))
            continue
        if value is not ...:
            result[prop] = value
    return result, errors, controls
