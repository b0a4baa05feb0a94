"""How the Config Registry pages show things: schema summaries, value diffs, value states,
colour swatches, and reading scopes and schedules from query strings and forms.

Pure functions over the configuration service's data; the routes live in ``config.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path

from jarvis.core import permissions as perm
from jarvis.core.identity import Principal
from jarvis.core.personas import CSS_COLOUR_PATTERN, PERSONA_KEY_PATTERN
from jarvis.core.scope import Scope
from jarvis.errors import BadRequest
from jarvis.web.forms import FieldErrors, FormData
from jarvis.web.schema_form import SchemaField, fields_for

MAX_ID = 2**31 - 1
PAGE_LIMIT = 25
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
MAX_REASON = 2000
SCOPE_LABELS = {
    "global": "Global",
    "persona": "Persona",
    "agent": "Agent",
    "workflow": "Workflow",
}
# Form field names are the API's locations, so a service error lands next to its field.
SCOPE_FIELDS = ("scope", "scope.persona", "scope.agentId", "scope.workflowId")
WINDOW_FIELDS = ("effectiveFrom", "effectiveTo")
_COLOUR = re.compile(CSS_COLOUR_PATTERN)
_PERSONA = re.compile(PERSONA_KEY_PATTERN)


def can_write(principal: Principal) -> bool:
    """Whether the viewer may change configuration (forms and buttons are shown)."""
    return principal.can(perm.CONFIG_WRITE)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def readable_errors(errors: FieldErrors) -> FieldErrors:
    """Messages with the CSS colour pattern (a wall of regex) said in words."""
    said = "the CSS colour format (#rgb, #rrggbb, #rrggbbaa, rgb(…) or rgba(…))"
    pattern = repr(CSS_COLOUR_PATTERN)
    errors.fields = {k: v.replace(pattern, said) for k, v in errors.fields.items()}
    errors.general = [m.replace(pattern, said) for m in errors.general]
    return errors


def prefill_values(schema: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """What the value controls show for ``value`` (name → display value), for config.js to
    refill the form when the viewer picks another scope."""
    return {c.name: c.value for c in fields_for(schema, value, "value")}


# --- schemas ------------------------------------------------------------------------------


def value_type(schema: Mapping[str, Any]) -> str:
    """A schema's type in a few words: ``number``, ``object``, ``list of string``…"""
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, Mapping) and "enum" in items:
            return "list of choices"
        inner = value_type(items) if isinstance(items, Mapping) else "any"
        return f"list of {inner}"
    if kind:
        return str(kind)
    for combiner in ("anyOf", "oneOf"):
        options = schema.get(combiner)
        if isinstance(options, list) and options:
            return " or ".join(value_type(o) for o in options if isinstance(o, Mapping))
    if "enum" in schema:
        return "choice"
    return "any JSON"


def constraints(schema: Mapping[str, Any]) -> str:
    """The rules a value must keep, in words (bounds, allowed values, pattern, length)."""
    parts: list[str] = []
    for name, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if isinstance(schema.get(name), int | float) and not isinstance(schema.get(name), bool):
            parts.append(f"{sign} {schema[name]}")
    if isinstance(schema.get("enum"), list):
        parts.append("one of " + ", ".join(dumps(v) for v in schema["enum"]))
    if "const" in schema:
        parts.append(f"exactly {dumps(schema['const'])}")
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None or high is not None:
        parts.append(f"length {low or 0}–{high if high is not None else '∞'}")
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None or high is not None:
        parts.append(f"{low or 0}–{high if high is not None else '∞'} items")
    if schema.get("format"):
        parts.append(f"format {schema['format']}")
    if schema.get("pattern"):
        pattern = str(schema["pattern"])
        parts.append("a CSS colour" if pattern == CSS_COLOUR_PATTERN else f"matches {pattern}")
    items = schema.get("items")
    if isinstance(items, Mapping):
        inner = constraints(items)
        if inner:
            parts.append(f"each item: {inner}")
    return "; ".join(parts)


@dataclass(frozen=True)
class SchemaRow:
    name: str
    type: str
    rules: str
    description: str
    required: bool


def schema_rows(schema: Mapping[str, Any]) -> list[SchemaRow]:
    """One row per property of an object schema; one row for any other schema."""
    properties = schema.get("properties")
    if schema.get("type") == "object" and isinstance(properties, Mapping):
        required = set(schema.get("required", []))
        rows = [
            SchemaRow(
                name=str(name),
                type=value_type(sub),
                rules=constraints(sub),
                description=str(sub.get("description", "")),
                required=name in required,
            )
            for name, sub in properties.items()
            if isinstance(sub, Mapping)
        ]
        if schema.get("additionalProperties", True) is not False:
            rows.append(SchemaRow("(other keys)", "any JSON", "", "allowed", False))
        return rows
    return [
        SchemaRow(
            name="value",
            type=value_type(schema),
            rules=constraints(schema),
            description=str(schema.get("description", "")),
            required=True,
        )
    ]


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # added, removed, changed
    text: str


def value_diff(old: Any, new: Any) -> list[DiffLine]:
    """What changed from ``old`` to ``new``: per member for objects, else the whole value.

    ``None`` stands for "no value" (the first version at a scope, a deactivation).
    """
    if old is None and isinstance(new, Mapping):
        old = {}
    if new is None and isinstance(old, Mapping):
        new = {}
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        lines: list[DiffLine] = []
        for name in sorted(set(old) | set(new), key=str):
            if name not in old:
                lines.append(DiffLine("added", f"{name}: {dumps(new[name])}"))
            elif name not in new:
                lines.append(DiffLine("removed", f"{name}: {dumps(old[name])}"))
            elif dumps(old[name]) != dumps(new[name]):
                lines.append(
                    DiffLine("changed", f"{name}: {dumps(old[name])} → {dumps(new[name])}")
                )
        return lines
    if old is None and new is None:
        return []
    if old is None:
        return [DiffLine("added", dumps(new))]
    if new is None:
        return [DiffLine("removed", dumps(old))]
    if dumps(old) == dumps(new):
        return []
    return [DiffLine("changed", f"{dumps(old)} → {dumps(new)}")]


def swatches(value: Any) -> list[tuple[str, str]]:
    """(name, colour) for a value made of CSS colours (a persona's scheme), else nothing."""
    if isinstance(value, str) and _COLOUR.fullmatch(value):
        return [("", value)]
    if isinstance(value, Mapping) and value:
        found = [(str(k), v) for k, v in value.items() if isinstance(v, str)]
        if len(found) == len(value) and all(_COLOUR.fullmatch(v) for _, v in found):
            return found
    return []


def value_state(
    *,
    is_active: bool,
    effective_from: datetime,
    effective_to: datetime | None,
    now: datetime,
) -> str:
    """live, scheduled, expired or inactive (a stored version, now)."""
    if not is_active:
        return "inactive"
    if utc(effective_from) > now:
        return "scheduled"
    if effective_to is not None and utc(effective_to) <= now:
        return "expired"
    return "live"


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- reading scopes, schedules and forms ---------------------------------------------------


def _id(text: str, name: str, errors: FieldErrors, label: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        errors.add(name, f"{label} must be a whole number from 1 to {MAX_ID}")
        return None
    return int(text)


@dataclass
class ScopeChoice:
    """The scope the "effective value for" form asks about."""

    persona: str = ""
    agent_id: str = ""
    workflow_id: str = ""
    errors: FieldErrors = field(default_factory=FieldErrors)
    scope: Scope = field(default_factory=Scope)

    @property
    def chosen(self) -> bool:
        return self.scope != Scope()


def read_scope_choice(params: Mapping[str, str], personas: Sequence[str]) -> ScopeChoice:
    """The read scope from ``?persona=&agentId=&workflowId=``; bad members are reported and
    left out, so the page still answers for the rest."""
    choice = ScopeChoice(
        persona=params.get("persona", "").strip(),
        agent_id=params.get("agentId", "").strip(),
        workflow_id=params.get("workflowId", "").strip(),
    )
    persona: str | None = choice.persona or None
    if persona is not None and persona not in personas:
        choice.errors.add("persona", f"there is no persona '{persona}'")
        persona = None
    agent = _id(choice.agent_id, "agentId", choice.errors, "The agent id")
    workflow = _id(choice.workflow_id, "workflowId", choice.errors, "The workflow id")
    choice.scope = Scope(persona, agent, workflow)
    return choice


def scope_query(scope: Scope) -> str:
    """``?persona=…&agentId=…`` selecting ``scope`` in the "effective value for" form."""
    parts = [f"{name}={value}" for name, value in scope.as_json().items()]
    return "?" + "&".join(parts) if parts else ""


def parse_instant(text: str, name: str, errors: FieldErrors) -> datetime | None:
    """A ``datetime-local`` value (UTC, as the form says) or an ISO instant."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        errors.add(name, "must be a date and time, e.g. 2030-01-31T09:00")
        return None
    return utc(value)


@dataclass
class SetForm:
    """The "Set a value" form: the value's controls, the scope and the schedule."""

    controls: list[SchemaField]
    level: str
    persona: str = ""
    agent_id: str = ""
    workflow_id: str = ""
    effective_from: str = ""
    effective_to: str = ""
    reason: str = ""

    def scope(self, errors: FieldErrors, personas: Sequence[str]) -> Scope | None:
        """The scope the form names; None (with messages) when it is incomplete."""
        before = len(errors.fields) + len(errors.general)
        if self.level == "global":
            return Scope()
        if self.level == "persona":
            if not self.persona:
                errors.add("scope.persona", "Choose the persona this value is for")
            elif not _PERSONA.fullmatch(self.persona) or self.persona not in personas:
                errors.add("scope.persona", f"there is no persona '{self.persona}'")
            return Scope(persona=self.persona) if len(errors.fields) == before else None
        if self.level == "agent":
            agent = _id(self.agent_id, "scope.agentId", errors, "The agent id")
            if agent is None and "scope.agentId" not in errors.fields:
                errors.add("scope.agentId", "Enter the id of the agent this value is for")
            return Scope(agent_id=agent) if agent is not None else None
        if self.level == "workflow":
            workflow = _id(self.workflow_id, "scope.workflowId", errors, "The workflow id")
            if workflow is None and "scope.workflowId" not in errors.fields:
                errors.add("scope.workflowId", "Enter the id of the workflow this value is for")
            return Scope(workflow_id=workflow) if workflow is not None else None
        errors.add("scope", "Choose global, persona, agent or workflow")
        return None

    @classmethod
    def posted(cls, form: FormData, controls: list[SchemaField]) -> SetForm:
        return cls(
            controls=controls,
            level=form.get("scope", "global"),
            persona=form.get("scope.persona").strip(),
            agent_id=form.get("scope.agentId").strip(),
            workflow_id=form.get("scope.workflowId").strip(),
            effective_from=form.get("effectiveFrom").strip(),
            effective_to=form.get("effectiveTo").strip(),
            reason=form.get("reason"),
        )

    @classmethod
    def initial(cls, controls: list[SchemaField], scopes: Sequence[str], chosen: Scope) -> SetForm:
        """Preset to the scope being looked at, when the key may be set there."""
        level = chosen.level.value if chosen.level.value in scopes else scopes[0]
        return cls(
            controls=controls,
            level=level,
            persona=chosen.persona or "",
            agent_id=str(chosen.agent_id or ""),
            workflow_id=str(chosen.workflow_id or ""),
        )


def scope_from_form(form: FormData) -> Scope:
    """The exact scope of hidden ``scope.*`` fields (revert buttons)."""
    errors = FieldErrors()
    persona = form.optional("scope.persona")
    agent = _id(form.get("scope.agentId"), "agentId", errors, "The agent id")
    workflow = _id(form.get("scope.workflowId"), "workflowId", errors, "The workflow id")
    if persona is not None and not _PERSONA.fullmatch(persona):
        errors.add("persona", f"'{persona}' is not a persona key")
    if errors:
        raise BadRequest("; ".join(errors.fields.values()))
    return Scope(persona, agent, workflow)
