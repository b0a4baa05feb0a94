"""ConfigService: the seed's configuration service.

Reads (``get``, ``resolve``, ``explain``) answer from an LRU cache in front of one indexed
query. Writes (``set_value``, ``revert``, ``deactivate``, registry changes, approvals)
run inside the caller's transaction: each creates a new version (nothing is rewritten),
writes the audit ledger and the change log, and once the transaction commits invalidates
this instance's cache and publishes ``config_changed`` on the event bus, which every other
instance listens to. A poll of the change log backs the bus up (a missed message, or a
process without the Redis bus such as a CLI command, still reaches every instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import lock_ledger, record_audit
from jarvis.config import approvals, registry, resolver
from jarvis.config.cache import Entry, ResolutionCache, expiry
from jarvis.config.models import (
    ConfigChangeLog,
    ConfigChangeRequest,
    ConfigRegistry,
    ConfigValue,
)
from jarvis.config.ports import ScopeTargets
from jarvis.config.registry import (
    KeyChangeOutcome,
    KeyInfo,
    RegistryChanges,
    value_scope,
)
from jarvis.config.resolver import Candidate, Resolution
from jarvis.config.validation import compile_schema, mask, schema_errors, validate_value
from jarvis.core.identity import Actor
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import after_commit, unit_of_work
from jarvis.errors import (
    Conflict,
    Forbidden,
    JarvisError,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from jarvis.kit.bus import GAP, EventBus, MemoryBus
from jarvis.kit.clock import as_utc, utcnow

log = structlog.get_logger(__name__)

T = TypeVar("T")

CONFIG_CHANNEL = "jarvis.config"
KEY_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
MAX_KEY_LENGTH = 100
# A schedule given a moment ago (clock skew, a slow client) still counts as "now".
PAST_TOLERANCE = timedelta(seconds=5)


class StoredValueInvalid(JarvisError):
    status, title, slug = 500, "Stored configuration is invalid", "config-invalid"


@dataclass(frozen=True)
class Change:
    """One stored change, as announced on the bus."""

    key: str
    scope: Scope | None
    version: int | None
    action: str

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scope": self.scope.as_json() if self.scope is not None else None,
            "version": self.version,
            "action": self.action,
        }


@dataclass(frozen=True)
class SetOutcome:
    """A write either stored a value or, for keys that need approval, opened a request."""

    value: ConfigValue | None = None
    request: ConfigChangeRequest | None = None


class ConfigService:
    """One per process (or per app instance); cheap to create for a CLI command."""

    def __init__(
        self,
        db: Database,
        *,
        bus: EventBus | None = None,
        cache_size: int = 1000,
        poll_seconds: float = 2.0,
        instance_id: str | None = None,
        targets: ScopeTargets | None = None,
    ) -> None:
        self.db = db
        # Persona and agent existence for scoped writes (None: writes name no persona or
        # agent, as in a process that only reads configuration).
        self.targets = targets
        self.bus: EventBus = bus if bus is not None else MemoryBus()
        self.instance_id = instance_id or uuid.uuid4().hex
        self.poll_seconds = poll_seconds
        self.cache = ResolutionCache(cache_size)
        self._keys: dict[str, KeyInfo] = {}
        self._key_generation = 0
        self._adapters: dict[Any, TypeAdapter[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_change_id = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for other instances' changes (bus) and poll the change log as a backstop."""
        async with unit_of_work(self.db, write=False) as session:
            self._last_change_id = await self._max_change_id(session)
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._listen(ready), name="config-listen"))
        if self.poll_seconds > 0:
            self._tasks.append(asyncio.create_task(self._poll(), name="config-poll"))
        await ready.wait()

    async def close(self) -> None:
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

    @staticmethod
    async def _max_change_id(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.max(ConfigChangeLog.id))) or 0)

    # --- invalidation ---------------------------------------------------------------------

    def invalidate(self, keys: Iterable[str], *, definitions: Iterable[str] = ()) -> None:
        """Drop cached answers of ``keys``, and cached definitions of ``definitions``."""
        self.cache.invalidate(set(keys))
        changed = set(definitions)
        if changed:
            for key in changed:
                self._keys.pop(key, None)
            self._key_generation += 1

    def invalidate_all(self) -> None:
        self.cache.clear()
        self._keys.clear()
        self._key_generation += 1

    def _announce(self, session: AsyncSession, change: Change) -> None:
        """After commit: drop this instance's stale entries, tell the others."""
        pending: list[Change] | None = session.info.get("jarvis.config.changes")
        if pending is not None:
            pending.append(change)
            return
        pending = [change]
        session.info["jarvis.config.changes"] = pending

        async def publish() -> None:
            changes = session.info.pop("jarvis.config.changes", pending)
            self.invalidate(
                (c.key for c in changes),
                definitions=(c.key for c in changes if c.action.startswith("registry.")),
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

    # --- registry -------------------------------------------------------------------------

    async def key_info(self, key: str, session: AsyncSession | None = None) -> KeyInfo:
        """The registry entry of ``key``; 404 naming the closest keys when unknown."""
        info = self._keys.get(key)
        if info is not None:
            return info
        generation = self._key_generation
        if session is None:
            async with unit_of_work(self.db, write=False) as own:
                row = await own.get(ConfigRegistry, key)
                known = None if row else await self._all_keys(own)
        else:
            row = await session.get(ConfigRegistry, key)
            known = None if row else await self._all_keys(session)
        if row is None:
            close = difflib.get_close_matches(key, known or [], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(k) for k in close)}?" if close else ""
            raise NotFound(f"no configuration key '{key}'{hint}")
        info = KeyInfo.from_row(row)
        if session is None and generation == self._key_generation:
            self._keys[key] = info
        return info

    @staticmethod
    async def _all_keys(session: AsyncSession) -> list[str]:
        return list((await session.scalars(select(ConfigRegistry.key))).all())

    async def list_keys(
        self, session: AsyncSession, *, search: str | None, limit: int, offset: int
    ) -> tuple[list[KeyInfo], int]:
        return await registry.list_keys(session, search=search, limit=limit, offset=offset)

    async def register_key(
        self,
        session: AsyncSession,
        *,
        key: str,
        description: str,
        schema: dict[str, Any],
        default: Any,
        scopes: Sequence[str],
        secret: bool,
        requires_approval: bool,
        actor: Actor,
    ) -> KeyInfo:
        """Add a key to the registry; 409 when it exists, 422 when the default fails."""
        if not KEY_RE.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
            raise ValidationFailed.field(
                ["body", "key"],
                "must be dotted lower-case words (letters, digits, '_'; each word starting "
                f"with a letter), at most {MAX_KEY_LENGTH} characters",
            )
        await lock_ledger(session)
        if await session.get(ConfigRegistry, key) is not None:
            raise Conflict(f"the configuration key '{key}' already exists")
        validator = compile_schema(schema)
        validate_value(validator, default, key=key, loc=("body", "default"), secret=secret)
        row = ConfigRegistry(
            key=key,
            description=description,
            value_schema=schema,
            default_value=default,
            allowed_scopes=registry.ordered_scopes(scopes),
            is_secret=secret,
            requires_approval=requires_approval,
            revision=1,
            updated_by=actor.label,
        )
        session.add(row)
        await session.flush()
        await self._definition_changed(session, row, "registry.create", actor, before=None)
        return KeyInfo.from_row(row)

    async def update_key(
        self,
        session: AsyncSession,
        key: str,
        changes: RegistryChanges,
        *,
        actor: Actor,
        if_match: int | None = None,
        change_request_id: int | None = None,
    ) -> KeyInfo:
        """Change a key's definition now. A new schema must accept the default and every
        value that is live or scheduled; otherwise 422 lists the values it would break.

        This applies without four eyes: on behalf of a person, call ``change_key``, which
        turns a change of a key that needs approval into a change request.
        """
        await lock_ledger(session)
        row = await session.scalar(
            select(ConfigRegistry).where(ConfigRegistry.key == key).with_for_update()
        )
        if row is None:
            await self.key_info(key, session)  # raises the 404 with suggestions
            raise NotFound(f"no configuration key '{key}'")
        if if_match is not None and if_match != row.revision:
            raise PreconditionFailed(
                f"'{key}' is at revision {row.revision}, not {if_match}; reload and retry"
            )
        before = registry.registry_json(row)
        proposed = await self._proposed(session, row, changes)
        if proposed == registry.definition(row):
            return KeyInfo.from_row(row)
        row.description = proposed["description"]
        row.value_schema = proposed["schema"]
        row.default_value = proposed["default"]
        row.allowed_scopes = proposed["scopes"]
        row.is_secret = proposed["secret"]
        row.requires_approval = proposed["requiresApproval"]
        row.revision += 1
        row.updated_by = actor.label
        row.updated_at = utcnow()
        await session.flush()
        await self._definition_changed(
            session,
            row,
            "registry.update",
            actor,
            before=before,
            change_request_id=change_request_id,
        )
        return KeyInfo.from_row(row)

    async def _definition_changed(
        self,
        session: AsyncSession,
        row: ConfigRegistry,
        action: str,
        actor: Actor,
        *,
        before: dict[str, Any] | None,
        change_request_id: int | None = None,
    ) -> None:
        """Audit, log and announce a stored change of a key's definition."""
        after = registry.registry_json(row)
        await record_audit(
            session,
            actor=actor,
            action=f"config.{action}",
            entity_type="config_key",
            entity_id=row.key,
            before=before,
            after=after,
        )
        self._log(
            session,
            row.key,
            action,
            actor,
            old=before,
            new=after,
            change_request_id=change_request_id,
        )
        await session.flush()
        self._announce(session, Change(row.key, None, None, action))

    async def change_key(
        self,
        session: AsyncSession,
        key: str,
        changes: RegistryChanges,
        *,
        actor: Actor,
        if_match: int | None = None,
        reason: str | None = None,
    ) -> KeyChangeOutcome:
        """Change a key's definition; for a key that needs approval (turning approval off
        or un-masking a secret included), open a change request instead.

        """
        await lock_ledger(session)
        info = await self.key_info(key, session)
        if not info.requires_approval:
            return KeyChangeOutcome(
                info=await self.update_key(session, key, changes, actor=actor, if_match=if_match)
            )
        if if_match is not None and if_match != info.revision:
            raise PreconditionFailed(
                f"'{key}' is at revision {info.revision}, not {if_match}; reload and retry"
            )
        row = await session.get(ConfigRegistry, key)
        assert row is not None  # noqa: S101 - key_info found it under the same lock
        # Checked now, so a request never holds a change that could not apply today.
        if await self._proposed(session, row, changes) == registry.definition(row):
            return KeyChangeOutcome(info=info)
        payload = {**changes.as_json(), "revision": info.revision}
        request = await self._request(session, info, "registry", payload, actor, reason)
        return KeyChangeOutcome(request=request)

    async def _proposed(
        self, session: AsyncSession, row: ConfigRegistry, changes: RegistryChanges
    ) -> dict[str, Any]:
        """The definition after ``changes``, checked against the stored values."""
        key = row.key
        schema = changes.schema if changes.schema is not None else row.value_schema
        default = changes.default if changes.default_set else row.default_value
        secret = row.is_secret or bool(changes.secret)
        validator = compile_schema(schema)
        validate_value(validator, default, key=key, loc=("body", "default"), secret=secret)
        if changes.schema is not None:
            await registry.check_values_against(session, key, validator, secret=secret)
        scopes = list(row.allowed_scopes)
        if changes.scopes is not None:
            scopes = registry.ordered_scopes(changes.scopes)
            await registry.check_scopes_in_use(session, key, scopes)
        return {
            "description": changes.description or row.description,
            "schema": schema,
            "default": default,
            "scopes": scopes,
            "secret": row.is_secret if changes.secret is None else changes.secret,
            "requiresApproval": (
                row.requires_approval
                if changes.requires_approval is None
                else changes.requires_approval
            ),
        }

    # --- reads ----------------------------------------------------------------------------

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
            self._check_stored(info, resolution)
        return resolution

    async def _fill(self, key: str, scope: Scope) -> Entry:
        info = await self.key_info(key)
        token = self.cache.token(key)
        # A Core connection, not a session: this is the whole cost of a cache miss.
        async with self.db.read_engine.connect() as conn:
            resolution = await resolver.resolve_query(conn, key, scope, utcnow(), info.default)
        self._check_stored(info, resolution)
        entry = Entry(resolution.value, expiry(resolution.valid_until), resolution)
        self.cache.put(key, scope, entry, token)
        return entry

    @staticmethod
    def _check_stored(info: KeyInfo, resolution: Resolution) -> None:
        if resolution.source != "default" and schema_errors(
            info.validator, resolution.value, loc=()
        ):
            raise StoredValueInvalid(
                f"the stored value of '{info.key}' (version {resolution.version}) does not "
                "satisfy the key's schema; set a new value"
            )

    async def explain(
        self, key: str, scope: Scope = GLOBAL, *, at: datetime | None = None
    ) -> list[Candidate]:
        await self.key_info(key)
        async with unit_of_work(self.db, write=False) as session:
            return await resolver.explain(session, key, scope, as_utc(at or utcnow()))

    # --- writes ---------------------------------------------------------------------------

    async def check_scope(
        self,
        session: AsyncSession,
        info: KeyInfo,
        scope: Scope,
        *,
        loc: Sequence[str | int] = ("body", "scope"),
    ) -> None:
        """422 unless the key may be set at this scope and the scope names real things."""
        level = scope.level.value
        if level not in info.scopes:
            raise ValidationFailed.field(
                list(loc),
                f"'{info.key}' cannot be set at {level} scope; allowed: {', '.join(info.scopes)}",
            )
        if scope.persona is None and scope.agent_id is None:
            return
        if self.targets is None:
            raise JarvisError(
                "this ConfigService cannot check personas and agents: build it with "
                "jarvis.wiring.config_service() to write values at their scope"
            )
        if scope.persona is not None and not await self.targets.persona_exists(
            session, scope.persona
        ):
            raise ValidationFailed.field([*loc, "persona"], f"unknown persona '{scope.persona}'")
        if scope.agent_id is not None and not await self.targets.agent_exists(
            session, scope.agent_id
        ):
            raise ValidationFailed.field([*loc, "agentId"], f"no agent with id {scope.agent_id}")

    @staticmethod
    def check_window(
        effective_from: datetime | None, effective_to: datetime | None, *, now: datetime
    ) -> tuple[datetime, datetime | None]:
        start = as_utc(effective_from) if effective_from is not None else now
        if start < now - PAST_TOLERANCE:
            raise ValidationFailed.field(
                ["body", "effectiveFrom"],
                "is in the past; configuration history cannot be rewritten, schedule from now on",
            )
        start = max(start, now)
        end = as_utc(effective_to) if effective_to is not None else None
        if end is not None and end <= start:
            raise ValidationFailed.field(
                ["body", "effectiveTo"], "must be later than effectiveFrom"
            )
        return start, end

    async def set_value(
        self,
        session: AsyncSession,
        key: str,
        value: Any,
        scope: Scope = GLOBAL,
        *,
        actor: Actor,
        effective_from: datetime | None = None,
        effective_to: datetime | None = None,
        reason: str | None = None,
    ) -> SetOutcome:
        """Store a new version (or, for keys that need approval, open a change request)."""
        # Every configuration writer takes the ledger lock first (it writes the ledger
        # anyway): one lock order everywhere, and the registry read below cannot go stale.
        await lock_ledger(session)
        info = await self.key_info(key, session)
        await self.check_scope(session, info, scope)
        validate_value(info.validator, value, key=key, secret=info.secret)
        start, end = self.check_window(effective_from, effective_to, now=utcnow())
        if info.requires_approval:
            payload = {
                "value": value,
                "scope": scope.as_json(),
                "effectiveFrom": start.isoformat() if effective_from is not None else None,
                "effectiveTo": end.isoformat() if end is not None else None,
            }
            return SetOutcome(
                request=await self._request(session, info, "set", payload, actor, reason)
            )
        row = await self.apply_set(
            session, info, value, scope, actor=actor, start=start, end=end, reason=reason
        )
        return SetOutcome(value=row)

    async def apply_set(
        self,
        session: AsyncSession,
        info: KeyInfo,
        value: Any,
        scope: Scope,
        *,
        actor: Actor,
        start: datetime,
        end: datetime | None,
        reason: str | None,
        action: str = "set",
        change_request_id: int | None = None,
        snapshot_id: int | None = None,
    ) -> ConfigValue:
        """Store ``value`` as the next version at ``scope`` (checks already done)."""
        # Configuration writers queue on the ledger lock (held to commit), so versions are
        # consecutive and none is lost.
        await lock_ledger(session)
        now = utcnow()
        previous = await self._live_at_scope(session, info.key, scope, now)
        top = await session.scalar(
            select(func.max(ConfigValue.version)).where(
                ConfigValue.config_key == info.key, ConfigValue.scope_key == scope.key
            )
        )
        row = ConfigValue(
            config_key=info.key,
            value=value,
            scope_identifiers=scope.as_json(),
            persona=scope.persona,
            agent_id=scope.agent_id,
            workflow_id=scope.workflow_id,
            scope_key=scope.key,
            scope_rank=scope.rank,
            effective_from=max(start, now),
            effective_to=end,
            version=(top or 0) + 1,
            is_active=True,
            created_by=actor.label,
            created_by_id=actor.user_id,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        old = previous.value if previous is not None else None
        await record_audit(
            session,
            actor=actor,
            action=f"config.{action}",
            entity_type="config_value",
            entity_id=row.id,
            before=_audit_value(info, previous, old),
            after=_audit_value(info, row, value, reason=reason),
        )
        # After the audit entry: its lock is held to commit, so log ids follow commit order
        # (the poll relies on that).
        self._log(
            session,
            info.key,
            action,
            actor,
            old=mask(old, info.secret),
            new=mask(value, info.secret),
            scope=scope,
            version=row.version,
            value_id=row.id,
            window=(row.effective_from, row.effective_to),
            reason=reason,
            change_request_id=change_request_id,
            snapshot_id=snapshot_id,
        )
        await session.flush()
        self._announce(session, Change(info.key, scope, row.version, action))
        return row

    async def _live_at_scope(
        self, session: AsyncSession, key: str, scope: Scope, at: datetime
    ) -> ConfigValue | None:
        return await session.scalar(
            select(ConfigValue)
            .where(
                ConfigValue.config_key == key,
                ConfigValue.scope_key == scope.key,
                resolver.live_at(at),
            )
            .order_by(ConfigValue.version.desc())
            .limit(1)
        )

    async def find_version(
        self, session: AsyncSession, key: str, scope: Scope, version: int
    ) -> ConfigValue:
        row = await session.scalar(
            select(ConfigValue).where(
                ConfigValue.config_key == key,
                ConfigValue.scope_key == scope.key,
                ConfigValue.version == version,
            )
        )
        if row is None:
            raise NotFound(f"'{key}' has no version {version} at {scope.describe()} scope")
        return row

    async def revert(
        self,
        session: AsyncSession,
        key: str,
        scope: Scope,
        version: int,
        *,
        actor: Actor,
        reason: str | None = None,
    ) -> SetOutcome:
        """A new version at ``scope`` carrying the value of ``version``."""
        await lock_ledger(session)
        info = await self.key_info(key, session)
        # The scope may have been narrowed (or the agent removed) since that version.
        await self.check_scope(session, info, scope)
        old = await self.find_version(session, key, scope, version)
        validate_value(
            info.validator, old.value, key=key, loc=("body", "version"), secret=info.secret
        )
        reason = reason or f"revert to version {version}"
        if info.requires_approval:
            payload = {"scope": scope.as_json(), "version": version, "value": old.value}
            return SetOutcome(
                request=await self._request(session, info, "revert", payload, actor, reason)
            )
        row = await self.apply_set(
            session,
            info,
            old.value,
            scope,
            actor=actor,
            start=utcnow(),
            end=None,
            reason=reason,
            action="revert",
        )
        return SetOutcome(value=row)

    async def deactivate(
        self,
        session: AsyncSession,
        key: str,
        scope: Scope,
        version: int,
        *,
        actor: Actor,
        reason: str | None = None,
    ) -> SetOutcome:
        await lock_ledger(session)
        info = await self.key_info(key, session)
        row = await self.find_version(session, key, scope, version)
        if not row.is_active:
            raise Conflict(f"version {version} of '{key}' at {scope.describe()} is not active")
        if info.requires_approval:
            payload = {"scope": scope.as_json(), "version": version}
            return SetOutcome(
                request=await self._request(session, info, "deactivate", payload, actor, reason)
            )
        return SetOutcome(
            value=await self.apply_deactivate(session, info, row, actor=actor, reason=reason)
        )

    async def apply_deactivate(
        self,
        session: AsyncSession,
        info: KeyInfo,
        row: ConfigValue,
        *,
        actor: Actor,
        reason: str | None,
        action: str = "deactivate",
        change_request_id: int | None = None,
        snapshot_id: int | None = None,
    ) -> ConfigValue:
        await lock_ledger(session)
        await session.refresh(row)
        if not row.is_active:
            raise Conflict(f"version {row.version} of '{info.key}' is already inactive")
        row.is_active = False
        row.deactivated_at = utcnow()
        await session.flush()
        scope = value_scope(row)
        await record_audit(
            session,
            actor=actor,
            action=f"config.{action}",
            entity_type="config_value",
            entity_id=row.id,
            before=_audit_value(info, row, row.value),
            after={"isActive": False, "reason": reason},
        )
        self._log(
            session,
            info.key,
            action,
            actor,
            old=mask(row.value, info.secret),
            new=None,
            scope=scope,
            version=row.version,
            value_id=row.id,
            window=(row.effective_from, row.effective_to),
            reason=reason,
            change_request_id=change_request_id,
            snapshot_id=snapshot_id,
        )
        await session.flush()
        self._announce(session, Change(info.key, scope, row.version, action))
        return row

    def _log(
        self,
        session: AsyncSession,
        key: str,
        action: str,
        actor: Actor,
        *,
        old: Any,
        new: Any,
        scope: Scope | None = None,
        version: int | None = None,
        value_id: int | None = None,
        window: tuple[datetime | None, datetime | None] = (None, None),
        reason: str | None = None,
        change_request_id: int | None = None,
        snapshot_id: int | None = None,
    ) -> None:
        session.add(
            ConfigChangeLog(
                config_key=key,
                action=action,
                scope_identifiers=scope.as_json() if scope is not None else None,
                persona=scope.persona if scope else None,
                agent_id=scope.agent_id if scope else None,
                workflow_id=scope.workflow_id if scope else None,
                old_value=old,
                new_value=new,
                version=version,
                value_id=value_id,
                effective_from=window[0],
                effective_to=window[1],
                performed_by=actor.label,
                performed_by_id=actor.user_id,
                reason=reason,
                change_request_id=change_request_id,
                snapshot_id=snapshot_id,
                created_at=utcnow(),
            )
        )

    # --- history --------------------------------------------------------------------------

    async def history(
        self,
        session: AsyncSession,
        key: str,
        *,
        scope: Scope | None,
        limit: int,
        offset: int,
    ) -> tuple[list[ConfigChangeLog], int]:
        await self.key_info(key, session)
        query = select(ConfigChangeLog).where(ConfigChangeLog.config_key == key)
        if scope is not None:
            query = query.where(
                _is(ConfigChangeLog.persona, scope.persona),
                _is(ConfigChangeLog.agent_id, scope.agent_id),
                _is(ConfigChangeLog.workflow_id, scope.workflow_id),
            )
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = await session.scalars(
            query.order_by(ConfigChangeLog.id.desc()).limit(limit).offset(offset)
        )
        return list(rows), total

    async def versions(
        self,
        session: AsyncSession,
        key: str,
        *,
        scope: Scope | None,
        limit: int,
        offset: int,
    ) -> tuple[list[ConfigValue], int]:
        await self.key_info(key, session)
        query = select(ConfigValue).where(ConfigValue.config_key == key)
        if scope is not None:
            query = query.where(ConfigValue.scope_key == scope.key)
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = await session.scalars(
            query.order_by(
                ConfigValue.scope_rank, ConfigValue.scope_key, ConfigValue.version.desc()
            )
            .limit(limit)
            .offset(offset)
        )
        return list(rows), total

    # --- approvals ------------------------------------------------------------------------

    async def _request(
        self,
        session: AsyncSession,
        info: KeyInfo,
        action: str,
        payload: dict[str, Any],
        actor: Actor,
        reason: str | None,
    ) -> ConfigChangeRequest:
        return await approvals.open_request(
            session, info.key, action, payload, actor=actor, reason=reason, secret=info.secret
        )

    async def list_requests(
        self, session: AsyncSession, *, status: str | None, limit: int, offset: int
    ) -> tuple[list[ConfigChangeRequest], int]:
        return await approvals.list_requests(session, status=status, limit=limit, offset=offset)

    async def get_request(self, session: AsyncSession, request_id: int) -> ConfigChangeRequest:
        return await approvals.get_request(session, request_id)

    async def approve(
        self, session: AsyncSession, request_id: int, *, actor: Actor, reason: str | None = None
    ) -> ConfigChangeRequest:
        """Apply a pending request; only someone other than its requester may."""
        request = await approvals.lock_pending(session, request_id)
        if actor.user_id is None:
            raise Forbidden("a change request is approved by a person: act as a signed-in admin")
        if approvals.same_person(request, actor):
            raise Forbidden("you cannot approve your own change request; ask another admin")
        info = await self.key_info(request.config_key, session)
        payload = request.payload
        applied: ConfigValue
        if request.action == "registry":
            await self.update_key(
                session,
                info.key,
                RegistryChanges.from_json(payload),
                actor=actor,
                if_match=int(payload["revision"]),
                change_request_id=request.id,
            )
            return await approvals.close_request(
                session, request, "approved", actor=actor, reason=reason, secret=info.secret
            )
        scope = Scope.from_json(payload.get("scope"))
        await self.check_scope(session, info, scope, loc=("payload", "scope"))
        if request.action == "deactivate":
            row = await self.find_version(session, info.key, scope, int(payload["version"]))
            if not row.is_active:
                raise Conflict(f"version {row.version} of '{info.key}' is no longer active")
            applied = await self.apply_deactivate(
                session,
                info,
                row,
                actor=actor,
                reason=request.reason,
                action="deactivate",
                change_request_id=request.id,
            )
        else:
            value = payload["value"]
            validate_value(
                info.validator, value, key=info.key, loc=("payload", "value"), secret=info.secret
            )
            now = utcnow()
            start = (
                datetime.fromisoformat(payload["effectiveFrom"])
                if payload.get("effectiveFrom")
                else now
            )
            end = (
                datetime.fromisoformat(payload["effectiveTo"])
                if payload.get("effectiveTo")
                else None
            )
            if end is not None and end <= max(start, now):
                raise Conflict(
                    f"change request {request_id} would end at {end.isoformat()}, which has "
                    "passed; reject it and request the change again"
                )
            applied = await self.apply_set(
                session,
                info,
                value,
                scope,
                actor=actor,
                start=start,
                end=end,
                reason=request.reason,
                action=request.action,
                change_request_id=request.id,
            )
        return await approvals.close_request(
            session,
            request,
            "approved",
            actor=actor,
            reason=reason,
            secret=info.secret,
            applied_value_id=applied.id,
        )

    async def reject(
        self, session: AsyncSession, request_id: int, *, actor: Actor, reason: str | None = None
    ) -> ConfigChangeRequest:
        request = await approvals.lock_pending(session, request_id)
        if actor.user_id is None:
            raise Forbidden("a change request is rejected by a person: act as a signed-in admin")
        if approvals.same_person(request, actor):
            raise Forbidden("you cannot reject your own change request; withdraw it instead")
        return await self._close(session, request, "rejected", actor=actor, reason=reason)

    async def withdraw(
        self, session: AsyncSession, request_id: int, *, actor: Actor, reason: str | None = None
    ) -> ConfigChangeRequest:
        request = await approvals.lock_pending(session, request_id)
        if not approvals.same_person(request, actor):
            raise Forbidden("only the requester can withdraw a change request")
        return await self._close(session, request, "withdrawn", actor=actor, reason=reason)

    async def _close(
        self,
        session: AsyncSession,
        request: ConfigChangeRequest,
        status: str,
        *,
        actor: Actor,
        reason: str | None,
    ) -> ConfigChangeRequest:
        info = await self.key_info(request.config_key, session)
        return await approvals.close_request(
            session, request, status, actor=actor, reason=reason, secret=info.secret
        )


# --- helpers ------------------------------------------------------------------------------


def _is(column: Any, wanted: Any) -> Any:
    return column.is_(None) if wanted is None else column == wanted


def _audit_value(
    info: KeyInfo, row: ConfigValue | None, value: Any, *, reason: str | None = None
) -> dict[str, Any] | None:
    if row is None:
        return None
    out: dict[str, Any] = {
        "key": info.key,
        "scope": value_scope(row).as_json(),
        "version": row.version,
        "value": mask(value, info.secret),
        "effectiveFrom": row.effective_from.isoformat(),
        "effectiveTo": row.effective_to.isoformat() if row.effective_to else None,
    }
    if reason:
        out["reason"] = reason
    return out
