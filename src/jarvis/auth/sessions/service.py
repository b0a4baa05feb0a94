"""Sign-in sessions: listing and revoking them, sweeping out old ones.

A session is live while it is neither revoked nor expired. Revoking one stores
``revoked_at`` and an audit entry (``session.revoke``); the caller announces the
revocation after the commit (``jarvis.auth.revocation``) so every instance drops its
cached principal and closes the WebSockets opened with it. Sessions that ended more than
a week ago (and sign-ins at an identity provider that were never finished) are deleted
by ``SessionSweeper``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import ColumnElement, CursorResult, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.auth.models import ApiToken, OAuthLoginState, User, UserSession
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import NotFound
from jarvis.kit.clock import utcnow

log = structlog.get_logger(__name__)

REVOKE_ACTION = "session.revoke"
# Ended sessions are kept this long (the owner and admins can still see them in the
# ledger's entries, which name the session id) before the sweeper deletes them.
DEFAULT_RETENTION = timedelta(days=7)
DEFAULT_SWEEP_SECONDS = 3600.0


def _live(now: datetime) -> ColumnElement[bool]:
    return and_(UserSession.revoked_at.is_(None), UserSession.expires_at > now)


async def list_sessions(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> tuple[Sequence[UserSession], int]:
    """The user's live sessions, newest first, one page, and how many there are."""
    where = and_(UserSession.user_id == user_id, _live(utcnow()))
    total = await session.scalar(select(func.count()).select_from(UserSession).where(where))
    rows = await session.scalars(
        select(UserSession)
        .where(where)
        .order_by(UserSession.created_at.desc(), UserSession.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total or 0


async def _audit_revocations(
    session: AsyncSession,
    rows: Iterable[UserSession],
    *,
    actor: Actor,
    reason: str,
) -> None:
    for row in rows:
        await record_audit(
            session,
            actor=actor,
            action=REVOKE_ACTION,
            entity_type="user_session",
            entity_id=row.id,
            after={"userId": row.user_id, "sessionId": row.id, "reason": reason},
        )


async def revoke_session(
    session: AsyncSession, *, user_id: int, session_id: int, actor: Actor, reason: str
) -> UserSession:
    """Revoke one of ``user_id``'s live sessions; 404 when they have no such session
    (whether it is someone else's, ended, or unknown: nothing is revealed)."""
    row = await session.scalar(
        select(UserSession).where(
            UserSession.id == session_id, UserSession.user_id == user_id, _live(utcnow())
        )
    )
    if row is None:
        raise NotFound(f"no live session with id {session_id}")
    row.revoked_at = utcnow()
    await session.flush()
    await _audit_revocations(session, [row], actor=actor, reason=reason)
    return row


async def revoke_sessions(
    session: AsyncSession,
    *,
    user_id: int,
    actor: Actor,
    reason: str,
    keep: int | None = None,
) -> list[int]:
    """Revoke every live session of ``user_id`` except ``keep``; return the revoked ids."""
    now = utcnow()
    query = select(UserSession).where(UserSession.user_id == user_id, _live(now))
    if keep is not None:
        query = query.where(UserSession.id != keep)
    rows = (await session.scalars(query.order_by(UserSession.id))).all()
    for row in rows:
        row.revoked_at = now
    await session.flush()
    await _audit_revocations(session, rows, actor=actor, reason=reason)
    return [row.id for row in rows]


async def live_credentials(
    session: AsyncSession, *, session_ids: Iterable[int], token_ids: Iterable[int]
) -> tuple[set[int], set[int]]:
    """Which of these sessions and tokens still authenticate (live, and their user active)."""
    now = utcnow()
    live_sessions: set[int] = set()
    live_tokens: set[int] = set()
    for chunk in _chunks(session_ids):
        rows = await session.scalars(
            select(UserSession.id)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.id.in_(chunk), _live(now), User.is_active.is_(True))
        )
        live_sessions.update(rows.all())
    for chunk in _chunks(token_ids):
        rows = await session.scalars(
            select(ApiToken.id)
            .join(User, User.id == ApiToken.user_id)
            .where(
                ApiToken.id.in_(chunk),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                User.is_active.is_(True),
            )
        )
        live_tokens.update(rows.all())
    return live_sessions, live_tokens


# Ids per query: well under every backend's limit on bound parameters.
_CHUNK = 500


def _chunks(ids: Iterable[int]) -> list[list[int]]:
    wanted = sorted(set(ids))
    return [wanted[i : i + _CHUNK] for i in range(0, len(wanted), _CHUNK)]


# --- cleanup ------------------------------------------------------------------------------


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
