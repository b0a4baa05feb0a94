"""The event bus: publish a JSON message on a channel, every subscriber receives it.

One interface, three implementations:

- ``MemoryBus`` (the default): subscribers in this process only.
- ``RedisBus`` (``JARVIS_REDIS_URL`` set): Redis pub/sub, so every instance receives what
  any instance publishes.
- ``CapturingBus``: a ``MemoryBus`` that also keeps what was published, for tests.

Delivery is at most once; a subscriber that was disconnected is told so by a ``GAP``
marker in its stream (the Redis subscriber yields one after every reconnect), so it can
re-read whatever it caches instead of trusting state it may have missed changes to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import structlog

from jarvis.kit.app_state import StateKey

log = structlog.get_logger(__name__)

Message = dict[str, Any]


class _Gap:
    """Marker: messages may have been lost before this point."""

    def __repr__(self) -> str:
        return "GAP"


GAP: Final = _Gap()

# Bounded, so a subscriber that stops reading cannot grow the process without limit.
QUEUE_SIZE = 10_000


class EventBus(Protocol):
    kind: str  # "memory" or "redis"

    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` (JSON-serialisable) to every subscriber of ``channel``."""

    def subscribe(self, channel: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Receive the channel's messages while the context is open."""

    async def ping(self) -> bool:
        """True when the bus can carry messages now."""

    async def close(self) -> None:
        """Release connections."""


class Subscription:
    """What ``subscribe`` yields: iterate for messages (and ``GAP`` markers)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Message | _Gap] = asyncio.Queue(QUEUE_SIZE)

    def _offer(self, item: Message | _Gap) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Drop the backlog and say so: the reader re-reads instead of trusting it.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(GAP)

    async def get(self) -> Message | _Gap:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[Message | _Gap]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message | _Gap]:
        while True:
            yield await self._queue.get()


class MemoryBus:
    """Subscribers in this process only."""

    kind = "memory"

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    async def publish(self, channel: str, message: Message) -> None:
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return  # nobody listens: nothing to encode
        # Round-trip through JSON so in-process subscribers get what Redis would give them.
        decoded = json.loads(json.dumps(message))
        for subscription in list(subscribers):
            subscription._offer(decoded)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscribers.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[channel]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._subscribers.clear()


class CapturingBus(MemoryBus):
    """A ``MemoryBus`` that records every published message, for assertions in tests."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, Message]] = []

    async def publish(self, channel: str, message: Message) -> None:
        self.published.append((channel, json.loads(json.dumps(message))))
        await super().publish(channel, message)


class RedisBus:
    """Redis pub/sub: every instance connected to the same Redis sees every message."""

    kind = "redis"

    def __init__(self, url: str, *, reconnect_delay: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self._url = url
        # Health checks notice a half-open connection, so the subscriber reconnects.
        self._client = aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=15)
        self._reconnect_delay = reconnect_delay

    async def publish(self, channel: str, message: Message) -> None:
        await self._client.publish(channel, json.dumps(message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        ready = asyncio.Event()
        task = asyncio.create_task(self._pump(channel, subscription, ready))
        waiter = asyncio.ensure_future(ready.wait())
        try:
            # Subscribed before the caller goes on, so nothing published after is missed.
            await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            yield subscription
        finally:
            waiter.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pump(self, channel: str, subscription: Subscription, ready: asyncio.Event) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        first = True
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                if first:
                    ready.set()
                    first = False
                else:
                    subscription._offer(GAP)
                    log.info("bus.reconnected", channel=channel)
                while True:
                    item = await pubsub.get_message(timeout=30.0)
                    if item is None or item.get("type") != "message":
                        continue
                    try:
                        decoded = json.loads(item["data"])
                    except (TypeError, ValueError):
                        log.warning("bus.undecodable", channel=channel)
                        continue
                    if isinstance(decoded, dict):
                        subscription._offer(decoded)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if first:
                    raise
                log.warning("bus.disconnected", channel=channel, error=str(exc))
                await asyncio.sleep(self._reconnect_delay)
            except Exception as exc:  # anything else: reconnect too, never go quiet
                if first:
                    raise
                log.error("bus.subscriber_failed", channel=channel, error=repr(exc))
                await asyncio.sleep(self._reconnect_delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()


def create_bus(redis_url: str | None) -> EventBus:
    """Redis when a URL is configured, in-process otherwise."""
    if redis_url:
        return RedisBus(redis_url)
    return MemoryBus()


BUS: StateKey[EventBus] = StateKey("bus", "the event bus")
