"""Agent payloads: what clients send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_serializer, field_validator, model_validator
from pydantic.alias_generators import to_camel

from jarvis.core.layers import Layer
from jarvis.kit.schema import ApiInput, ApiModel
from jarvis.personas.schemas import PersonaKey

GovernanceStatus = Literal["pending", "under_review", "approved", "rejected", "blocked"]
RiskLevel = Literal["low", "medium", "high", "critical"]
SlaStatus = Literal["green", "amber", "red"]
BUSINESS_FUNCTION_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"
KIND_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"


class AgentCreate(ApiInput):
    name: str = Field(min_length=1, max_length=200)
    layer: Layer
    persona: PersonaKey = "admin"
    specialization: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    kind: str = Field(default="echo", pattern=KIND_PATTERN)
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    serves_all_personas: bool = False
    maturity_level: int = Field(default=1, ge=1, le=5)
    governance_status: GovernanceStatus = "pending"
    risk_level: RiskLevel = "medium"
    can_generate_persona: bool = False
    persona_generation_config: dict[str, Any] | None = None
    dashboard_template: dict[str, Any] | None = None
    business_function: str | None = Field(default=None, pattern=BUSINESS_FUNCTION_PATTERN)
    sla_status: SlaStatus = "green"


# AgentUpdate fields that can be changed but not cleared: None only means "not sent".
NOT_NULLABLE = (
    "name",
    "layer",
    "persona",
    "kind",
    "config",
    "enabled",
    "serves_all_personas",
    "maturity_level",
    "governance_status",
    "risk_level",
    "can_generate_persona",
    "sla_status",
)


def _update_schema(schema: dict[str, Any]) -> None:
    """Document what AgentUpdate's validators enforce: no null for NOT_NULLABLE, one field."""
    schema["minProperties"] = 1
    properties = schema["properties"]
    for name in NOT_NULLABLE:
        prop = properties.get(to_camel(name)) or properties[name]
        prop.pop("default", None)
        if "anyOf" in prop:
            (kept,) = [branch for branch in prop.pop("anyOf") if branch.get("type") != "null"]
            prop.update(kept)


class AgentUpdate(ApiInput):
    """A partial update: only the fields present change."""

    model_config = ConfigDict(json_schema_extra=_update_schema)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    layer: Layer | None = None
    persona: PersonaKey | None = None
    specialization: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    kind: str | None = Field(default=None, pattern=KIND_PATTERN)
    config: dict[str, Any] | None = None
    enabled: bool | None = None
    serves_all_personas: bool | None = None
    maturity_level: int | None = Field(default=None, ge=1, le=5)
    governance_status: GovernanceStatus | None = None
    risk_level: RiskLevel | None = None
    can_generate_persona: bool | None = None
    persona_generation_config: dict[str, Any] | None = None
    dashboard_template: dict[str, Any] | None = None
    business_function: str | None = Field(default=None, pattern=BUSINESS_FUNCTION_PATTERN)
    sla_status: SlaStatus | None = None

    @field_validator(*NOT_NULLABLE, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Only runs for fields the client sent; absent fields keep their None default.
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> AgentUpdate:
        if not self.model_fields_set:
            raise ValueError("the update names no field to change")
        return self


class AgentMetrics(ApiModel):
    """Performance figures; maintained by the engine, set directly only by seeding."""

    cpu_usage: int = Field(default=0, ge=0, le=100)
    success_rate: float = Field(default=0, ge=0, le=100)
    avg_response_time: int = Field(default=0, ge=0)
    sla_performance: float | None = Field(default=None, ge=0, le=100)


class AgentOut(ApiModel):
    id: int
    name: str
    layer: Layer
    persona: str
    specialization: str | None
    description: str | None
    kind: str
    config: dict[str, Any]
    enabled: bool
    serves_all_personas: bool
    cpu_usage: int
    success_rate: float
    avg_response_time: int
    maturity_level: int
    governance_status: str
    risk_level: str
    can_generate_persona: bool
    persona_generation_config: dict[str, Any] | None
    dashboard_template: dict[str, Any] | None
    business_function: str | None
    sla_performance: float | None
    sla_status: str
    version: int
    created_at: datetime
    updated_at: datetime


class AgentVersionOut(ApiModel):
    version: int
    change_type: str
    changed_by: str
    created_at: datetime
    snapshot: dict[str, Any]

    @field_serializer("snapshot")
    def _snapshot_on_the_wire(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        # Stored with Python field names; sent in camelCase like every other body.
        return {to_camel(name): value for name, value in snapshot.items()}


class LayerOut(ApiModel):
    name: Layer
    position: int
    description: str
    agent_count: int
