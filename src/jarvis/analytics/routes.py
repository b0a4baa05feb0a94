"""The activity feed for dashboards: ``GET /api/activities``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from jarvis.analytics.service import list_activities
from jarvis.core.guards import Authenticated
from jarvis.db.session import DbSession
from jarvis.kit.schema import MAX_PAGE_SIZE, ApiModel, Page

router = APIRouter(prefix="/api", tags=["activities"])


class ActivityOut(ApiModel):
    id: int
    type: str
    title: str
    persona: str | None
    actor: str | None
    execution_id: str | None
    agent_id: int | None
    detail: dict[str, Any] | None
    created_at: datetime


@router.get(
    "/activities", response_model=Page[ActivityOut], summary="Recent activity, newest first"
)
async def activities(
    principal: Authenticated,
    session: DbSession,
    persona: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page[ActivityOut]:
    """Admins see every persona's feed (or one, with ``persona``); others their own."""
    shown = persona if principal.is_admin else principal.persona
    rows, total = await list_activities(session, persona=shown, limit=limit, offset=offset)
    return Page[ActivityOut](
        items=[ActivityOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )
