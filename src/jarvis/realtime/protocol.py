"""The messages of the realtime protocol (docs/realtime.md): what clients send over the
WebSocket and the control messages the server answers with.

The execution events themselves are orchestration's (``jarvis.orchestration.events``):
realtime carries them as stored and defines none. Wire names are camelCase
(``executionId``); Python names are snake_case. Client messages refuse unknown members, so
a typo (``aftrSeq``) is reported instead of silently replaying from the start.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from jarvis.kit.schema import ApiInput

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
# A client that leaves a WebSocket protocol ping unanswered is closed by uvicorn with 1011
# ("keepalive ping timeout"); nothing closes a client for not sending messages.
