"""Deleting ended sessions: sessions that ended more than a week ago (and sign-ins at an
identity provider that were never finished) are deleted by ``SessionSweeper``."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.models import OAuthLoginState, UserSession
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow

log = structlog.get_logger(__name__)

# Ended sessions are kept this long (the owner and admins can still see them in the
# ledger's entries, which name the session id) before the sweeper deletes them.
DEFAULT_RETENTION = timedelta(days=7)
DEFAULT_SWEEP_SECONDS = 3600.0


async def delete_expired_sessions(
    session: AsyncSession, *, older_than: timedelta = DEFAULT_RETENTION
) -> int:
    """Delete sessions that expired or were revoked before ``now - older_than``, and
    identity-provider sign-ins that expired unfinished; return how many rows went."""
    now = utcnow()
    cutoff = now - older_than
    sessions = await session.execute(
        delete(UserSession).where(
            or_(UserSession.expires_at < cutoff, UserSession.revoked_at < cutoff)
        )
    )
    states = await session.execute(delete(OAuthLoginState).where(OAuthLoginState.expires_at < now))
    return _count(sessions) + _count(states)


def _count(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


class SessionSweeper:
    """Deletes ended sessions every ``interval_seconds`` (first right after ``start``).

    Each sweep is its own unit of work; a failed sweep is logged and tried again at the
    next interval. Every instance may run one: the deletes are idempotent.
    """

    def __init__(
        self,
        db: Database,
        *,
        interval_seconds: float = DEFAULT_SWEEP_SECONDS,
        older_than: timedelta = DEFAULT_RETENTION,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.db = db
        self.interval_seconds = interval_seconds
        self.older_than = older_than
        self.sweeps = 0
        # Set after every sweep (tests and health checks wait on it).
        self.swept = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="session-sweeper")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> int:
        """One sweep: delete what has ended; return how many rows went."""
        async with unit_of_work(self.db) as session:
            deleted = await delete_expired_sessions(session, older_than=self.older_than)
        self.sweeps += 1
        self.swept.set()
        if deleted:
            log.info("auth.sessions_swept", deleted=deleted)
        return deleted

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; the next sweep retries
                log.warning("auth.session_sweep_failed", error=repr(exc))
            await asyncio.sleep(self.interval_seconds)
