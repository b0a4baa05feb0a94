"""The realtime hub: one bus subscription per channel per process, fanned out to clients.

Every WebSocket connection and SSE stream of this process is served from the same bus
subscriptions; the hub keeps them (resubscribing after a failure and telling the channel's
listener that messages may have been lost) and hands each message to that channel's
listener, which passes it on without awaiting any client. A client that cannot keep up
notices it in its own bounded queue (see ``jarvis.realtime.ws``); the hub never waits.

The listeners, one per channel (``jarvis.realtime.listeners``):

- ``executions``: each execution's events to its followers (replay, then live, with no gap
  and no duplicate: ``jarvis.realtime.follower``) and to the ``subscribe-all`` clients;
- ``config``: configuration changes to the ``subscribe-config`` clients;
- ``auth``: a revocation closes the sockets of the revoked credentials with 4001.

The hub also sends every client a heartbeat every interval (information only: whether a
client is alive is the WebSocket protocol's pings' business, see ``jarvis.realtime.ws``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Final

import structlog

from jarvis.db.engine import Database
from jarvis.kit.app_state import StateKey
from jarvis.kit.bus import GAP, EventBus
from jarvis.realtime.channel import ChannelListener, Client, Deliver, retry_delay
from jarvis.realtime.follower import ExecutionFollower
from jarvis.realtime.listeners.auth import RevocationListener
from jarvis.realtime.listeners.config import ConfigListener
from jarvis.realtime.listeners.executions import DEFAULT_OWNER_CACHE_SIZE, ExecutionListener

log = structlog.get_logger(__name__)

# How long shutdown waits for clients to close their sockets.
SHUTDOWN_GRACE_SECONDS: Final = 5.0


class RealtimeHub:
    """See the module docstring. One per application (process)."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        heartbeat_seconds: float = 15.0,
        owner_cache_size: int = DEFAULT_OWNER_CACHE_SIZE,
    ) -> None:
        self.db = db
        self.bus = bus
        self.heartbeat_seconds = heartbeat_seconds
        self._clients: set[Client] = set()
        self._no_clients = asyncio.Event()
        self._no_clients.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[asyncio.Task[None]] = []
        self.executions = ExecutionListener(db, self.spawn, owner_cache_size=owner_cache_size)
        self.config = ConfigListener()
        self.auth = RevocationListener(db, self.spawn, lambda: self._clients)
        self.channels: tuple[ChannelListener, ...] = (self.executions, self.config, self.auth)
        self.running = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to every channel; start the heartbeat."""
        if self.running:
            return
        self.running = True
        ready = [asyncio.Event() for _ in self.channels]
        self._listeners = [
            asyncio.create_task(self._listen(listener, event), name=f"realtime-{listener.channel}")
            for listener, event in zip(self.channels, ready, strict=True)
        ]
        self._listeners.append(asyncio.create_task(self._heartbeat(), name="realtime-heartbeat"))
        await asyncio.gather(*(event.wait() for event in ready))

    async def close(self) -> None:
        """Close every client (1001), wait briefly for them, stop listening."""
        for client in list(self._clients):
            client.shutdown()
        if self._clients:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_clients.wait(), SHUTDOWN_GRACE_SECONDS)
        self.executions.close_followers()
        tasks = [*self._listeners, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._listeners.clear()
        self._tasks.clear()
        self.running = False

    def stats(self) -> dict[str, int]:
        """How many clients and subscriptions this process serves (for health and tests)."""
        return {
            "clients": len(self._clients),
            **self.executions.stats(),
            "configListeners": len(self.config.subscribers),
        }

    # --- registration ------------------------------------------------------------------------

    def follower(self, execution_id: str, after_seq: int, deliver: Deliver) -> ExecutionFollower:
        """A follower of one execution (not registered until ``open``)."""
        return self.executions.follower(execution_id, after_seq, deliver)

    def add_client(self, client: Client) -> None:
        """A connection to serve (heartbeats, revocations, shutdown)."""
        self._clients.add(client)
        self._no_clients.clear()
        self.auth.client_added(client)

    def remove_client(self, client: Client) -> None:
        """The connection is gone: every listener forgets it."""
        self._clients.discard(client)
        for listener in self.channels:
            listener.forget(client)
        if not self._clients:
            self._no_clients.set()

    def subscribe_all(self, client: Client) -> None:
        """Live events of every execution ``client`` may see."""
        self.executions.subscribe_all(client)

    def unsubscribe_all(self, client: Client) -> None:
        """Stop ``subscribe_all``."""
        self.executions.unsubscribe_all(client)

    def subscribe_config(self, client: Client) -> None:
        """Configuration changes."""
        self.config.subscribe(client)

    def unsubscribe_config(self, client: Client) -> None:
        """Stop ``subscribe_config``."""
        self.config.unsubscribe(client)

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task the hub keeps, and cancels when it closes."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the bus -----------------------------------------------------------------------------

    async def _listen(self, listener: ChannelListener, ready: asyncio.Event) -> None:
        first = True
        failures = 0
        while True:
            try:
                async with self.bus.subscribe(listener.channel) as subscription:
                    ready.set()
                    failures = 0
                    if not first:
                        listener.on_gap()  # messages published while we were away are lost
                    first = False
                    while True:
                        item = await subscription.get()
                        if item is GAP:
                            listener.on_gap()
                        elif isinstance(item, dict):
                            try:
                                listener.on_message(item)
                            except Exception as exc:  # one bad message never stops fan-out
                                log.error("realtime.dispatch_failed", error=repr(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ready.set()  # serve replays from the database until the bus is back
                first = False
                log.warning("realtime.bus_unavailable", channel=listener.channel, error=str(exc))
                listener.on_gap()
                await asyncio.sleep(retry_delay(failures))
                failures += 1

    # --- heartbeat ---------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            now = loop.time()
            for client in list(self._clients):
                try:
                    client.tick(now)
                except Exception as exc:
                    log.error("realtime.heartbeat_failed", error=repr(exc))


REALTIME: StateKey[RealtimeHub] = StateKey("realtime", "the live-event hub")
