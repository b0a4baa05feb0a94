"""Configuration payloads (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from jarvis.config.explanation import SettingExplanation
from jarvis.config.resolver import Candidate, Resolution
from jarvis.config.validation import mask
from jarvis.core.personas import PERSONA_KEY_PATTERN
from jarvis.core.scope import Scope
from jarvis.kit.schema import ApiInput, ApiModel

KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
ConfigKey = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=KEY_PATTERN, max_length=100)
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
ScopeName = Literal["global", "persona", "agent", "workflow"]
DbInt = Annotated[int, Field(ge=1, le=2**31 - 1)]


class ScopeIn(ApiInput):
    """Whom a value applies to; every member optional, none at all means global."""

    persona: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=PERSONA_KEY_PATTERN)] | None
    ) = None
    agent_id: DbInt | None = None
    workflow_id: DbInt | None = None

    def to_scope(self) -> Scope:
        return Scope(self.persona, self.agent_id, self.workflow_id)


class ScopeOut(ApiModel):
    persona: str | None = None
    agent_id: int | None = None
    workflow_id: int | None = None

    @classmethod
    def of(cls, scope: Scope) -> ScopeOut:
        return cls(persona=scope.persona, agent_id=scope.agent_id, workflow_id=scope.workflow_id)


# --- registry -----------------------------------------------------------------------------


class RegistryKeyIn(ApiInput):
    key: ConfigKey
    description: str = Field(min_length=1, max_length=4000)
    value_schema: dict[str, Any] = Field(alias="schema")
    default: Any
    scopes: list[ScopeName] = Field(min_length=1, max_length=4)
    secret: bool = False
    requires_approval: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_required(cls, data: Any) -> Any:
        # ``default: null`` is a legitimate default; a missing one is a mistake.
        if isinstance(data, dict) and "default" not in data:
            raise ValueError("default is required (it may be null when the schema allows)")
        return data


class RegistryKeyUpdate(ApiInput):
    description: str | None = Field(default=None, min_length=1, max_length=4000)
    value_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    default: Any = None
    scopes: list[ScopeName] | None = Field(default=None, min_length=1, max_length=4)
    secret: bool | None = None
    requires_approval: bool | None = None


class RegistryKeyOut(ApiModel):
    key: str
    description: str
    value_schema: dict[str, Any] = Field(serialization_alias="schema")
    default: Any
    scopes: list[str]
    secret: bool
    requires_approval: bool
    revision: int
    updated_at: datetime
    updated_by: str


# --- values -------------------------------------------------------------------------------


class SettingIn(ApiInput):
    """``POST /api/config/setting``."""

    key: ConfigKey
    value: Any
    scope: ScopeIn = Field(default_factory=ScopeIn)
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    reason: Reason | None = None

    @model_validator(mode="before")
    @classmethod
    def _value_required(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" not in data:
            raise ValueError("value is required (null is a value when the schema allows it)")
        return data


class ValueRef(ApiInput):
    """One version of a key at one scope (revert and deactivate)."""

    key: ConfigKey
    scope: ScopeIn = Field(default_factory=ScopeIn)
    version: DbInt
    reason: Reason | None = None


class ConfigValueOut(ApiModel):
    id: int
    key: str
    value: Any
    scope: ScopeOut
    version: int
    effective_from: datetime
    effective_to: datetime | None
    is_active: bool
    deactivated_at: datetime | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any, *, secret: bool) -> ConfigValueOut:
        return cls(
            id=row.id,
            key=row.config_key,
            value=mask(row.value, secret),
            scope=ScopeOut(persona=row.persona, agent_id=row.agent_id, workflow_id=row.workflow_id),
            version=row.version,
            effective_from=row.effective_from,
            effective_to=row.effective_to,
            is_active=row.is_active,
            deactivated_at=row.deactivated_at,
            created_by=row.created_by,
            created_at=row.created_at,
        )


class CandidateOut(ApiModel):
    value_id: int
    value: Any
    scope: ScopeOut
    source: str
    version: int
    effective_from: datetime
    effective_to: datetime | None
    is_active: bool
    status: str
    reason: str

    @classmethod
    def of(cls, c: Candidate, *, secret: bool) -> CandidateOut:
        return cls(
            value_id=c.value_id,
            value=mask(c.value, secret),
            scope=ScopeOut.of(c.scope),
            source=c.scope.level.value,
            version=c.version,
            effective_from=c.effective_from,
            effective_to=c.effective_to,
            is_active=c.is_active,
            status=c.status,
            reason=c.reason,
        )


class SettingOut(ApiModel):
    """The effective value of a key for a scope at an instant."""

    key: str
    value: Any
    source: str
    version: int | None
    value_id: int | None
    value_scope: ScopeOut | None
    effective_from: datetime | None
    effective_to: datetime | None
    valid_until: datetime | None
    scope: ScopeOut
    at: datetime
    secret: bool
    explanation: str | None = None
    candidates: list[CandidateOut] | None = None

    @classmethod
    def of(cls, r: Resolution, *, scope: Scope, at: datetime, secret: bool) -> SettingOut:
        return cls(
            key=r.key,
            value=mask(r.value, secret),
            source=r.source,
            version=r.version,
            value_id=r.value_id,
            value_scope=ScopeOut.of(r.value_scope) if r.value_scope is not None else None,
            effective_from=r.effective_from,
            effective_to=r.effective_to,
            valid_until=r.valid_until,
            scope=ScopeOut.of(scope),
            at=at,
            secret=secret,
        )

    @classmethod
    def explained(cls, e: SettingExplanation) -> SettingOut:
        """The API's answer for an explained setting (candidates when they were asked for)."""
        secret = e.info.secret
        out = cls.of(e.resolution, scope=e.scope, at=e.at, secret=secret)
        if e.candidates is not None:
            out.candidates = [CandidateOut.of(c, secret=secret) for c in e.candidates]
            out.explanation = e.verdict
        return out


class ChangeLogOut(ApiModel):
    id: int
    key: str
    action: str
    scope: ScopeOut | None
    old_value: Any
    new_value: Any
    version: int | None
    value_id: int | None
    effective_from: datetime | None
    effective_to: datetime | None
    performed_by: str
    reason: str | None
    change_request_id: int | None
    snapshot_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any, *, secret: bool = False) -> ChangeLogOut:
        """``secret`` is the key's secrecy now: a key made secret later hides its past too."""
        old, new = row.old_value, row.new_value
        if secret:
            if str(row.action).startswith("registry."):
                old, new = _mask_default(old), _mask_default(new)
            else:
                old, new = mask(old, True), mask(new, True)
        scope = (
            ScopeOut(persona=row.persona, agent_id=row.agent_id, workflow_id=row.workflow_id)
            if row.scope_identifiers is not None
            else None
        )
        return cls(
            id=row.id,
            key=row.config_key,
            action=row.action,
            scope=scope,
            old_value=old,
            new_value=new,
            version=row.version,
            value_id=row.value_id,
            effective_from=row.effective_from,
            effective_to=row.effective_to,
            performed_by=row.performed_by,
            reason=row.reason,
            change_request_id=row.change_request_id,
            snapshot_id=row.snapshot_id,
            created_at=row.created_at,
        )


def _mask_default(definition: Any) -> Any:
    if isinstance(definition, dict) and "default" in definition:
        return {**definition, "default": mask(definition["default"], True)}
    return definition


# --- change requests ----------------------------------------------------------------------


class ChangeRequestOut(ApiModel):
    id: int
    key: str
    action: str
    payload: dict[str, Any]
    status: str
    reason: str | None
    requested_by: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    applied_value_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any, *, secret: bool) -> ChangeRequestOut:
        # A proposed default of a secret key is as secret as a value.
        payload = {
            name: mask(item, secret) if name in ("value", "default") else item
            for name, item in row.payload.items()
        }
        return cls(
            id=row.id,
            key=row.config_key,
            action=row.action,
            payload=payload,
            status=row.status,
            reason=row.reason,
            requested_by=row.requested_by,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            decision_reason=row.decision_reason,
            applied_value_id=row.applied_value_id,
            created_at=row.created_at,
        )


class Decision(ApiInput):
    reason: Reason | None = None


class WriteOut(ApiModel):
    """What a write did: stored a value, or opened a change request awaiting approval."""

    status: Literal["applied", "pending_approval"]
    value: ConfigValueOut | None = None
    change_request: ChangeRequestOut | None = None


class SnapshotOut(ApiModel):
    """A snapshot as listed (``values`` only when one snapshot is shown)."""

    id: int
    name: str
    description: str | None
    taken_at: datetime
    created_by: str
    created_at: datetime
    value_count: int
    values: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, row: Any, *, values: list[dict[str, Any]] | None = None) -> SnapshotOut:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            taken_at=row.taken_at,
            created_by=row.created_by,
            created_at=row.created_at,
            value_count=len(row.content.get("values", [])),
            values=values,
        )
