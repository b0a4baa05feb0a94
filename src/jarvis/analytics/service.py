"""The activity feed: record notable events, page through them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.analytics.models import Activity
from jarvis.kit.clock import utcnow

activities_table = cast(Table, Activity.__table__)


def add_activity(
    connection: Connection,
    *,
    type: str,  # noqa: A002 - the column's name
    title: str,
    persona: str | None = None,
    user_id: int | None = None,
    actor: str | None = None,
    execution_id: str | None = None,
    agent_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the feed on a synchronous connection (the engine's write batches)."""
    connection.execute(
        insert(activities_table),
        {
            "type": type,
            "title": title[:300],
            "persona": persona,
            "user_id": user_id,
            "actor": actor,
            "execution_id": execution_id,
            "agent_id": agent_id,
            "detail": detail,
            "created_at": utcnow(),
        },
    )


async def record_activity(session: AsyncSession, **entry: Any) -> None:
    """Add one entry to the feed inside the session's transaction (``add_activity``'s
    arguments)."""
    connection = await session.connection()
    await connection.run_sync(lambda sync: add_activity(sync, **entry))


async def list_activities(
    session: AsyncSession, *, persona: str | None, limit: int, offset: int
) -> tuple[Sequence[Activity], int]:
    """Newest first; only ``persona``'s entries when given."""
    conditions = [] if persona is None else [Activity.persona == persona]
    total = await session.scalar(select(func.count()).select_from(Activity).where(*conditions))
    rows = await session.scalars(
        select(Activity)
        .where(*conditions)
        .order_by(Activity.created_at.desc(), Activity.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total or 0
