"""Execution events: what is stored in ``agent_execution_events`` and published.

Every event is a JSON object with ``type``, ``executionId``, ``seq`` (1, 2, ... per
execution, no gaps) and ``at``; the rest depends on the type. Events are numbered and
stored in the transaction that records the transition they describe, and published on
the bus only after that transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel

from jarvis.core.layers import Layer
from jarvis.orchestration.lifecycle import TERMINAL_EVENTS, ExecutionStatus

# The bus channel every execution event goes out on (subscribers filter by executionId).
EVENTS_CHANNEL: Final = "jarvis.executions"
# Instructions to whichever engine runs an execution (e.g. cancel), across instances.
CONTROL_CHANNEL: Final = "jarvis.executions.control"

Event = dict[str, Any]
# The validation context of an event read back from the store or the bus.
STORED: Final = "stored"
# Members an event gets when it is stored: its execution, number and time.
ENVELOPE: Final = frozenset({"execution_id", "seq", "at"})

# --- the typed events: one model per type -------------------------------------------


class EventModel(BaseModel):
    """What every execution event carries: its type, execution, number and time.

    The engine and the service make events with the models below (``StepCompleted(...)``,
    validated) and hand their ``body()`` to the store, which adds ``executionId``,
    ``seq`` and ``at`` when it numbers them; ``parse_event`` reads a stored or published
    event back and requires those three.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    type: str
    execution_id: str | None = Field(default=None, min_length=1, max_length=36)
    seq: int | None = Field(default=None, ge=1, description="1, 2, ... per execution, no gaps")
    at: datetime | None = None

    @model_validator(mode="after")
    def _stored_events_are_numbered(self, info: ValidationInfo) -> EventModel:
        context = info.context or {}
        if context.get(STORED) and (self.execution_id is None or self.seq is None or not self.at):
            raise ValueError("a stored event carries executionId, seq and at")
        return self

    def body(self) -> Event:
        """The event as the store takes it: the members given, ``type`` first, camelCase."""
        fields = self.model_dump(mode="json", exclude_unset=True, exclude=set(ENVELOPE))
        fields.pop("type", None)
        return {"type": self.type, **fields}


class ExecutionQueued(EventModel):
    type: Literal["execution_queued"] = "execution_queued"
    persona: str
    command: str
    retry_of: str | None


class ExecutionStarted(EventModel):
    type: Literal["execution_started"] = "execution_started"
    persona: str
    command: str
    layers_done: int = Field(ge=0)


class ExecutionResumed(EventModel):
    type: Literal["execution_resumed"] = "execution_resumed"
    persona: str
    command: str
    layers_done: int = Field(ge=0)
    worker_losses: int = Field(ge=0, description="How often an engine running it was lost")


class LayerStarted(EventModel):
    type: Literal["layer_started"] = "layer_started"
    layer: Layer
    agents: int = Field(ge=0)


class StepEvent(EventModel):
    """Members of every event about one agent's step."""

    step_id: int
    agent_id: int | None
    agent_name: str
    layer: Layer


class StepStarted(StepEvent):
    type: Literal["step_started"] = "step_started"
    kind: str
    attempt: int = Field(ge=1)


class StepCompleted(StepEvent):
    type: Literal["step_completed"] = "step_completed"
    status: Literal["completed", "awaiting_approval"]
    attempt: int = Field(ge=1)
    duration_ms: int = Field(ge=0)
    output_preview: str | None
    token_usage: dict[str, Any] | None


class StepFailed(StepEvent):
    type: Literal["step_failed"] = "step_failed"
    attempt: int = Field(ge=1)
    error: str
    will_retry: bool
    retry_in_seconds: float | None = Field(default=None, description="When will_retry")
    duration_ms: int | None = Field(default=None, description="When the step failed for good")


class StepSkipped(StepEvent):
    type: Literal["step_skipped"] = "step_skipped"
    reason: str


class StepCancelled(StepEvent):
    type: Literal["step_cancelled"] = "step_cancelled"
    attempt: int = Field(ge=1)


class LayerCompleted(EventModel):
    type: Literal["layer_completed"] = "layer_completed"
    layer: Layer
    status: Literal["completed", "completed_with_failures"]
    failed: int = Field(ge=0)
    plan: dict[str, Any] | None = Field(default=None, description="The Meta Brain layer's plan")


class AwaitingStep(BaseModel):
    """One step whose proposed output waits for a person's decision."""

    model_config = EventModel.model_config

    step_id: int
    agent_id: int | None
    agent_name: str
    layer: Layer
    output_preview: str | None


class AwaitingApproval(EventModel):
    type: Literal["awaiting_approval"] = "awaiting_approval"
    layer: Layer
    steps: list[AwaitingStep]


class StepApproved(StepEvent):
    type: Literal["step_approved"] = "step_approved"
    decided_by: str
    comment: str | None


class StepRejected(StepEvent):
    type: Literal["step_rejected"] = "step_rejected"
    decided_by: str
    comment: str | None


class ExecutionEnded(EventModel):
    """Members of the four terminal events (``durationMs`` and ``response`` are absent
    when a person ended the execution rather than the engine)."""

    error: str | None
    duration_ms: int | None = Field(default=None, ge=0)
    response: str | None = None


class ExecutionCompleted(ExecutionEnded):
    type: Literal["execution_completed"] = "execution_completed"
    status: Literal["completed"]


class ExecutionFailed(ExecutionEnded):
    type: Literal["execution_failed"] = "execution_failed"
    status: Literal["failed"]
    error_code: str | None = Field(
        default=None, description="worker_lost when its engines were lost too often"
    )


class ExecutionCancelled(ExecutionEnded):
    type: Literal["execution_cancelled"] = "execution_cancelled"
    status: Literal["cancelled"]


class ExecutionRejected(ExecutionEnded):
    type: Literal["execution_rejected"] = "execution_rejected"
    status: Literal["rejected"]


ExecutionEvent = Annotated[
    ExecutionQueued
    | ExecutionStarted
    | ExecutionResumed
    | LayerStarted
    | StepStarted
    | StepCompleted
    | StepFailed
    | StepSkipped
    | StepCancelled
    | LayerCompleted
    | AwaitingApproval
    | StepApproved
    | StepRejected
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | ExecutionRejected,
    Field(discriminator="type"),
]
execution_event_adapter: TypeAdapter[ExecutionEvent] = TypeAdapter(ExecutionEvent)


def _tag(model: type[EventModel]) -> str:
    """The ``type`` a model stands for (its ``Literal``)."""
    (value,) = get_args(model.model_fields["type"].annotation)
    return str(value)


EVENT_MODELS: Final[dict[str, type[EventModel]]] = {
    _tag(model): model
    for model in (
        ExecutionQueued,
        ExecutionStarted,
        ExecutionResumed,
        LayerStarted,
        StepStarted,
        StepCompleted,
        StepFailed,
        StepSkipped,
        StepCancelled,
        LayerCompleted,
        AwaitingApproval,
        StepApproved,
        StepRejected,
        ExecutionCompleted,
        ExecutionFailed,
        ExecutionCancelled,
        ExecutionRejected,
    )
}


EVENT_TYPES: Final = tuple(EVENT_MODELS)


def parse_event(body: dict[str, Any]) -> ExecutionEvent:
    """The typed form of a stored or published event dict (raises ``ValidationError``)."""
    return execution_event_adapter.validate_python(body, context={STORED: True})


def final_status(event: Mapping[str, Any]) -> ExecutionStatus | None:
    """The status ``event`` ends its execution in, or None when it does not end it
    (``awaiting_approval`` pauses, it does not end)."""
    kind = event.get("type")
    return TERMINAL_EVENTS.get(kind) if isinstance(kind, str) else None
