"""A change made on one instance reaches the others: by the bus at once, by the poll of the
change log otherwise.

Each instance here is a separate ConfigService (or a whole app) with its own bus client on
the same database. The readers run with ``poll_seconds=0`` wherever the test is about the
bus, so only a bus message can invalidate their cache. Keys are unique per test: the
channel ``jarvis.config`` is shared by every run on the same Redis, and another run's
messages may invalidate our reader's cache but never name our key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from jarvis.config.service import CONFIG_CHANNEL, ConfigService
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import GAP, CapturingBus, EventBus, MemoryBus, RedisBus
from jarvis.main import create_app
from jarvis.settings import Settings
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_personas
from tests.realtime.test_bus import kill_subscriber_connections, with_client_name

WAIT = 10.0  # a hang guard, not a timing assertion


def unique_key() -> str:
    return f"test.propagation.k{uuid.uuid4().hex[:12]}"


async def register(config: ConfigService, key: str) -> None:
    async with unit_of_work(config.db) as session:
        await config.register_key(
            session,
            key=key,
            description="A key for the propagation tests.",
            schema={"type": "integer"},
            default=0,
            scopes=["global", "persona"],
            secret=False,
            requires_approval=False,
            actor=TEST_ACTOR,
        )


async def set_value(config: ConfigService, key: str, value: int, scope: Scope = GLOBAL) -> None:
    async with unit_of_work(config.db) as session:
        outcome = await config.set_value(session, key, value, scope, actor=TEST_ACTOR)
        assert outcome.value is not None


async def eventually(read: Callable[[], Awaitable[Any]], expected: Any) -> Any:
    """Read until the answer is ``expected`` or ``WAIT`` passes; return the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        answer = await read()
        if answer == expected or loop.time() > deadline:
            return answer
        await asyncio.sleep(0.02)


class Spy:
    """Records what a ConfigService was told to invalidate, and whether it polled."""

    def __init__(self, config: ConfigService) -> None:
        self.keys: list[set[str]] = []
        self.cleared = 0
        self.polls = 0
        # The listener and the poll are the reads part's: spy on it.
        reads = config.reads
        invalidate, invalidate_all, poll_once = (
            reads.invalidate,
            reads.invalidate_all,
            reads.poll_once,
        )

        def spy_invalidate(keys: Iterable[str], *, definitions: Iterable[str] = ()) -> None:
            wanted = set(keys)
            self.keys.append(wanted)
            invalidate(wanted, definitions=definitions)

        def spy_invalidate_all() -> None:
            self.cleared += 1
            invalidate_all()

        async def spy_poll_once() -> set[str]:
            self.polls += 1
            return await poll_once()

        reads.invalidate = spy_invalidate  # type: ignore[method-assign]
        reads.invalidate_all = spy_invalidate_all  # type: ignore[method-assign]
        reads.poll_once = spy_poll_once  # type: ignore[method-assign]

    def named(self, key: str) -> bool:
        return any(key in keys for keys in self.keys)

    async def settle(self, key: str) -> None:
        """Wait until the registration of ``key`` has reached this instance, then forget it
        (a late registration message would otherwise pass for the change's)."""

        async def named() -> bool:
            return self.named(key)

        assert await eventually(named, True)
        self.keys.clear()
        self.cleared = 0


@asynccontextmanager
async def started(
    db: Database, bus: EventBus, *, poll_seconds: float = 0
) -> AsyncIterator[ConfigService]:
    config = config_service(db, bus=bus, poll_seconds=poll_seconds)
    await config.start()
    try:
        yield config
    finally:
        await config.close()


@asynccontextmanager
async def redis_buses(url: str, count: int) -> AsyncIterator[list[RedisBus]]:
    buses = [RedisBus(url) for _ in range(count)]
    try:
        yield buses
    finally:
        for bus in buses:
            await bus.close()


# --- over Redis: two whole apps ---------------------------------------------------------


async def test_a_change_through_one_app_reaches_the_other_over_redis(
    settings: Settings, db: Database, redis_url: str, admin_headers: dict[str, str]
) -> None:
    key = unique_key()
    async with AsyncExitStack() as stack:
        bus_a, bus_b, watcher = await stack.enter_async_context(redis_buses(redis_url, 3))
        app_a = create_app(settings, database=db, bus=bus_a)
        app_b = create_app(
            settings.model_copy(update={"config_poll_seconds": 0}), database=db, bus=bus_b
        )
        await stack.enter_async_context(app_a.router.lifespan_context(app_a))
        await stack.enter_async_context(app_b.router.lifespan_context(app_b))
        config_a: ConfigService = app_a.state.config
        config_b: ConfigService = app_b.state.config
        assert config_b.poll_seconds == 0
        client_a = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app_a), base_url="http://a")
        )
        client_b = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app_b), base_url="http://b")
        )
        spy = Spy(config_b)
        await register(config_a, key)
        await spy.settle(key)

        # B reads and caches the default.
        assert await config_b.get(key) == 0
        assert config_b.cache.lookup(key, GLOBAL) is not None
        messages = await stack.enter_async_context(watcher.subscribe(CONFIG_CHANNEL))

        response = await client_a.post(
            "/api/config/setting", json={"key": key, "value": 7}, headers=admin_headers
        )
        assert response.status_code == 201, response.text

        assert await eventually(lambda: config_b.get(key), 7) == 7
        assert spy.named(key)  # B was told, by the bus ...
        assert spy.polls == 0  # ... and never polled
        answer = await client_b.get(f"/api/config/setting/{key}", headers=admin_headers)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["value"], answer.json()["version"]) == (7, 1)

        # What went over the wire (other runs may publish on the channel too).
        while True:
            message = await asyncio.wait_for(messages.get(), WAIT)
            if message is not GAP and message.get("origin") == config_a.instance_id:
                break
        assert message == {
            "type": "config_changed",
            "origin": config_a.instance_id,
            "changes": [{"key": key, "scope": {}, "version": 1, "action": "set"}],
        }


async def test_service_change_at_a_scope_reaches_the_other_instance_over_redis(
    db: Database, redis_url: str
) -> None:
    key = unique_key()
    await create_personas(db)
    underwriter = Scope(persona="underwriter")
    async with (
        redis_buses(redis_url, 2) as (bus_a, bus_b),
        started(db, bus_a) as config_a,
        started(db, bus_b) as config_b,
    ):
        spy = Spy(config_b)
        await register(config_a, key)
        await spy.settle(key)
        assert await config_b.get(key, underwriter) == 0
        assert await config_b.get(key, Scope(persona="admin")) == 0

        await set_value(config_a, key, 5, underwriter)

        assert await eventually(lambda: config_b.get(key, underwriter), 5) == 5
        assert await config_b.get(key, Scope(persona="admin")) == 0
        resolution = await config_b.resolve(key, underwriter)
        assert (resolution.source, resolution.version) == ("persona", 1)
        assert spy.named(key)
        assert spy.polls == 0

        # And the other way round: B writes, A (which cached the old value) follows.
        assert await config_a.get(key, underwriter) == 5
        await set_value(config_b, key, 6, underwriter)
        assert await eventually(lambda: config_a.get(key, underwriter), 6) == 6


async def test_a_reader_whose_bus_connection_dropped_rereads_after_the_gap(
    db: Database, redis_url: str
) -> None:
    """B's pub/sub connection is killed and A writes while B is away: the message is lost
    to B, but the GAP B's bus yields on reconnecting makes it drop its whole cache."""
    key = unique_key()
    client_name = f"jarvis-test-{uuid.uuid4().hex[:12]}"
    bus_a = RedisBus(redis_url)
    bus_b = RedisBus(with_client_name(redis_url, client_name), reconnect_delay=1.0)
    try:
        async with started(db, bus_a) as config_a, started(db, bus_b) as config_b:
            spy = Spy(config_b)
            await register(config_a, key)
            await spy.settle(key)
            assert await config_b.get(key) == 0

            assert await kill_subscriber_connections(redis_url, client_name) == 1
            await set_value(config_a, key, 3)

            assert await eventually(lambda: config_b.get(key), 3) == 3
            assert spy.cleared >= 1  # the GAP, not a message, did it
            assert spy.polls == 0
    finally:
        await bus_a.close()
        await bus_b.close()


# --- in process -------------------------------------------------------------------------


async def test_instances_sharing_an_in_process_bus_invalidate_each_other(db: Database) -> None:
    key = unique_key()
    bus = CapturingBus()
    async with started(db, bus) as config_a, started(db, bus) as config_b:
        spy = Spy(config_b)
        await register(config_a, key)
        await spy.settle(key)
        assert await config_b.get(key) == 0

        await set_value(config_a, key, 9)

        assert await eventually(lambda: config_b.get(key), 9) == 9
        assert spy.named(key)
        assert spy.polls == 0
    changes = [m for channel, m in bus.published if channel == CONFIG_CHANNEL]
    assert [m["changes"][0]["action"] for m in changes] == ["registry.create", "set"]
    assert {m["origin"] for m in changes} == {config_a.instance_id}


async def test_a_rolled_back_write_announces_nothing(db: Database) -> None:
    key = unique_key()
    bus = CapturingBus()
    async with started(db, bus) as config_a, started(db, bus) as config_b:
        await register(config_a, key)
        assert await config_b.poll_once() == {key}  # the registration
        assert await config_b.get(key) == 0
        published = len(bus.published)

        with pytest.raises(RuntimeError, match="abandon"):
            async with unit_of_work(db) as session:
                await config_a.set_value(session, key, 4, actor=TEST_ACTOR)
                raise RuntimeError("abandon the write")

        assert len(bus.published) == published
        assert await config_a.get(key) == 0
        assert await config_b.poll_once() == set()
        assert await config_b.get(key) == 0


# --- without a shared bus: the change-log poll is the backstop ----------------------------


async def test_without_a_shared_bus_the_change_shows_only_after_a_poll(db: Database) -> None:
    key = unique_key()
    async with started(db, MemoryBus()) as config_a, started(db, MemoryBus()) as config_b:
        await register(config_a, key)
        assert await config_b.poll_once() == {key}  # the registration
        assert await config_b.get(key) == 0

        await set_value(config_a, key, 8)

        assert await config_a.get(key) == 8  # the writer's own cache is invalidated
        await asyncio.sleep(0.1)  # nothing else is coming (there is no bus between them)
        assert await config_b.get(key) == 0  # B still serves its cached answer
        assert await config_b.poll_once() == {key}
        assert await config_b.get(key) == 8
        assert await config_b.poll_once() == set()


async def test_the_background_poll_carries_a_change_without_a_bus(db: Database) -> None:
    key = unique_key()
    async with (
        started(db, MemoryBus()) as config_a,
        started(db, MemoryBus(), poll_seconds=0.05) as config_b,
    ):
        await register(config_a, key)
        assert await eventually(lambda: config_b.get(key), 0) == 0
        await set_value(config_a, key, 2)
        assert await eventually(lambda: config_b.get(key), 2) == 2
