"""Change requests (four eyes): open, list, lock a pending one, decide, and how they show.

A writer opens a request (``open_request``) where a key needs approval. ``Approvals``
decides: approving applies the request as the same write as a direct change
(``ValueWrites.apply_set`` / ``apply_deactivate``, ``KeyRegistry.update_key``), made by the
approver; rejecting and withdrawing close it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import lock_ledger, record_audit
from jarvis.config.models import ConfigChangeRequest, ConfigValue
from jarvis.config.registry import RegistryChanges
from jarvis.config.validation import mask, validate_value
from jarvis.core.identity import Actor
from jarvis.core.scope import Scope
from jarvis.errors import Conflict, Forbidden, NotFound
from jarvis.kit.clock import utcnow

if TYPE_CHECKING:  # the writers open requests through this module's functions
    from jarvis.config.keys import KeyRegistry
    from jarvis.config.reads import ConfigReads
    from jarvis.config.writes import ValueWrites


async def open_request(
    session: AsyncSession,
    key: str,
    action: str,
    payload: dict[str, Any],
    *,
    actor: Actor,
    reason: str | None,
    secret: bool,
) -> ConfigChangeRequest:
    """A pending request for ``action`` on ``key``, audited."""
    request = ConfigChangeRequest(
        config_key=key,
        action=action,
        payload=payload,
        status="pending",
        reason=reason,
        requested_by=actor.label,
        requested_by_id=actor.user_id,
        created_at=utcnow(),
    )
    session.add(request)
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="config.request.create",
        entity_type="config_change_request",
        entity_id=request.id,
        after=request_json(request, secret=secret),
    )
    return request


async def list_requests(
    session: AsyncSession,
    *,
    status: str | None,
    limit: int,
    offset: int,
    key: str | None = None,
) -> tuple[list[ConfigChangeRequest], int]:
    """Change requests, newest first; only ``status`` and only ``key`` when given."""
    query = select(ConfigChangeRequest)
    if status:
        query = query.where(ConfigChangeRequest.status == status)
    if key is not None:
        query = query.where(ConfigChangeRequest.config_key == key)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(ConfigChangeRequest.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def get_request(session: AsyncSession, request_id: int) -> ConfigChangeRequest:
    request = await session.get(ConfigChangeRequest, request_id)
    if request is None:
        raise NotFound(f"no change request {request_id}")
    return request


async def lock_pending(session: AsyncSession, request_id: int) -> ConfigChangeRequest:
    """The pending request, locked for a decision; 404 or 409 otherwise."""
    await lock_ledger(session)
    request = await session.scalar(
        select(ConfigChangeRequest).where(ConfigChangeRequest.id == request_id).with_for_update()
    )
    if request is None:
        raise NotFound(f"no change request {request_id}")
    if request.status != "pending":
        raise Conflict(f"change request {request_id} is already {request.status}")
    return request


async def close_request(
    session: AsyncSession,
    request: ConfigChangeRequest,
    status: str,
    *,
    actor: Actor,
    reason: str | None,
    secret: bool,
    applied_value_id: int | None = None,
) -> ConfigChangeRequest:
    """Record the decision (approved, rejected, withdrawn) and audit it."""
    request.status = status
    request.decided_by = actor.label
    request.decided_by_id = actor.user_id
    request.decided_at = utcnow()
    request.decision_reason = reason
    request.applied_value_id = applied_value_id
    await session.flush()
    verb = {"approved": "approve", "rejected": "reject", "withdrawn": "withdraw"}[status]
    await record_audit(
        session,
        actor=actor,
        action=f"config.request.{verb}",
        entity_type="config_change_request",
        entity_id=request.id,
        after=request_json(request, secret=secret),
    )
    return request


def same_person(request: ConfigChangeRequest, actor: Actor) -> bool:
    if request.requested_by_id is not None or actor.user_id is not None:
        return request.requested_by_id == actor.user_id
    return request.requested_by == actor.label


def masked_payload(payload: dict[str, Any], *, secret: bool) -> dict[str, Any]:
    """A change request's payload as shown: the value (or a proposed default) masked."""
    out = dict(payload)
    for name in ("value", "default"):
        if name in out:
            out[name] = mask(out[name], secret)
    return out


def request_json(request: ConfigChangeRequest, *, secret: bool) -> dict[str, Any]:
    payload = masked_payload(request.payload, secret=secret)
    return {
        "id": request.id,
        "key": request.config_key,
        "action": request.action,
        "payload": payload,
        "status": request.status,
        "reason": request.reason,
        "requestedBy": request.requested_by,
        "decidedBy": request.decided_by,
        "decisionReason": request.decision_reason,
        "appliedValueId": request.applied_value_id,
    }


class Approvals:
    """Deciding change requests: approve (and apply), reject, withdraw."""

    def __init__(self, reads: ConfigReads, writes: ValueWrites, keys: KeyRegistry) -> None:
        self.reads = reads
        self.writes = writes
        self.keys = keys

    async def list_requests(
        self, session: AsyncSession, *, status: str | None, limit: int, offset: int
    ) -> tuple[list[ConfigChangeRequest], int]:
        """Change requests, newest first; only ``status`` when given."""
        return await list_requests(session, status=status, limit=limit, offset=offset)

    async def get_request(self, session: AsyncSession, request_id: int) -> ConfigChangeRequest:
        """One change request; 404 when there is none."""
        return await get_request(session, request_id)

    async def approve(
        self, session: AsyncSession, request_id: int, *, actor: Actor, reason: str | None = None
    ) -> ConfigChangeRequest:
        """Apply a pending request; only someone other than its requester may."""
        request = await lock_pending(session, request_id)
        if actor.user_id is None:
            raise Forbidden("a change request is approved by a person: act as a signed-in admin")
        if same_person(request, actor):
            raise Forbidden("you cannot approve your own change request; ask another admin")
        info = await self.reads.key_info(request.config_key, session)
        payload = request.payload
        if request.action == "registry":
            await self.keys.update_key(
                session,
                info.key,
                RegistryChanges.from_json(payload),
                actor=actor,
                if_match=int(payload["revision"]),
                change_request_id=request.id,
            )
            return await close_request(
                session, request, "approved", actor=actor, reason=reason, secret=info.secret
            )
        scope = Scope.from_json(payload.get("scope"))
        await self.writes.check_scope(session, info, scope, loc=("payload", "scope"))
        applied: ConfigValue
        if request.action == "deactivate":
            row = await self.writes.find_version(session, info.key, scope, int(payload["version"]))
            if not row.is_active:
                raise Conflict(f"version {row.version} of '{info.key}' is no longer active")
            applied = await self.writes.apply_deactivate(
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
            start = _instant(payload.get("effectiveFrom")) or now
            end = _instant(payload.get("effectiveTo"))
            if end is not None and end <= max(start, now):
                raise Conflict(
                    f"change request {request_id} would end at {end.isoformat()}, which has "
                    "passed; reject it and request the change again"
                )
            applied = await self.writes.apply_set(
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
        return await close_request(
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
        """Close a pending request unapplied; only someone other than its requester may."""
        request = await lock_pending(session, request_id)
        if actor.user_id is None:
            raise Forbidden("a change request is rejected by a person: act as a signed-in admin")
        if same_person(request, actor):
            raise Forbidden("you cannot reject your own change request; withdraw it instead")
        return await self._close(session, request, "rejected", actor=actor, reason=reason)

    async def withdraw(
        self, session: AsyncSession, request_id: int, *, actor: Actor, reason: str | None = None
    ) -> ConfigChangeRequest:
        """The requester takes a pending request back."""
        request = await lock_pending(session, request_id)
        if not same_person(request, actor):
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
        info = await self.reads.key_info(request.config_key, session)
        return await close_request(
            session, request, status, actor=actor, reason=reason, secret=info.secret
        )


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
