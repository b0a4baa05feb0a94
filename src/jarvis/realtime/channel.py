"""What the hub and its channel listeners share: the client a hub serves, the listener of
one bus channel, and the compact JSON text every client of a message is sent.

The hub (``jarvis.realtime.hub``) subscribes once per channel and process and hands each
message to that channel's listener (``jarvis.realtime.listeners``); a listener passes it
on to its clients without awaiting any of them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

from jarvis.core.identity import Principal
from jarvis.kit.bus import Message
from jarvis.orchestration.events import Event

# How long to wait before subscribing or reading again after a failure (the last repeats).
RETRY_DELAYS: Final = (0.2, 0.5, 1.0, 2.0, 5.0)

# Called with each event of a followed execution and its JSON text; must not wait.
Deliver = Callable[[Event, str], None]


def retry_delay(failures: int) -> float:
    """The pause after ``failures`` failures in a row (0 for the first)."""
    return RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]


def encode(message: Message) -> str:
    """Compact JSON text of a message (encoded once per message, shared by all clients)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Spawn(Protocol):
    """Starts a background task the hub keeps (and cancels when it closes)."""

    def __call__(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]: ...


class Client(Protocol):
    """A connection the hub serves beyond single executions (a WebSocket)."""

    @property
    def user_id(self) -> int: ...

    @property
    def is_admin(self) -> bool: ...

    @property
    def principal(self) -> Principal:
        """Who opened the connection, and with which session or token."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` and ``reason`` (never waits)."""

    def push(self, text: str) -> None:
        """Queue ``text`` for sending; never waits (a full queue closes the client)."""

    def follows(self, execution_id: str) -> bool:
        """True when the client follows this execution (its follower sends its events)."""

    def tick(self, now: float) -> None:
        """A heartbeat interval passed (``now`` is the event loop's clock)."""

    def shutdown(self) -> None:
        """The server is stopping: close the connection."""


class ChannelListener(Protocol):
    """What the hub does with the messages of one bus channel."""

    @property
    def channel(self) -> str:
        """The bus channel listened to."""

    def on_message(self, message: Message) -> None:
        """One message of the channel (never waits; an exception is logged, not raised)."""

    def on_gap(self) -> None:
        """Messages of the channel may have been lost (a ``GAP``, a reconnect, no bus)."""

    def forget(self, client: Client) -> None:
        """``client`` is gone: drop whatever the listener keeps for it."""
