"""Rate limits over a moving one-minute window, counted by the ``limits`` library.

Counters live in this process's memory by default. Given a Redis URL they live in Redis,
so every process sharing it shares the counts and a limit holds across instances.

A limiter outage must not take the API down: when Redis fails, hits are allowed (fail
open) and one warning is logged for the whole outage. After a failure Redis is left alone
for ``outage_retry_seconds`` (every hit in that time is allowed without waiting on a
dead server); the first hit after it tries again, and the first success logs the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import structlog
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from jarvis.kit.app_state import StateKey

log = structlog.get_logger(__name__)

# How long one Redis command may take before the hit is allowed without it.
REDIS_TIMEOUT_SECONDS = 1.0
DEFAULT_OUTAGE_RETRY_SECONDS = 5.0


def _storage_uri(redis_url: str) -> str:
    """The ``limits`` URI for a redis://, rediss:// or unix:// URL."""
    if redis_url.startswith("unix://"):
        return "async+redis+" + redis_url
    return "async+" + redis_url


def _key_part(value: str) -> str:
    # limits joins the parts of a key with "/": escape it so that ("a/b", "c") and
    # ("a", "b/c") never count on the same key.
    return value.replace("%", "%25").replace("/", "%2F")


class RateLimiter:
    """Counts hits per limit name and identity; says how long to wait when one is over."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        prefix: str = "jarvis",
        outage_retry_seconds: float = DEFAULT_OUTAGE_RETRY_SECONDS,
    ) -> None:
        self._pool: ConnectionPool | None = None
        self._memory: MemoryStorage | None = None
        storage: MemoryStorage | RedisStorage
        if redis_url:
            self._pool = ConnectionPool.from_url(
                redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            storage = RedisStorage(
                _storage_uri(redis_url),
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=f"{prefix}:ratelimit",
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        else:
            storage = self._memory = MemoryStorage()
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._outage_retry_seconds = outage_retry_seconds
        self._outage = False
        self._skip_storage_until = 0.0

    @property
    def shared(self) -> bool:
        """True when the counters are in Redis (shared with other processes)."""
        return self._pool is not None

    async def hit(self, name: str, per_minute: int, *identity: str) -> float | None:
        """Count one hit on limit `name` for `identity`; None when allowed, else the
        seconds until a retry can succeed (>= 1, for Retry-After)."""
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if self._outage and time.monotonic() < self._skip_storage_until:
            return None
        item = RateLimitItemPerMinute(per_minute, namespace=_key_part(name))
        parts = [_key_part(part) for part in identity]
        try:
            if await self._strategy.hit(item, *parts):
                wait = None
            else:
                stats = await self._strategy.get_window_stats(item, *parts)
                wait = float(max(1, math.ceil(stats.reset_time - time.time())))
        except StorageError as exc:
            self._storage_failed(exc)
            return None
        if self._outage:
            self._outage = False
            log.warning("rate_limit_storage_recovered")
        return wait

    def _storage_failed(self, exc: StorageError) -> None:
        self._skip_storage_until = time.monotonic() + self._outage_retry_seconds
        if not self._outage:
            self._outage = True
            log.warning(
                "rate_limit_storage_unavailable",
                error=f"{type(exc.storage_error).__name__}: {exc.storage_error}",
                effect="requests are allowed without counting until the storage answers",
            )

    async def reset(self) -> None:
        """Forget every counter of this limiter (of its prefix, with Redis)."""
        await self._storage.reset()

    async def close(self) -> None:
        """Release the Redis connections, or stop the memory storage's expiry task."""
        if self._pool is not None:
            await self._pool.aclose()
        if self._memory is not None:
            timer = self._memory.timer
            if timer is not None and not timer.done():
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer


RATE_LIMITER: StateKey[RateLimiter] = StateKey("rate_limiter", "the request rate limiter")
