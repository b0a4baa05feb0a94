"""Writing values: set (optionally scheduled), revert and deactivate.

Writes run inside the caller's transaction: each creates a new version (nothing is
rewritten), writes the audit ledger and the change log, and is announced once the
transaction commits (``ConfigReads.announce``). For a key that needs approval, set, revert
and deactivate open a change request instead (``jarvis.config.approvals``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import lock_ledger, record_audit
from jarvis.config import approvals, resolver
from jarvis.config.changes import Change, log_change
from jarvis.config.models import ConfigChangeRequest, ConfigValue
from jarvis.config.ports import ScopeTargets
from jarvis.config.reads import ConfigReads
from jarvis.config.registry import KeyInfo, value_scope
from jarvis.config.validation import mask, validate_value
from jarvis.core.identity import Actor
from jarvis.core.scope import GLOBAL, Scope
from jarvis.errors import Conflict, JarvisError, NotFound, ValidationFailed
from jarvis.kit.clock import as_utc, utcnow

# A schedule given a moment ago (clock skew, a slow client) still counts as "now".
PAST_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class SetOutcome:
    """A write either stored a value or, for keys that need approval, opened a request."""

    value: ConfigValue | None = None
    request: ConfigChangeRequest | None = None


class ValueWrites:
    """Writes of values. ``targets`` says whether the persona or agent a
    scope names exists (None: writes name no persona or agent, as in a process that only
    reads configuration)."""

    def __init__(self, reads: ConfigReads, targets: ScopeTargets | None = None) -> None:
        self.reads = reads
        self.targets = targets

    # --- checks ---------------------------------------------------------------------------

    async def check_scope(
        self,
        session: AsyncSession,
        info: KeyInfo,
        scope: Scope,
        *,
        loc: Sequence[str | int] = ("scope",),
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
        """The effective window from now on; 422 for a start in the past or an empty one."""
        start = as_utc(effective_from) if effective_from is not None else now
        if start < now - PAST_TOLERANCE:
            raise ValidationFailed.field(
                ["effectiveFrom"],
                "is in the past; configuration history cannot be rewritten, schedule from now on",
            )
        start = max(start, now)
        end = as_utc(effective_to) if effective_to is not None else None
        if end is not None and end <= start:
            raise ValidationFailed.field(["effectiveTo"], "must be later than effectiveFrom")
        return start, end

    # --- set, revert, deactivate ----------------------------------------------------------

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
        info = await self.reads.key_info(key, session)
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
            return SetOutcome(request=await _request(session, info, "set", payload, actor, reason))
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
        previous = await _live_at_scope(session, info.key, scope, now)
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
        return await self._logged(
            session,
            info,
            row,
            action,
            actor,
            old=old,
            new=value,
            scope=scope,
            reason=reason,
            change_request_id=change_request_id,
            snapshot_id=snapshot_id,
        )

    async def find_version(
        self, session: AsyncSession, key: str, scope: Scope, version: int
    ) -> ConfigValue:
        """Version ``version`` of ``key`` at exactly ``scope``; 404 when there is none."""
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
        info = await self.reads.key_info(key, session)
        # The scope may have been narrowed (or the agent removed) since that version.
        await self.check_scope(session, info, scope)
        old = await self.find_version(session, key, scope, version)
        validate_value(info.validator, old.value, key=key, loc=("version",), secret=info.secret)
        reason = reason or f"revert to version {version}"
        if info.requires_approval:
            payload = {"scope": scope.as_json(), "version": version, "value": old.value}
            return SetOutcome(
                request=await _request(session, info, "revert", payload, actor, reason)
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
        """Deactivate one version (or, for keys that need approval, open a request)."""
        await lock_ledger(session)
        info = await self.reads.key_info(key, session)
        row = await self.find_version(session, key, scope, version)
        if not row.is_active:
            raise Conflict(f"version {version} of '{key}' at {scope.describe()} is not active")
        if info.requires_approval:
            payload = {"scope": scope.as_json(), "version": version}
            return SetOutcome(
                request=await _request(session, info, "deactivate", payload, actor, reason)
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
        """Deactivate ``row`` (checks already done); 409 when it already is."""
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
        return await self._logged(
            session,
            info,
            row,
            action,
            actor,
            old=row.value,
            new=None,
            scope=scope,
            reason=reason,
            change_request_id=change_request_id,
            snapshot_id=snapshot_id,
        )

    async def _logged(
        self,
        session: AsyncSession,
        info: KeyInfo,
        row: ConfigValue,
        action: str,
        actor: Actor,
        *,
        old: Any,
        new: Any,
        scope: Scope,
        reason: str | None,
        change_request_id: int | None,
        snapshot_id: int | None,
    ) -> ConfigValue:
        """Log a change of ``row`` (secrets masked) and announce it once the session
        commits; ``row``, for the caller to return."""
        log_change(
            session,
            info.key,
            action,
            actor,
            old=mask(old, info.secret),
            new=mask(new, info.secret),
            scope=scope,
            version=row.version,
            value_id=row.id,
            window=(row.effective_from, row.effective_to),
            reason=reason,
            change_request_id=change_request_id,
            snapshot_id=snapshot_id,
        )
        await session.flush()
        self.reads.announce(session, Change(info.key, scope, row.version, action))
        return row


# --- helpers ------------------------------------------------------------------------------


async def _request(
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


async def _live_at_scope(
    session: AsyncSession, key: str, scope: Scope, at: datetime
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
