"""Typed execution events and the messages of the realtime protocol.

The engine produces and stores events as plain dicts (it is on every step's hot path);
these models say what each of them holds, so clients, documentation and tests share one
definition. ``tests/realtime/test_event_models.py`` validates every event that real
executions store against these models, so the two cannot drift apart.

Wire names are camelCase (``executionId``); Python names are snake_case. Events allow
extra members (a newer engine may add some); client messages refuse unknown members, so a
typo (``aftrSeq``) is reported instead of silently replaying from the start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from jarvis.agents.layers import Layer
from jarvis.kit.schema import ApiInput

# --- execution events -------------------------------------------------------------------

TERMINAL_EVENT_TYPES: Final = frozenset(
    {"execution_completed", "execution_failed", "execution_cancelled", "execution_rejected"}
)


class EventModel(BaseModel):
    """What every execution event carries: its type, execution, number and time."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    type: str
    execution_id: str = Field(min_length=1, max_length=36)
    seq: int = Field(ge=1, description="1, 2, ... per execution, without gaps")
    at: datetime


class ExecutionQueued(EventModel):
    type: Literal["execution_queued"]
    persona: str
    command: str
    retry_of: str | None


class ExecutionStarted(EventModel):
    type: Literal["execution_started"]
    persona: str
    command: str
    layers_done: int = Field(ge=0)


class ExecutionResumed(EventModel):
    type: Literal["execution_resumed"]
    persona: str
    command: str
    layers_done: int = Field(ge=0)
    worker_losses: int = Field(ge=0, description="How often an engine running it was lost")


class LayerStarted(EventModel):
    type: Literal["layer_started"]
    layer: Layer
    agents: int = Field(ge=0)


class StepEvent(EventModel):
    """Members of every event about one agent's step."""

    step_id: int
    agent_id: int | None
    agent_name: str
    layer: Layer


class StepStarted(StepEvent):
    type: Literal["step_started"]
    kind: str
    attempt: int = Field(ge=1)


class StepCompleted(StepEvent):
    type: Literal["step_completed"]
    status: Literal["completed", "awaiting_approval"]
    attempt: int = Field(ge=1)
    duration_ms: int = Field(ge=0)
    output_preview: str | None
    token_usage: dict[str, Any] | None


class StepFailed(StepEvent):
    type: Literal["step_failed"]
    attempt: int = Field(ge=1)
    error: str
    will_retry: bool
    retry_in_seconds: float | None = Field(default=None, description="When will_retry")
    duration_ms: int | None = Field(default=None, description="When the step failed for good")


class StepSkipped(StepEvent):
    type: Literal["step_skipped"]
    reason: str


class StepCancelled(StepEvent):
    type: Literal["step_cancelled"]
    attempt: int = Field(ge=1)


class LayerCompleted(EventModel):
    type: Literal["layer_completed"]
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
    type: Literal["awaiting_approval"]
    layer: Layer
    steps: list[AwaitingStep]


class StepApproved(StepEvent):
    type: Literal["step_approved"]
    decided_by: str
    comment: str | None


class StepRejected(StepEvent):
    type: Literal["step_rejected"]
    decided_by: str
    comment: str | None


class ExecutionEnded(EventModel):
    """Members of the four terminal events (``durationMs`` and ``response`` are absent
    when a person ended the execution rather than the engine)."""

    error: str | None
    duration_ms: int | None = Field(default=None, ge=0)
    response: str | None = None


class ExecutionCompleted(ExecutionEnded):
    type: Literal["execution_completed"]
    status: Literal["completed"]


class ExecutionFailed(ExecutionEnded):
    type: Literal["execution_failed"]
    status: Literal["failed"]
    error_code: str | None = Field(
        default=None, description="worker_lost when its engines were lost too often"
    )


class ExecutionCancelled(ExecutionEnded):
    type: Literal["execution_cancelled"]
    status: Literal["cancelled"]


class ExecutionRejected(ExecutionEnded):
    type: Literal["execution_rejected"]
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


def parse_event(body: dict[str, Any]) -> ExecutionEvent:
    """The typed form of a stored or published event dict (raises ``ValidationError``)."""
    return execution_event_adapter.validate_python(body)


def is_terminal(body: dict[str, Any]) -> bool:
    """True for the events that end an execution (``awaiting_approval`` does not)."""
    return body.get("type") in TERMINAL_EVENT_TYPES


# --- client -> server messages ----------------------------------------------------------

MAX_CLIENT_MESSAGE_BYTES: Final = 64 * 1024
ExecutionIdField = Annotated[str, Field(min_length=1, max_length=36)]


class ClientMessage(ApiInput):
    """A message a client sends over the socket (unknown members are refused)."""


class AuthMessage(ClientMessage):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=512)


class SubscribeExecution(ClientMessage):
    type: Literal["subscribe-execution"]
    execution_id: ExecutionIdField
    after_seq: int = Field(default=0, ge=0, le=2**31 - 1)


class UnsubscribeExecution(ClientMessage):
    type: Literal["unsubscribe-execution"]
    execution_id: ExecutionIdField


class SubscribeAll(ClientMessage):
    type: Literal["subscribe-all"]


class UnsubscribeAll(ClientMessage):
    type: Literal["unsubscribe-all"]


class SubscribeConfig(ClientMessage):
    type: Literal["subscribe-config"]


class UnsubscribeConfig(ClientMessage):
    type: Literal["unsubscribe-config"]


class Ping(ClientMessage):
    type: Literal["ping"]


class Pong(ClientMessage):
    type: Literal["pong"]


AnyClientMessage = Annotated[
    AuthMessage
    | SubscribeExecution
    | UnsubscribeExecution
    | SubscribeAll
    | UnsubscribeAll
    | SubscribeConfig
    | UnsubscribeConfig
    | Ping
    | Pong,
    Field(discriminator="type"),
]
client_message_adapter: TypeAdapter[AnyClientMessage] = TypeAdapter(AnyClientMessage)
CLIENT_MESSAGE_TYPES: Final = frozenset(
    {
        "auth",
        "subscribe-execution",
        "unsubscribe-execution",
        "subscribe-all",
        "unsubscribe-all",
        "subscribe-config",
        "unsubscribe-config",
        "ping",
        "pong",
    }
)


# --- server -> client messages (besides the events themselves) ---------------------------


class ServerMessage(BaseModel):
    """A control message the server sends; events are sent as stored, not through these."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class ConnectionEstablished(ServerMessage):
    type: Literal["connection-established"] = "connection-established"
    client_id: str
    user_id: int
    is_admin: bool
    heartbeat_seconds: int | float = Field(description="An integer unless configured fractional")


class Subscribed(ServerMessage):
    type: Literal["subscribed"] = "subscribed"
    execution_id: str
    status: str


class Unsubscribed(ServerMessage):
    type: Literal["unsubscribed"] = "unsubscribed"
    execution_id: str


class SubscribedAll(ServerMessage):
    type: Literal["subscribed-all"] = "subscribed-all"


class UnsubscribedAll(ServerMessage):
    type: Literal["unsubscribed-all"] = "unsubscribed-all"


class SubscribedConfig(ServerMessage):
    type: Literal["subscribed-config"] = "subscribed-config"


class UnsubscribedConfig(ServerMessage):
    type: Literal["unsubscribed-config"] = "unsubscribed-config"


class PongMessage(ServerMessage):
    type: Literal["pong"] = "pong"


class Heartbeat(ServerMessage):
    type: Literal["heartbeat"] = "heartbeat"


ErrorCode = Literal[
    "invalid_json",
    "unknown_type",
    "bad_message",
    "forbidden",
    "not_found",
    "already_authenticated",
    "too_many_subscriptions",
    "unavailable",
]


class ErrorMessage(ServerMessage):
    """Something the client sent could not be done; the socket stays open."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    execution_id: str | None = Field(default=None, description="For subscription errors")


class ConfigChange(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str
    scope: dict[str, Any] | None
    version: int | None
    action: str


class ConfigChanged(ServerMessage):
    """Configuration changed (as published on the config channel)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["config_changed"] = "config_changed"
    changes: list[ConfigChange]


# Close codes of the socket.
CLOSE_GOING_AWAY: Final = 1001  # the server shuts down
CLOSE_POLICY_VIOLATION: Final = 1008  # authentication failed
CLOSE_TRY_AGAIN_LATER: Final = 1013  # the client reads too slowly
CLOSE_HEARTBEAT_TIMEOUT: Final = 4000  # nothing received for three heartbeat intervals
