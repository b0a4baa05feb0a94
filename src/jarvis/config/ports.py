"""What the ConfigService needs from domains ranked above it, as protocols.

A value's scope names a persona or an agent; config ranks below both (they read their
settings from it), so it asks through ``ScopeTargets`` whether they exist and the
composition root (``jarvis.wiring``) passes the implementation in.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class ScopeTargets(Protocol):
    """Whether the persona or agent a scope names exists."""

    async def persona_exists(self, session: AsyncSession, key: str) -> bool: ...

    async def agent_exists(self, session: AsyncSession, agent_id: int) -> bool: ...
