"""Sign-in sessions: starting and ending them, listing and revoking them.

A session is live while it is neither revoked nor expired. Its id (the cookie) is stored
only as a keyed digest. Revoking one stores ``revoked_at`` and an audit entry
(``session.revoke``); the caller announces the revocation after the commit
(``jarvis.auth.revocation``) so every instance drops its cached principal and closes the
WebSockets opened with it. ``jarvis.auth.sessions.sweeper`` deletes old ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.auth.models import ApiToken, User, UserSession
from jarvis.core.identity import Actor, Principal
from jarvis.errors import NotFound
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.secrets import keyed_digest, new_token
from jarvis.personas.grants import persona_permissions

REVOKE_ACTION = "session.revoke"


def _live(now: datetime) -> ColumnElement[bool]:
    return and_(UserSession.revoked_at.is_(None), UserSession.expires_at > now)


# --- starting and ending ------------------------------------------------------------------


@dataclass(frozen=True)
class NewSession:
    """A session just started: its id (the cookie's value, shown only now) and expiry."""

    token: str
    expires_at: datetime
    user: User
    # The browser's previous session, ended by this sign-in (announce it).
    replaced_session_id: int | None = None


async def start_session(
    session: AsyncSession,
    user: User,
    *,
    secret_key: str,
    lifetime: timedelta,
    previous_token: str | None,
    ip_address: str | None,
    user_agent: str | None,
    via: str = "password",
) -> NewSession:
    """Sign ``user`` in with a fresh session id, revoking the one the browser had."""
    now = utcnow()
    replaced = None
    if previous_token:
        replaced = await session.scalar(
            update(UserSession)
            .where(
                UserSession.session_hash == keyed_digest(secret_key, previous_token),
                UserSession.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(UserSession.id)
        )
    token = new_token()
    expires_at = now + lifetime
    row = UserSession(
        session_hash=keyed_digest(secret_key, token),
        user_id=user.id,
        created_at=now,
        expires_at=expires_at,
        ip_address=ip_address,
        user_agent=(user_agent or "")[:512] or None,
        via=via,
    )
    session.add(row)
    user.last_login_at = now
    await session.flush()
    await record_audit(
        session,
        actor=user.actor,
        action="auth.login",
        entity_type="user_session",
        entity_id=row.id,
        after={"userId": user.id, "ipAddress": ip_address, "via": via},
    )
    return NewSession(token=token, expires_at=expires_at, user=user, replaced_session_id=replaced)


async def end_session(session: AsyncSession, token: str, *, secret_key: str) -> int | None:
    """Revoke the session behind ``token``; its id, or None when it was not live."""
    row = await session.scalar(
        select(UserSession).where(
            UserSession.session_hash == keyed_digest(secret_key, token),
            UserSession.revoked_at.is_(None),
        )
    )
    if row is None:
        return None
    row.revoked_at = utcnow()
    user = await session.get(User, row.user_id)
    await record_audit(
        session,
        actor=user.actor if user else Actor.system(),
        action="auth.logout",
        entity_type="user_session",
        entity_id=row.id,
    )
    return row.id


async def principal_from_session(session: AsyncSession, session_hash: str) -> Principal | None:
    """The caller behind a live session, by the keyed digest of its id."""
    row = (
        await session.execute(
            select(UserSession.id, UserSession.expires_at, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.session_hash == session_hash, UserSession.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    session_id, expires_at, user = row
    if as_utc(expires_at) <= utcnow() or not user.is_active:
        return None
    permissions = await persona_permissions(session, user.persona)
    return Principal(
        user.id,
        user.email,
        user.persona,
        "session",
        session_id,
        permissions,
        expires_at=as_utc(expires_at),
    )


# --- listing and revoking -----------------------------------------------------------------


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


async def revoke_user_sessions(
    session: AsyncSession, user_id: int, *, keep_session_id: int | None = None
) -> list[int]:
    """End the user's live sessions (but ``keep_session_id``) without an audit entry each
    (a password change audits itself); return their ids."""
    condition = [UserSession.user_id == user_id, UserSession.revoked_at.is_(None)]
    if keep_session_id is not None:
        condition.append(UserSession.id != keep_session_id)
    ids = list((await session.scalars(select(UserSession.id).where(*condition))).all())
    if ids:
        await session.execute(
            update(UserSession).where(UserSession.id.in_(ids)).values(revoked_at=utcnow())
        )
    return ids


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
