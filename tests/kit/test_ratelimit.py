"""The rate limiter: a moving one-minute window over the ``limits`` library, in memory or
in Redis (shared by every instance on it), failing open when Redis is down."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import limits.aio.storage.memory
import limits.aio.storage.redis.redispy
import pytest
from structlog.testing import capture_logs

import jarvis.kit.ratelimit
from jarvis.kit.ratelimit import RateLimiter

STORAGES = ("memory", "redis")


class Clock:
    """Wall-clock time the test moves by hand (monotonic time stays real)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every module that reads the wall clock for a rate limit reads this one."""
    fake = Clock()
    namespace = SimpleNamespace(time=fake.time, monotonic=fake.monotonic)
    for module in (
        limits.aio.storage.memory,
        limits.aio.storage.redis.redispy,
        jarvis.kit.ratelimit,
    ):
        monkeypatch.setattr(module, "time", namespace)
    return fake


@pytest.fixture
async def limiter_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., RateLimiter]]:
    """Build limiters of the parametrised storage; each Redis test gets its own prefix."""
    storage: str = request.param
    prefix = f"test-ratelimit-{uuid.uuid4().hex}"
    redis_url: str | None = request.getfixturevalue("redis_url") if storage == "redis" else None
    made: list[RateLimiter] = []

    def make(**options: Any) -> RateLimiter:
        limiter = RateLimiter(redis_url, prefix=options.pop("prefix", prefix), **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        with contextlib.suppress(Exception):
            await limiter.reset()
        await limiter.close()


def both_storages() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("limiter_factory", STORAGES, indirect=True)


@both_storages()
async def test_allows_the_limit_then_refuses_until_the_oldest_hit_leaves_the_window(
    limiter_factory: Callable[..., RateLimiter], clock: Clock
) -> None:
    limiter = limiter_factory()
    start = clock.now

    for offset in (0, 1, 2):
        clock.now = start + offset
        assert await limiter.hit("login", 3, "ana@example.com") is None

    clock.now = start + 10
    # The hit at +0 leaves the one-minute window at +60: 50 seconds from now.
    assert await limiter.hit("login", 3, "ana@example.com") == 50.0
    clock.now = start + 59.5
    assert await limiter.hit("login", 3, "ana@example.com") == 1.0  # never below one second

    clock.now = start + 60.5
    assert await limiter.hit("login", 3, "ana@example.com") is None
    # Refused hits were not counted: the window now holds +1, +2 and +60.5.
    clock.now = start + 60.6
    assert await limiter.hit("login", 3, "ana@example.com") == 1.0
    clock.now = start + 61.5
    assert await limiter.hit("login", 3, "ana@example.com") is None


@both_storages()
async def test_identities_and_limit_names_count_separately(
    limiter_factory: Callable[..., RateLimiter], clock: Clock
) -> None:
    limiter = limiter_factory()

    assert await limiter.hit("login", 1, "ip", "10.0.0.1") is None
    assert await limiter.hit("login", 1, "ip", "10.0.0.1") is not None
    assert await limiter.hit("login", 1, "ip", "10.0.0.2") is None
    assert await limiter.hit("login", 1, "account", "10.0.0.1") is None
    assert await limiter.hit("api", 1, "ip", "10.0.0.1") is None
    assert await limiter.hit("executions", 1, "ip", "10.0.0.1") is None
    assert await limiter.hit("api", 1, "ip", "10.0.0.1") is not None


@both_storages()
async def test_identity_parts_cannot_run_into_each_other(
    limiter_factory: Callable[..., RateLimiter], clock: Clock
) -> None:
    limiter = limiter_factory()

    assert await limiter.hit("api", 1, "a/b", "c") is None
    assert await limiter.hit("api", 1, "a", "b/c") is None
    assert await limiter.hit("api", 1, "a%2Fb", "c") is None
    assert await limiter.hit("a/api", 1, "c") is None
    assert await limiter.hit("a", 1, "api/c") is None
    assert await limiter.hit("api", 1, "a/b", "c") is not None


@both_storages()
async def test_a_higher_limit_lets_more_through(
    limiter_factory: Callable[..., RateLimiter], clock: Clock
) -> None:
    limiter = limiter_factory()
    allowed = [await limiter.hit("api", 5, "user-1") for _ in range(7)]
    assert allowed[:5] == [None] * 5
    assert allowed[5] is not None and allowed[6] is not None


@both_storages()
async def test_reset_forgets_every_counter(
    limiter_factory: Callable[..., RateLimiter], clock: Clock
) -> None:
    limiter = limiter_factory()
    assert await limiter.hit("api", 1, "user-1") is None
    assert await limiter.hit("api", 1, "user-1") is not None

    await limiter.reset()

    assert await limiter.hit("api", 1, "user-1") is None


@both_storages()
async def test_limits_below_one_are_a_programming_error(
    limiter_factory: Callable[..., RateLimiter],
) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await limiter_factory().hit("api", 0, "user-1")


@pytest.mark.parametrize("limiter_factory", ["redis"], indirect=True)
async def test_two_limiters_on_one_redis_share_their_counts(
    limiter_factory: Callable[..., RateLimiter], clock: Clock
) -> None:
    first, second = limiter_factory(), limiter_factory()
    assert first.shared and second.shared

    assert await first.hit("login", 2, "ana@example.com") is None
    assert await second.hit("login", 2, "ana@example.com") is None
    assert await first.hit("login", 2, "ana@example.com") == 60.0
    assert await second.hit("login", 2, "ana@example.com") == 60.0

    # Another prefix (another deployment on the same Redis) counts on its own.
    other = limiter_factory(prefix=f"test-ratelimit-{uuid.uuid4().hex}")
    assert await other.hit("login", 2, "ana@example.com") is None


@pytest.mark.parametrize("limiter_factory", ["memory"], indirect=True)
async def test_memory_limiters_count_only_their_own_hits(
    limiter_factory: Callable[..., RateLimiter], clock: Clock
) -> None:
    first, second = limiter_factory(), limiter_factory()
    assert not first.shared

    assert await first.hit("login", 1, "ana@example.com") is None
    assert await first.hit("login", 1, "ana@example.com") is not None
    assert await second.hit("login", 1, "ana@example.com") is None


async def test_an_unreachable_redis_allows_every_hit_and_warns_once() -> None:
    limiter = RateLimiter("redis://127.0.0.1:1/0", outage_retry_seconds=0)
    try:
        with capture_logs() as logs:
            answers = [await limiter.hit("login", 1, "ana@example.com") for _ in range(5)]
    finally:
        await limiter.close()

    assert answers == [None] * 5
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["event"] for entry in warnings] == ["rate_limit_storage_unavailable"]
    assert "ConnectionError" in warnings[0]["error"]


class FlakyRedisProxy:
    """A TCP proxy to the test Redis that the test can break (connections are closed at
    once) and mend, to play an outage and its end."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.parts = parts
        self.down = False
        self.open: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return urlunsplit(self.parts._replace(netloc=f"127.0.0.1:{port}"))

    def break_connections(self) -> None:
        self.down = True
        for writer in self.open:
            writer.close()

    async def close(self) -> None:
        self.break_connections()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.open.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self.open.difference_update((writer, upstream_writer))


async def test_an_outage_fails_open_and_counting_resumes_when_redis_answers_again(
    redis_url: str,
) -> None:
    proxy = FlakyRedisProxy(redis_url)
    proxied_url = await proxy.start()
    limiter = RateLimiter(
        proxied_url, prefix=f"test-ratelimit-{uuid.uuid4().hex}", outage_retry_seconds=0
    )
    try:
        with capture_logs() as logs:
            assert await limiter.hit("login", 1, "ana@example.com") is None
            assert await limiter.hit("login", 1, "ana@example.com") is not None

            proxy.break_connections()
            during = [await limiter.hit("login", 1, "ana@example.com") for _ in range(3)]

            proxy.down = False
            after = await limiter.hit("login", 1, "ana@example.com")
        events = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    finally:
        with contextlib.suppress(Exception):
            await limiter.reset()
        await limiter.close()
        await proxy.close()

    assert during == [None, None, None]
    assert after is not None  # counted again, and the earlier hit is still in the window
    assert events == ["rate_limit_storage_unavailable", "rate_limit_storage_recovered"]


async def test_after_a_failure_redis_is_left_alone_for_the_retry_interval(
    redis_url: str,
) -> None:
    proxy = FlakyRedisProxy(redis_url)
    proxied_url = await proxy.start()
    limiter = RateLimiter(
        proxied_url, prefix=f"test-ratelimit-{uuid.uuid4().hex}", outage_retry_seconds=3600
    )
    try:
        assert await limiter.hit("login", 1, "ana@example.com") is None
        proxy.break_connections()
        assert await limiter.hit("login", 1, "ana@example.com") is None
        proxy.down = False
        # Redis answers again, but the limiter does not ask it within the interval.
        assert await limiter.hit("login", 1, "ana@example.com") is None
    finally:
        with contextlib.suppress(Exception):
            await limiter.reset()
        await limiter.close()
        await proxy.close()
