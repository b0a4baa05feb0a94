"""Execution payloads: what clients send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from jarvis.kit.schema import ApiInput, ApiModel
from jarvis.personas.schemas import PersonaKey

MAX_COMMAND_CHARS = 4000


class ExecutionCreate(ApiInput):
    command: str = Field(
        min_length=1,
        max_length=MAX_COMMAND_CHARS,
        description="What the user asked for, in their words.",
        examples=["Review the new submission from Acme Logistics"],
    )
    persona: PersonaKey = Field(description="The persona the command runs as.")
    workflow_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The workflow this command belongs to (workflow-scoped settings apply).",
    )


class ExecutionAccepted(ApiModel):
    execution_id: str
    status: str


class Decision(ApiInput):
    """An approval or rejection of the steps awaiting a human decision."""

    comment: str | None = Field(default=None, max_length=4000)
    step_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="Decide one step; without it, every step awaiting a decision.",
    )


class StepOut(ApiModel):
    id: int
    agent_id: int | None
    agent_name: str
    agent_kind: str
    layer: str
    position: int
    status: str
    attempt: int
    input: dict[str, Any] | None
    output: dict[str, Any] | None
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    token_usage: dict[str, Any] | None
    decided_by: str | None
    decision_comment: str | None
    decided_at: datetime | None


class LayerSteps(ApiModel):
    layer: str
    steps: list[StepOut]


class ExecutionSummary(ApiModel):
    execution_id: str
    status: str
    command: str
    persona: str
    workflow_id: int | None
    error: str | None
    error_code: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    retry_of: str | None
    cancel_requested_at: datetime | None


class ExecutionOut(ExecutionSummary):
    plan: dict[str, Any] | None
    result: dict[str, Any] | None
    layers_done: int
    steps: list[StepOut]
    layers: list[LayerSteps]


class EventOut(ApiModel):
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


class EventPage(ApiModel):
    """Stored events in ``seq`` order; ``limit`` may exceed a normal page (replays)."""

    items: list[EventOut]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=1000)
    offset: int = Field(ge=0)
