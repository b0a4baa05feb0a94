"""The composition root's shared parts: what every entry point (the app, the CLI, workers,
the demo, benchmarks and tests) builds the same way.

Lower domains declare the protocols they need from higher ones (``config.ports``); this
module passes the implementations in. Nothing but entry points imports it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.agents.service import agent_exists
from jarvis.config.service import ConfigService
from jarvis.db.engine import Database
from jarvis.personas.service import persona_exists


class DomainScopeTargets:
    """``config.ports.ScopeTargets`` through the personas and agents services."""

    async def persona_exists(self, session: AsyncSession, key: str) -> bool:
        return await persona_exists(session, key)

    async def agent_exists(self, session: AsyncSession, agent_id: int) -> bool:
        return await agent_exists(session, agent_id)


SCOPE_TARGETS = DomainScopeTargets()


def config_service(db: Database, **options: Any) -> ConfigService:
    """A ConfigService that can check the personas and agents a scope names."""
    return ConfigService(db, targets=SCOPE_TARGETS, **options)
