"""Reading configuration: resolution behind a cache, and the propagation that keeps the
cache true.

``get``, ``resolve`` and ``explain`` answer from an LRU cache (``ResolutionCache``) in
front of one indexed query; ``key_info`` caches the registry's definitions. A committed
write calls ``announce``: this instance drops its stale entries and publishes
``config_changed`` on the event bus, which every other instance listens to (``start``). A
poll of the change log backs the bus up (a missed message, or a process without the Redis
bus such as a CLI command, still reaches every instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

import structlog
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.config import registry, resolver
from jarvis.config.cache import Entry, ResolutionCache, expiry
from jarvis.config.changes import CONFIG_CHANNEL, Change
from jarvis.config.explanation import SettingExplanation
from jarvis.config.models import ConfigChangeLog
from jarvis.config.registry import KeyInfo
from jarvis.config.resolver import Candidate, Resolution
from jarvis.config.validation import schema_errors
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import after_commit, unit_of_work
from jarvis.errors import JarvisError
from jarvis.kit.bus import GAP, EventBus, MemoryBus
from jarvis.kit.clock import as_utc, utcnow

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Where a session keeps the changes it will announce once it commits.
PENDING = "jarvis.config.changes"


class StoredValueInvalid(JarvisError):
    status, title, slug = 500, "Stored configuration is invalid", "config-invalid"


class ConfigReads:
    """Resolution with its caches, and the bus listener and poll that invalidate them."""

    def __init__(
        self,
        db: Database,
        *,
        bus: EventBus | None = None,
        cache_size: int = 1000,
        poll_seconds: float = 2.0,
        instance_id: str | None = None,
    ) -> None:
        self.db = db
        self.bus: EventBus = bus if bus is not None else MemoryBus()
        self.instance_id = instance_id or uuid.uuid4().hex
        self.poll_seconds = poll_seconds
        self.cache = ResolutionCache(cache_size)
        self._keys: dict[str, KeyInfo] = {}
        self._key_generation = 0
        self._adapters: dict[Any, TypeAdapter[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_change_id = 0

    # --- propagation ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for other instances' changes (bus) and poll the change log as a backstop."""
        async with unit_of_work(self.db, write=False) as session:
            self._last_change_id = await _max_change_id(session)
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._listen(ready), name="config-listen"))
        if self.poll_seconds > 0:
            self._tasks.append(asyncio.create_task(self._poll(), name="config-poll"))
        await ready.wait()

    async def close(self) -> None:
        """Stop listening and polling."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _listen(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self.bus.subscribe(CONFIG_CHANNEL) as subscription:
                    ready.set()
                    async for message in subscription:
                        if message is GAP:
                            self.invalidate_all()
                        elif isinstance(message, dict) and message.get("origin") != (
                            self.instance_id
                        ):
                            self._apply_message(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ready.set()  # serve from the database and the poll until the bus is back
                log.warning("config.bus_unavailable", error=str(exc))
                self.invalidate_all()
                await asyncio.sleep(max(self.poll_seconds, 1.0))

    def _apply_message(self, message: dict[str, Any]) -> None:
        changes = [c for c in message.get("changes", ()) if isinstance(c, dict)]
        self.invalidate(
            (str(c.get("key", "")) for c in changes),
            definitions=(
                str(c.get("key", ""))
                for c in changes
                if str(c.get("action", "")).startswith("registry.")
            ),
        )

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("config.poll_failed", error=str(exc))

    async def poll_once(self) -> set[str]:
        """Invalidate keys changed (by anyone) since the last look; return them."""
        async with unit_of_work(self.db, write=False) as session:
            rows = (
                await session.execute(
                    select(ConfigChangeLog.id, ConfigChangeLog.config_key, ConfigChangeLog.action)
                    .where(ConfigChangeLog.id > self._last_change_id)
                    .order_by(ConfigChangeLog.id)
                    .limit(10_000)
                )
            ).all()
        if not rows:
            return set()
        self._last_change_id = rows[-1].id
        keys = {row.config_key for row in rows}
        self.invalidate(
            keys, definitions={r.config_key for r in rows if r.action.startswith("registry.")}
        )
        return keys

    def invalidate(self, keys: Iterable[str], *, definitions: Iterable[str] = ()) -> None:
        """Drop cached answers of ``keys``, and cached definitions of ``definitions``."""
        self.cache.invalidate(set(keys))
        changed = set(definitions)
        if changed:
            for key in changed:
                self._keys.pop(key, None)
            self._key_generation += 1

    def invalidate_all(self) -> None:
        """Drop every cached answer and definition."""
        self.cache.clear()
        self._keys.clear()
        self._key_generation += 1

    def announce(self, session: AsyncSession, change: Change) -> None:
        """After ``session`` commits: drop this instance's stale entries, tell the others
        (one message for every change of the transaction)."""
        pending: list[Change] | None = session.info.get(PENDING)
        if pending is not None:
            pending.append(change)
            return
        pending = [change]
        session.info[PENDING] = pending

        async def publish() -> None:
            changes: list[Change] = session.info.pop(PENDING, pending)
            self.invalidate(
                (c.key for c in changes), definitions=(c.key for c in changes if c.of_definition)
            )
            message = {
                "type": "config_changed",
                "origin": self.instance_id,
                "changes": [c.as_json() for c in changes],
            }
            try:
                await self.bus.publish(CONFIG_CHANNEL, message)
            except Exception as exc:  # the change is stored; the poll will carry it
                log.warning("config.publish_failed", error=str(exc))

        after_commit(session, publish)

    # --- definitions ----------------------------------------------------------------------

    async def key_info(self, key: str, session: AsyncSession | None = None) -> KeyInfo:
        """The registry entry of ``key``; 404 naming the closest keys when unknown.

        Cached when read on this service's own connection (a caller's ``session`` may see
        its own uncommitted change, which must not reach the cache)."""
        info = self._keys.get(key)
        if info is not None:
            return info
        generation = self._key_generation
        if session is not None:
            return await registry.load_key(session, key)
        async with unit_of_work(self.db, write=False) as own:
            info = await registry.load_key(own, key)
        if generation == self._key_generation:
            self._keys[key] = info
        return info

    # --- resolution -----------------------------------------------------------------------

    async def get(
        self,
        key: str,
        scope: Scope = GLOBAL,
        *,
        at: datetime | None = None,
        as_type: type[T] | Any = None,
    ) -> Any:
        """The validated value of ``key`` for ``scope`` (now, or at ``at``).

        ``as_type`` converts it with Pydantic (``as_type=float``, a model...).
        """
        if at is None:
            entry = self.cache.lookup(key, scope)
            if entry is not None and entry.expires > time.time():
                value = entry.value
            else:
                value = (await self._fill(key, scope)).value
        else:
            value = (await self.resolve(key, scope, at=at)).value
        if as_type is None:
            return value
        adapter = self._adapters.get(as_type)
        if adapter is None:
            adapter = self._adapters[as_type] = TypeAdapter(as_type)
        return adapter.validate_python(value)

    async def resolve(
        self, key: str, scope: Scope = GLOBAL, *, at: datetime | None = None
    ) -> Resolution:
        """The full answer: value, source, version and window."""
        if at is None:
            entry = self.cache.lookup(key, scope)
            if entry is not None and entry.expires > time.time():
                return entry.resolution
            return (await self._fill(key, scope)).resolution
        info = await self.key_info(key)
        async with self.db.read_engine.connect() as conn:
            resolution = await resolver.resolve_query(conn, key, scope, as_utc(at), info.default)
        if as_utc(at) >= utcnow():
            # The past is answered as it was served, even if today's schema is stricter.
            _check_stored(info, resolution)
        return resolution

    async def _fill(self, key: str, scope: Scope) -> Entry:
        info = await self.key_info(key)
        token = self.cache.token(key)
        # A Core connection, not a session: this is the whole cost of a cache miss.
        async with self.db.read_engine.connect() as conn:
            resolution = await resolver.resolve_query(conn, key, scope, utcnow(), info.default)
        _check_stored(info, resolution)
        entry = Entry(resolution.value, expiry(resolution.valid_until), resolution)
        self.cache.put(key, scope, entry, token)
        return entry

    async def explain(
        self, key: str, scope: Scope = GLOBAL, *, at: datetime | None = None
    ) -> list[Candidate]:
        """Every value that applies to ``scope`` at ``at`` (now), best first, with why."""
        await self.key_info(key)
        async with unit_of_work(self.db, write=False) as session:
            return await resolver.explain(session, key, scope, as_utc(at or utcnow()))

    async def explain_setting(
        self,
        key: str,
        scope: Scope = GLOBAL,
        *,
        at: datetime | None = None,
        candidates: bool = True,
    ) -> SettingExplanation:
        """ "Explain a setting": the effective value of ``key`` for ``scope`` at ``at`` (now)
        and, with ``candidates``, every value that applies and why it won or lost. The API,
        the page and the CLI all answer from this."""
        info = await self.key_info(key)
        resolution = await self.resolve(key, scope, at=at)
        found = await self.explain(key, scope, at=at) if candidates else None
        return SettingExplanation(
            info=info,
            scope=scope,
            at=at or utcnow(),
            resolution=resolution,
            candidates=found,
        )


def _check_stored(info: KeyInfo, resolution: Resolution) -> None:
    if resolution.source != "default" and schema_errors(info.validator, resolution.value, loc=()):
        raise StoredValueInvalid(
            f"the stored value of '{info.key}' (version {resolution.version}) does not "
            "satisfy the key's schema; set a new value"
        )


async def _max_change_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(ConfigChangeLog.id))) or 0)
