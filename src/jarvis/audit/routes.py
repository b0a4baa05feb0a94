"""``GET /api/audit``: the audit ledger, newest first, filtered and paged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from jarvis.audit.queries import AuditFilter, audit_page
from jarvis.core.guards import AuditReader
from jarvis.db.session import DbSession
from jarvis.kit.schema import MAX_PAGE_SIZE, ApiModel, Page

router = APIRouter(prefix="/api", tags=["audit"])


class AuditEntryOut(ApiModel):
    """One ledger entry (``entryHash`` chains it to the entry before)."""

    id: int
    created_at: datetime
    actor: str
    actor_id: int | None
    action: str
    entity_type: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    entry_hash: str


@router.get("/audit", response_model=Page[AuditEntryOut], summary="The audit ledger")
async def audit_entries(
    principal: AuditReader,
    session: DbSession,
    action: Annotated[
        str | None,
        Query(max_length=100, description="An action, or a prefix ending in '*' ('auth.*')"),
    ] = None,
    actor: Annotated[str | None, Query(max_length=320, description="The actor's e-mail")] = None,
    actor_id: Annotated[int | None, Query(alias="actorId", ge=0, le=2**31 - 1)] = None,
    entity_type: Annotated[str | None, Query(alias="entityType", max_length=100)] = None,
    entity_id: Annotated[str | None, Query(alias="entityId", max_length=100)] = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="Before this time")] = None,
    after_id: Annotated[
        int | None, Query(alias="afterId", ge=0, le=2**63 - 1, description="Newer than this id")
    ] = None,
    before_id: Annotated[
        int | None, Query(alias="beforeId", ge=0, le=2**63 - 1, description="Older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page[AuditEntryOut]:
    flt = AuditFilter(
        action=action,
        actor=actor,
        actor_id=actor_id,
        entity_type=entity_type,
        entity_id=entity_id,
        since=since,
        until=until,
        after_id=after_id,
        before_id=before_id,
    )
    rows, total = await audit_page(session, flt, limit=limit, offset=offset)
    return Page[AuditEntryOut](
        items=[AuditEntryOut.model_validate(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )
