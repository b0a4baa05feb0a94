"""The event bus: MemoryBus and RedisBus (the real Redis server) deliver alike.

Every test uses its own channel, so concurrent runs on the same Redis never meet.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from jarvis.kit import bus as bus_module
from jarvis.kit.bus import (
    GAP,
    CapturingBus,
    EventBus,
    MemoryBus,
    RedisBus,
    Subscription,
    create_bus,
)

WAIT = 10.0  # a hang guard, not a timing assertion
QUIET = 0.2


def channel() -> str:
    return f"test.bus.{uuid.uuid4().hex}"


async def next_item(subscription: Subscription) -> object:
    return await asyncio.wait_for(subscription.get(), WAIT)


async def assert_quiet(subscription: Subscription) -> None:
    """Nothing is waiting in (or arrives soon at) ``subscription``."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscription.get(), QUIET)


def with_client_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


async def kill_subscriber_connections(url: str, name: str) -> int:
    """Close the server side of the pub/sub connections named ``name`` (and no others)."""
    admin = aioredis.Redis.from_url(url)
    try:
        killed = 0
        for client in await admin.client_list(_type="pubsub"):
            if client.get("name") == name:
                await admin.client_kill_filter(_id=client["id"])
                killed += 1
        return killed
    finally:
        await admin.aclose()


# --- both implementations ---------------------------------------------------------------


BusFactory = Callable[[], EventBus]


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Buses of one kind; with Redis, every call is a separate client (an "instance");
    with memory, every call returns the same bus (a process has one)."""
    created: list[EventBus] = []
    if request.param == "memory":
        shared = MemoryBus()
        created.append(shared)

        def factory() -> EventBus:
            return shared

    else:
        url: str = request.getfixturevalue("redis_url")

        def factory() -> EventBus:
            bus = RedisBus(url)
            created.append(bus)
            return bus

    yield factory
    for bus in created:
        await bus.close()


async def test_every_subscriber_receives_what_is_published(make_bus: BusFactory) -> None:
    bus = make_bus()
    name = channel()
    async with bus.subscribe(name) as first, bus.subscribe(name) as second:
        await bus.publish(name, {"type": "hello", "n": 1})
        assert await next_item(first) == {"type": "hello", "n": 1}
        assert await next_item(second) == {"type": "hello", "n": 1}


async def test_left_and_other_channel_subscribers_receive_nothing(make_bus: BusFactory) -> None:
    bus = make_bus()
    name = channel()
    async with bus.subscribe(name) as gone:
        pass
    async with bus.subscribe(name) as staying, bus.subscribe(channel()) as elsewhere:
        await bus.publish(name, {"n": 1})
        assert await next_item(staying) == {"n": 1}  # delivered by now
        await assert_quiet(elsewhere)
    await assert_quiet(gone)


async def test_order_is_preserved(make_bus: BusFactory) -> None:
    bus = make_bus()
    name = channel()
    async with bus.subscribe(name) as subscription:
        for n in range(200):
            await bus.publish(name, {"n": n})
        received = []
        async for item in subscription:
            assert isinstance(item, dict), item
            received.append(item["n"])
            if len(received) == 200:
                break
    assert received == list(range(200))


async def test_subscribers_get_the_json_form_not_the_published_object(
    make_bus: BusFactory,
) -> None:
    bus = make_bus()
    name = channel()
    message = {"pair": (1, 2), "nested": {"items": [1]}, "text": "Zürich", "none": None}
    async with bus.subscribe(name) as subscription:
        await bus.publish(name, message)
        message["nested"]["items"].append(2)  # a later change is not seen
        received = await next_item(subscription)
    assert received == {"pair": [1, 2], "nested": {"items": [1]}, "text": "Zürich", "none": None}


async def test_unserialisable_message_is_refused_and_not_delivered(make_bus: BusFactory) -> None:
    bus = make_bus()
    name = channel()
    async with bus.subscribe(name) as subscription:
        with pytest.raises(TypeError):
            await bus.publish(name, {"when": object()})
        await assert_quiet(subscription)


async def test_subscription_is_ready_when_the_context_yields(make_bus: BusFactory) -> None:
    """A message published right after entering is received (no subscribe race)."""
    listener, publisher = make_bus(), make_bus()
    for n in range(5):
        name = channel()
        async with listener.subscribe(name) as subscription:
            await publisher.publish(name, {"n": n})
            assert await next_item(subscription) == {"n": n}


async def test_overflowing_subscription_yields_gap_then_newer_messages(
    make_bus: BusFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_module, "QUEUE_SIZE", 3)
    bus = make_bus()
    name = channel()
    total = 60
    async with bus.subscribe(name) as subscription:
        for n in range(total):  # nobody reads meanwhile
            await bus.publish(name, {"n": n})
        received: list[object] = []
        while received[-1:] != [{"n": total - 1}]:
            received.append(await next_item(subscription))
    assert GAP in received
    after_gap = received[len(received) - received[::-1].index(GAP) :]
    numbers = [item["n"] for item in after_gap if isinstance(item, dict)]
    assert numbers == sorted(numbers)
    assert len(received) < total  # the backlog was dropped, not kept


async def test_subscription_overflow_drops_backlog_and_marks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bus_module, "QUEUE_SIZE", 3)
    subscription = Subscription()
    for n in range(5):
        subscription._offer({"n": n})
    # 0, 1, 2 fill the queue; 3 overflows it: backlog and 3 dropped, GAP instead; 4 queues.
    assert await next_item(subscription) is GAP
    assert await next_item(subscription) == {"n": 4}
    await assert_quiet(subscription)


# --- MemoryBus and CapturingBus ---------------------------------------------------------


async def test_capturing_bus_records_and_delivers() -> None:
    bus = CapturingBus()
    name = channel()
    async with bus.subscribe(name) as subscription:
        await bus.publish(name, {"type": "x", "pair": (1, 2)})
        await bus.publish("elsewhere", {"type": "y"})
        assert await next_item(subscription) == {"type": "x", "pair": [1, 2]}
    assert bus.published == [(name, {"type": "x", "pair": [1, 2]}), ("elsewhere", {"type": "y"})]


async def test_memory_buses_are_separate() -> None:
    first, second = MemoryBus(), MemoryBus()
    name = channel()
    async with second.subscribe(name) as subscription:
        await first.publish(name, {"n": 1})
        await assert_quiet(subscription)


async def test_memory_bus_closed_under_an_open_subscription_lets_it_leave() -> None:
    bus = MemoryBus()
    name = channel()
    async with bus.subscribe(name) as subscription:
        await bus.close()
    await bus.publish(name, {"n": 1})
    await assert_quiet(subscription)


# --- RedisBus -----------------------------------------------------------------------------


async def test_redis_instances_see_each_others_messages(redis_url: str) -> None:
    publisher, listener = RedisBus(redis_url), RedisBus(redis_url)
    name = channel()
    try:
        async with listener.subscribe(name) as remote, publisher.subscribe(name) as local:
            await publisher.publish(name, {"from": "publisher"})
            await listener.publish(name, {"from": "listener"})
            assert [await next_item(remote), await next_item(remote)] == [
                {"from": "publisher"},
                {"from": "listener"},
            ]
            assert [await next_item(local), await next_item(local)] == [
                {"from": "publisher"},
                {"from": "listener"},
            ]
        assert await publisher.ping() is True
    finally:
        await publisher.close()
        await listener.close()


async def test_redis_skips_what_is_not_a_json_object(redis_url: str) -> None:
    bus = RedisBus(redis_url)
    raw = aioredis.Redis.from_url(redis_url)
    name = channel()
    try:
        async with bus.subscribe(name) as subscription:
            await raw.publish(name, "not json {")
            await raw.publish(name, "[1, 2]")
            await raw.publish(name, "42")
            await bus.publish(name, {"ok": True})
            assert await next_item(subscription) == {"ok": True}
    finally:
        await raw.aclose()
        await bus.close()


async def test_redis_subscriber_reconnects_with_a_gap(redis_url: str) -> None:
    """Its connection killed by the server, the subscriber reconnects, yields GAP (it may
    have missed messages) and then receives again."""
    client_name = f"jarvis-test-{uuid.uuid4().hex[:12]}"
    url = with_client_name(redis_url, client_name)
    listener = RedisBus(url, reconnect_delay=0.05)
    publisher = RedisBus(redis_url)
    name = channel()
    try:
        async with listener.subscribe(name) as subscription:
            await publisher.publish(name, {"n": 1})
            assert await next_item(subscription) == {"n": 1}
            assert await kill_subscriber_connections(redis_url, client_name) == 1
            assert await next_item(subscription) is GAP
            await publisher.publish(name, {"n": 2})  # subscribed again before the GAP
            assert await next_item(subscription) == {"n": 2}
    finally:
        await listener.close()
        await publisher.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_unreachable_fails_subscribe_and_publish() -> None:
    bus = RedisBus(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with pytest.raises(RedisConnectionError):
            async with bus.subscribe(channel()):
                pass
        with pytest.raises(RedisConnectionError):
            await bus.publish(channel(), {"n": 1})
    finally:
        await bus.close()


# --- choosing the bus -------------------------------------------------------------------


async def test_create_bus_picks_memory_without_url_and_redis_with_one(redis_url: str) -> None:
    assert type(create_bus(None)) is MemoryBus
    assert type(create_bus("")) is MemoryBus
    redis_bus = create_bus(redis_url)
    try:
        assert isinstance(redis_bus, RedisBus)
        assert await redis_bus.ping() is True
    finally:
        await redis_bus.close()
