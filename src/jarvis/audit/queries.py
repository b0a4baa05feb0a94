"""Reading the audit ledger: filtered pages of entries, newest first.

Filters combine (all must hold): ``action`` exactly, or every action under a prefix when
it ends in ``*`` (``auth.*``); the actor by e-mail or by user id; the entity by type and
id; a time window (``since`` inclusive, ``until`` exclusive); and an id window
(``after_id`` / ``before_id``, both exclusive) for cursor paging: take the last id of a
page as the next request's ``before_id``, or poll for what is new with ``after_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.models import AuditTrail
from jarvis.errors import ValidationFailed

WILDCARD = "*"


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to read (None: no condition)."""

    action: str | None = None
    actor: str | None = None
    actor_id: int | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int | None = None
    before_id: int | None = None


def _action_condition(action: str) -> ColumnElement[bool]:
    if WILDCARD not in action:
        return AuditTrail.action == action
    prefix = action[:-1]
    if not action.endswith(WILDCARD) or WILDCARD in prefix or not prefix:
        raise ValidationFailed.field(
            ["query", "action"],
            "an action, or a prefix ending in '*' (e.g. 'auth.*'); '*' may appear only last",
        )
    return AuditTrail.action.startswith(prefix, autoescape=True)


def conditions(flt: AuditFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``flt``."""
    where: list[ColumnElement[bool]] = []
    if flt.action:
        where.append(_action_condition(flt.action))
    if flt.actor:
        where.append(AuditTrail.actor == flt.actor.strip().lower())
    if flt.actor_id is not None:
        where.append(AuditTrail.actor_id == flt.actor_id)
    if flt.entity_type:
        where.append(AuditTrail.entity_type == flt.entity_type)
    if flt.entity_id is not None:
        where.append(AuditTrail.entity_id == flt.entity_id)
    if flt.since is not None:
        where.append(AuditTrail.created_at >= flt.since)
    if flt.until is not None:
        where.append(AuditTrail.created_at < flt.until)
    if flt.after_id is not None:
        where.append(AuditTrail.id > flt.after_id)
    if flt.before_id is not None:
        where.append(AuditTrail.id < flt.before_id)
    return where


async def audit_page(
    session: AsyncSession, flt: AuditFilter, *, limit: int, offset: int
) -> tuple[Sequence[AuditTrail], int]:
    """Entries matching ``flt``, newest first (by id: the chain's order), one page, and
    how many match in all."""
    where = conditions(flt)
    total = await session.scalar(select(func.count()).select_from(AuditTrail).where(*where))
    rows = await session.scalars(
        select(AuditTrail).where(*where).order_by(AuditTrail.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), total or 0


async def first_actor(
    session: AsyncSession, *, action: str, entity_type: str, entity_id: str
) -> str | None:
    """Who did ``action`` to the entity first (None when the ledger has no such entry)."""
    actor: str | None = await session.scalar(
        select(AuditTrail.actor)
        .where(
            AuditTrail.entity_type == entity_type,
            AuditTrail.entity_id == entity_id,
            AuditTrail.action == action,
        )
        .order_by(AuditTrail.id)
        .limit(1)
    )
    return actor
