"""Change requests (four eyes): open, list, lock a pending one, close, and how they show.

Applying an approved request is the ConfigService's job (``ConfigService.approve``): it
is the same write as a direct change, made by the approver.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import lock_ledger, record_audit
from jarvis.config.models import ConfigChangeRequest
from jarvis.config.validation import mask
from jarvis.core.identity import Actor
from jarvis.errors import Conflict, NotFound
from jarvis.kit.clock import utcnow


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
