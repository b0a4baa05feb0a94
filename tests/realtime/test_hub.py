"""The hub and its followers: exactly-once, in-order delivery when the bus loses,
repeats or interrupts messages; subscribe-all by owner with a bounded owner cache.

The app runs its real engine on SQLite and PostgreSQL; the buses below are the in-process
bus with a fault added (a real implementation of the interface, not a mock), or the real
Redis with its subscriber connections killed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import GAP, MemoryBus, Message, RedisBus
from jarvis.orchestration import service
from jarvis.orchestration.events import EVENTS_CHANNEL
from jarvis.orchestration.lifecycle import TERMINAL_EVENTS
from jarvis.orchestration.recorder import append_events
from jarvis.realtime.hub import RealtimeHub
from jarvis.settings import Settings
from tests.orchestration.conftest import World, make_world
from tests.realtime.conftest import WAIT, eventually, running_app


class LossyBus(MemoryBus):
    """Loses execution events. ``gap=False``: every ``every``-th one but never an
    execution's last, so subscribers must notice the skipped number on the next event.
    ``gap=True``: each execution's last event, and subscribers are told with a ``GAP``
    (the way the Redis bus tells them after a reconnect): nothing else would show it."""

    def __init__(self, every: int, *, gap: bool) -> None:
        super().__init__()
        self.every = every
        self.gap = gap
        self.count = 0
        self.lost = 0

    async def publish(self, channel: str, message: Message) -> None:
        if channel == EVENTS_CHANNEL:
            self.count += 1
            last = message.get("type") in TERMINAL_EVENTS
            if last if self.gap else self.count % self.every == 0 and not last:
                self.lost += 1
                if self.gap:
                    for subscription in list(self._subscribers.get(channel, ())):
                        subscription._offer(GAP)
                return
        await super().publish(channel, message)


class RepeatingBus(MemoryBus):
    """Delivers every execution event twice (an at-least-once transport)."""

    async def publish(self, channel: str, message: Message) -> None:
        await super().publish(channel, message)
        if channel == EVENTS_CHANNEL:
            await super().publish(channel, message)


@dataclass
class Collector:
    """A follower's receiving end: what it delivered, and when it delivered the end."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def deliver(self, body: dict[str, Any], text: str) -> None:
        assert '"seq":' in text
        self.events.append(body)
        if body["type"] in TERMINAL_EVENTS:
            self.ended.set()

    async def until_end(self) -> list[dict[str, Any]]:
        async with asyncio.timeout(WAIT):
            await self.ended.wait()
        return self.events


@asynccontextmanager
async def world_on(settings: Settings, db: Database, bus: Any) -> AsyncIterator[World]:
    """The app on ``bus`` with its users (HTTP in-process)."""
    async with running_app(settings, db, bus=bus) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield await make_world(app, c, db)


async def some_agents(world: World) -> None:
    for layer in ("Experience", "Role", "Process", "System", "Interface"):
        await world.agent(layer, f"{layer} One", config={"delayMs": 5})
        await world.agent(layer, f"{layer} Two")


def hub_of(world: World) -> RealtimeHub:
    hub: RealtimeHub = world.app.state.realtime
    return hub


@pytest.mark.parametrize("gap", [False, True], ids=["skipped-seq", "gap-marker"])
async def test_a_follower_reads_lost_events_back_from_the_database(
    settings: Settings, db: Database, gap: bool
) -> None:
    bus = LossyBus(every=4, gap=gap)
    async with world_on(settings, db, bus) as world:
        await some_agents(world)
        execution_id = await world.post("go")
        collector = Collector()
        follower = hub_of(world).follower(execution_id, 0, collector.deliver)
        await follower.open()
        follower.start()
        events = await collector.until_end()
        follower.close()

        assert bus.lost > 0
        assert events == await world.events(execution_id)


async def test_repeated_events_are_delivered_once(settings: Settings, db: Database) -> None:
    async with world_on(settings, db, RepeatingBus()) as world:
        await some_agents(world)
        execution_id = await world.post("go")
        collector = Collector()
        follower = hub_of(world).follower(execution_id, 0, collector.deliver)
        await follower.open()
        follower.start()
        events = await collector.until_end()
        follower.close()
        assert events == await world.events(execution_id)


async def test_an_event_committed_while_the_follower_reads_comes_once(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered before reading: an event stored and published during the read comes
    live (SQLite's read snapshot predates it) or from the read (PostgreSQL sees it), and
    is delivered once either way."""
    async with world_on(settings, db, MemoryBus()) as world:
        execution_id = await world.post("go")
        await world.settle()
        bus = world.app.state.bus
        original = service.events_of
        injected: list[dict[str, Any]] = []

        async def events_of(session: AsyncSession, eid: str, **kwargs: Any) -> Any:
            if not injected:
                async with unit_of_work(world.db) as writer:
                    injected.extend(
                        await append_events(writer, bus, eid, [{"type": "step_skipped"}])
                    )
                await asyncio.sleep(0)  # let the hub hand it to the follower
            return await original(session, eid, **kwargs)

        monkeypatch.setattr(service, "events_of", events_of)
        collector = Collector()
        follower = hub_of(world).follower(execution_id, 0, collector.deliver)
        await follower.open()
        follower.start()
        stored = await world.events(execution_id)
        await eventually(lambda: len(collector.events) >= len(stored))
        follower.close()
        assert collector.events == stored
        assert stored[-1] == injected[0]


async def test_a_redis_reconnect_is_covered_by_a_database_read(
    settings: Settings, db: Database, redis_url: str
) -> None:
    name = f"hubtest-{uuid.uuid4().hex[:12]}"
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}"
    bus = RedisBus(url, reconnect_delay=0.05)
    try:
        async with world_on(settings, db, bus) as world:
            await world.agent("Process", "Reviewer", config={"requiresApproval": True})
            await some_agents(world)
            execution_id = await world.post("go")
            await world.settle()
            collector = Collector()
            follower = hub_of(world).follower(execution_id, 0, collector.deliver)
            await follower.open()
            follower.start()

            # Kill every subscriber connection of this app (the hub's among them), then
            # go on: events published while it reconnects are lost on the bus.
            admin = aioredis.Redis.from_url(redis_url)
            try:
                killed = 0
                for client in await admin.client_list(_type="pubsub"):
                    if client.get("name") == name:
                        await admin.client_kill_filter(_id=client["id"])
                        killed += 1
            finally:
                await admin.aclose()
            assert killed >= 1
            assert (await world.action(execution_id, "approve")).status_code == 200
            events = await collector.until_end()
            follower.close()
            assert events == await world.events(execution_id)
    finally:
        await bus.close()


@dataclass(eq=False)
class FakeClient:
    """A subscribe-all listener (what a socket is to the hub)."""

    user_id: int
    is_admin: bool
    texts: list[str] = field(default_factory=list)

    def push(self, text: str) -> None:
        self.texts.append(text)

    def follows(self, execution_id: str) -> bool:
        return False

    def tick(self, now: float) -> None:
        pass

    def shutdown(self) -> None:
        pass


async def test_subscribe_all_goes_by_owner_with_a_bounded_cache(
    settings: Settings, db: Database
) -> None:
    async with world_on(settings, db, MemoryBus()) as world:
        await world.agent("Process", "Worker", persona="underwriter", serves_all_personas=True)
        other_headers = await world.user("underwriter")
        hub = RealtimeHub(world.db, world.app.state.bus, owner_cache_size=1)
        await hub.start()
        try:
            uw = FakeClient(world.underwriter.id, False)
            admin = FakeClient(world.admin.id, True)
            nobody = FakeClient(10**9, False)
            for client in (uw, admin, nobody):
                hub.subscribe_all(client)
            ids = []
            for headers in (world.uw_headers, other_headers, world.uw_headers, other_headers):
                ids.append(await world.post("x", persona="underwriter", headers=headers))
                await world.settle()
            stored = {e: await world.events(e) for e in ids}
            total = sum(len(events) for events in stored.values())
            theirs = len(stored[ids[0]]) + len(stored[ids[2]])
            await eventually(lambda: len(admin.texts) >= total and len(uw.texts) >= theirs)
            mine = [json.loads(t) for t in uw.texts]
            assert mine == stored[ids[0]] + stored[ids[2]]
            assert [json.loads(t) for t in admin.texts] == [e for eid in ids for e in stored[eid]]
            assert nobody.texts == []
            assert len(hub.executions.owners) <= 1
            hub.unsubscribe_all(uw)
            assert hub.stats()["allListeners"] == 2
        finally:
            await hub.close()
