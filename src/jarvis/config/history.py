"""What was stored and when: a key's change log and every stored version of it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.config.models import ConfigChangeLog, ConfigValue
from jarvis.config.reads import ConfigReads
from jarvis.core.scope import Scope


class ValueHistory:
    """Reads of the change log and of the stored versions (uncached: every row counts)."""

    def __init__(self, reads: ConfigReads) -> None:
        self.reads = reads

    async def history(
        self,
        session: AsyncSession,
        key: str,
        *,
        scope: Scope | None,
        limit: int,
        offset: int,
    ) -> tuple[list[ConfigChangeLog], int]:
        """A key's change log, newest first (only ``scope``'s entries when given)."""
        await self.reads.key_info(key, session)
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
        """Every stored version of a key, by scope then newest first."""
        await self.reads.key_info(key, session)
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


def _is(column: Any, wanted: Any) -> Any:
    return column.is_(None) if wanted is None else column == wanted
