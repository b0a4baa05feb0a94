"""What the agent directory pages show and read: the agent form (fields, the kind's config
controls, validation messages), version diffs and the version timeline.

Kept apart from the routes (``pages/agents.py``) so that they stay thin: a route reads the
form through ``read_agent_form``, calls the agents service and renders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Literal, get_args

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from jarvis.agents.kinds.registry import available_kinds, get_kind, validate_agent_config
from jarvis.agents.schemas import (
    AgentCreate,
    AgentOut,
    AgentVersionOut,
    GovernanceStatus,
    RiskLevel,
)
from jarvis.agents.service import VERSIONED_FIELDS
from jarvis.core.layers import LAYER_ORDER
from jarvis.errors import JarvisError, ValidationFailed
from jarvis.kit.clock import as_utc
from jarvis.web.forms import FieldErrors, FormData, errors_from
from jarvis.web.schema_form import SchemaField, fields_for, humanise, parse_fields

DEFAULT_KIND = "echo"
LAYERS: tuple[str, ...] = tuple(layer.value for layer in LAYER_ORDER)
GOVERNANCE_STATUSES: tuple[str, ...] = get_args(GovernanceStatus)
RISK_LEVELS: tuple[str, ...] = get_args(RiskLevel)

# The agent's own fields the form edits (config comes from the kind's schema).
TEXT_FIELDS = ("name", "layer", "persona", "business_function", "specialization", "description")
CHOICE_FIELDS = ("governance_status", "risk_level", "maturity_level")
FLAG_FIELDS = ("enabled", "serves_all_personas")
FORM_FIELDS = (*TEXT_FIELDS, "kind", *CHOICE_FIELDS, *FLAG_FIELDS)
OPTIONAL_TEXT = ("business_function", "specialization", "description")

LABELS = {
    "name": "Name",
    "layer": "Layer",
    "persona": "Persona",
    "business_function": "Business function",
    "specialization": "Specialisation",
    "description": "Description",
    "kind": "Kind",
    "config": "Settings",
    "governance_status": "Governance status",
    "risk_level": "Risk level",
    "maturity_level": "Maturity level",
    "enabled": "Enabled",
    "serves_all_personas": "Serves every persona",
    "can_generate_persona": "Can generate personas",
    "persona_generation_config": "Persona generation settings",
    "dashboard_template": "Dashboard template",
    "sla_status": "SLA status",
}

# Pydantic's wording for a failed pattern names the regular expression; say what it means.
FRIENDLY = {
    ("business_function", "String should match pattern"): (
        "use lower-case letters, digits and underscores, starting with a letter (e.g. underwriting)"
    ),
    ("name", "String should have at least 1 character"): "enter a name",
}


def label(name: str) -> str:
    return LABELS.get(name) or humanise(name)


def kind_schema(name: str) -> dict[str, Any] | None:
    """The JSON Schema of a kind's config (camelCase, as the API shows it); None for a
    name that is no kind. Not to be changed: it is shared."""
    # Only installed kinds reach the cache: names come from requests.
    return _schema_of(name) if get_kind(name) is not None else None


@cache
def _schema_of(name: str) -> dict[str, Any]:
    kind = get_kind(name)
    assert kind is not None  # noqa: S101 - kind_schema checked
    return kind.config_model.model_json_schema(by_alias=True)


def kind_options() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(available_kinds())]


def kind_description(name: str) -> str:
    kind = get_kind(name)
    return kind.description if kind else ""


@dataclass
class AgentForm:
    """What the agent form shows: values of the agent's fields, the config controls of the
    kind whose fields are shown, and messages."""

    values: dict[str, Any]
    controls: list[SchemaField]
    errors: FieldErrors = field(default_factory=FieldErrors)
    version: int | None = None

    @property
    def kind(self) -> str:
        return str(self.values.get("kind") or DEFAULT_KIND)

    @property
    def kind_known(self) -> bool:
        return kind_schema(self.kind) is not None

    @property
    def description_of_kind(self) -> str:
        return kind_description(self.kind)


def config_controls(kind: str, config: Mapping[str, Any] | None) -> list[SchemaField]:
    schema = kind_schema(kind)
    return fields_for(schema, dict(config or {}), "config") if schema is not None else []


def blank_form(kind: str, persona: str) -> AgentForm:
    """The form for a new agent of ``kind``."""
    values: dict[str, Any] = {
        "name": "",
        "layer": "",
        "persona": persona,
        "business_function": "",
        "specialization": "",
        "description": "",
        "kind": kind,
        "governance_status": "pending",
        "risk_level": "medium",
        "maturity_level": "1",
        "enabled": True,
        "serves_all_personas": False,
    }
    form = AgentForm(values, config_controls(kind, {}))
    if not form.kind_known:
        form.errors.add("kind", unknown_kind_message(kind))
    return form


def agent_form(agent: AgentOut, *, kind: str | None = None) -> AgentForm:
    """The form for editing ``agent`` (showing ``kind``'s settings when given)."""
    values: dict[str, Any] = {name: getattr(agent, name) for name in FORM_FIELDS}
    for name in OPTIONAL_TEXT:
        values[name] = values[name] or ""
    values["maturity_level"] = str(agent.maturity_level)
    if kind is not None:
        values["kind"] = kind
    form = AgentForm(
        values, config_controls(str(values["kind"]), agent.config), version=agent.version
    )
    if not form.kind_known:
        form.errors.add("kind", unknown_kind_message(str(values["kind"])))
    return form


def unknown_kind_message(kind: str) -> str:
    return f"'{kind}' is not an agent kind; choose one of: {', '.join(sorted(available_kinds()))}"


def _without_defaults(
    schema: Mapping[str, Any], value: dict[str, Any], keep: Mapping[str, Any]
) -> dict[str, Any]:
    """``value`` less the settings left at their default that the agent did not have:
    saving the form does not write every default into the config."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    out: dict[str, Any] = {}
    for key, item in value.items():
        prop = properties.get(key)
        if key not in keep and isinstance(prop, Mapping):
            if ("default" in prop and item == prop["default"]) or (
                "default" not in prop and item == []
            ):
                continue
        out[key] = item
    return out


@dataclass
class PostedAgent:
    """A posted agent form: the values, the config read from the kind's controls, and
    whether the config controls shown were another kind's (the kind was switched)."""

    form: AgentForm
    config: dict[str, Any] | None
    kind_switched: bool


def read_agent_form(
    posted: FormData,
    *,
    current_config: Mapping[str, Any] | None,
    version: int | None = None,
    reload_kind: bool = False,
) -> PostedAgent:
    """Read the agent form; messages for controls that could not be read are in
    ``form.errors``. When the kind select names another kind than the one whose settings
    were shown (or ``reload_kind``: the viewer asked for the kind's fields), the form comes
    back with the chosen kind's controls, carrying over the settings both kinds have, and
    ``kind_switched``."""
    values: dict[str, Any] = {name: posted.get(name).strip() for name in TEXT_FIELDS}
    values["kind"] = posted.get("kind").strip() or DEFAULT_KIND
    for name in CHOICE_FIELDS:
        values[name] = posted.get(name).strip()
    for name in FLAG_FIELDS:
        values[name] = posted.get(name) in ("true", "on", "1")
    shown_kind = posted.get("fields_kind").strip() or values["kind"]
    current = dict(current_config or {})
    shown_schema = kind_schema(shown_kind)
    config: dict[str, Any] | None = None
    errors = FieldErrors()
    controls: list[SchemaField] = []
    if shown_schema is not None:
        parsed, errors, controls = parse_fields(shown_schema, posted, "config", current=current)
        if isinstance(parsed, dict) and not errors:
            config = _without_defaults(shown_schema, parsed, current)
    else:  # a kind that is not installed: its settings cannot be shown, so keep them
        config = current
    form = AgentForm(values, controls, errors, version=version)
    if shown_kind == values["kind"] and not reload_kind:
        if not form.kind_known:
            form.errors.add("kind", unknown_kind_message(form.kind))
        return PostedAgent(form, config, kind_switched=False)
    # Show the chosen kind's controls, filled with the settings it shares with the old one.
    if shown_kind == values["kind"]:
        form.controls = controls  # what was typed, errors and all
    else:
        new_schema = kind_schema(form.kind) or {}
        shared = new_schema.get("properties", {})
        carried = {k: v for k, v in {**current, **(config or {})}.items() if k in shared}
        form.errors = FieldErrors()
        form.controls = config_controls(form.kind, carried)
    if not form.kind_known:
        form.errors.add("kind", unknown_kind_message(form.kind))
    return PostedAgent(form, None, kind_switched=True)


def agent_fields(form: AgentForm, config: dict[str, Any]) -> dict[str, Any]:
    """The posted values as the service's input (snake_case field names)."""
    values: dict[str, Any] = {name: form.values[name] for name in FORM_FIELDS}
    for name in OPTIONAL_TEXT:
        values[name] = values[name] or None
    values["config"] = config
    return values


def validated(form: AgentForm, config: dict[str, Any]) -> AgentCreate:
    """The posted agent validated as the API validates a new one; ``ValidationError``
    names the fields."""
    return AgentCreate.model_validate(agent_fields(form, config))


def form_state(model: AgentCreate) -> dict[str, Any]:
    """The form's fields of a validated agent, in JSON types (as the columns hold them)."""
    state: dict[str, Any] = model.model_dump(
        mode="json", by_alias=False, include={*FORM_FIELDS, "config"}
    )
    return state


def add_errors(form: AgentForm, exc: JarvisError | ValidationError) -> None:
    """Put a service's or pydantic's messages next to the form's fields."""
    known = [*FORM_FIELDS, *(c.name for c in form.controls)]
    aliases = {to_camel(name): name for name in FORM_FIELDS}
    found = errors_from(exc, known=known, aliases=aliases)
    for name, message in found.fields.items():
        for (target, prefix), friendly in FRIENDLY.items():
            if name == target and message.startswith(prefix):
                message = friendly
        form.errors.add(name, message[:1].upper() + message[1:])
    for message in found.general:
        form.errors.add(None, message)


def check_config(form: AgentForm, config: dict[str, Any] | None) -> None:
    """The kind's messages about ``config`` next to its fields: used when other fields
    failed first, so that the viewer sees every message at once."""
    if config is None or not form.kind_known:
        return
    try:
        validate_agent_config(form.kind, config)
    except ValidationFailed as exc:
        add_errors(form, exc)


def changed_fields(agent: AgentOut, new: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``new`` (validated, JSON types) that differ from the agent's."""
    return {name: value for name, value in new.items() if getattr(agent, name) != value}


# --- history and diffs -----------------------------------------------------------------


@dataclass(frozen=True)
class VersionEntry:
    """One version of an agent, with who made it, when and how."""

    version: int
    how: str  # created, update, restore
    by: str | None
    at: datetime
    current: bool


def timeline(
    agent: AgentOut, rows: Sequence[AgentVersionOut], *, offset: int, creator: str | None
) -> list[VersionEntry]:
    """Versions newest first, for the stored rows of one page (``list_versions`` with the
    same offset). A stored row keeps the state it had and who replaced it, so version v
    was made by the change recorded on row v - 1, and version 1 by the creation."""
    by_version = {row.version: row for row in rows}
    newest = agent.version - offset
    out: list[VersionEntry] = []
    for version in range(newest, max(newest - len(rows) - 1, 0), -1):
        if version == 1:
            out.append(VersionEntry(1, "created", creator, agent.created_at, agent.version == 1))
            continue
        made = by_version.get(version - 1)
        if made is None:
            break
        out.append(
            VersionEntry(
                version,
                made.change_type,
                made.changed_by,
                made.created_at,
                version == agent.version,
            )
        )
    return out


def current_state(agent: AgentOut) -> dict[str, Any]:
    """The agent's versioned fields, like a stored snapshot (columns hold JSON types)."""
    return {name: getattr(agent, name) for name in VERSIONED_FIELDS}


@dataclass(frozen=True)
class Change:
    """One difference between two states: a field or a config setting."""

    kind: Literal["added", "removed", "changed"]
    label: str
    before: str
    after: str


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _compare(label_: str, before: Any, after: Any, missing: object) -> Change | None:
    if before == after:
        return None
    if before is missing or before is None:
        return Change("added", label_, "", _show(after))
    if after is missing or after is None:
        return Change("removed", label_, _show(before), "")
    return Change("changed", label_, _show(before), _show(after))


def diff_states(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Field by field, and the config setting by setting, from ``before`` to ``after``."""
    missing = object()
    out: list[Change] = []
    for name in VERSIONED_FIELDS:
        if name == "config":
            old = before.get("config") or {}
            new = after.get("config") or {}
            for key in sorted({*old, *new}):
                change = _compare(
                    f"Setting {key}", old.get(key, missing), new.get(key, missing), missing
                )
                if change:
                    out.append(change)
            continue
        change = _compare(label(name), before.get(name, missing), after.get(name, missing), missing)
        if change:
            out.append(change)
    return out


def when(value: datetime) -> str:
    """A timestamp as the pages show it."""
    return as_utc(value).strftime("%d %b %Y, %H:%M UTC")
