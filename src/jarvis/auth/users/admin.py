"""User administration: finding users, changing their persona or active flag, unlocking.

Moving a user to another persona or deactivating them changes what they may do, so all
their sessions are revoked (they sign in again and get a new session id: no session
carries over a privilege change). Their tokens stay, but the caller announces the change
(``user_ids``) after the commit, so every instance re-reads the token's principal with
the new persona, and an inactive user's tokens are refused. The last active admin can be
neither demoted nor deactivated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.auth.models import User
from jarvis.auth.sessions.service import revoke_sessions
from jarvis.core.identity import Actor
from jarvis.core.permissions import ADMIN_PERSONA_KEY, PERMISSIONS
from jarvis.errors import Conflict, NotFound
from jarvis.personas.grants import permission_table
from jarvis.personas.service import require_persona

UPDATE_ACTION = "user.update"
UNLOCK_ACTION = "user.unlock"


async def list_users(
    session: AsyncSession,
    *,
    persona: str | None = None,
    q: str | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[User], int]:
    """Users ordered by e-mail, filtered by persona and by ``q`` (in e-mail or name,
    ignoring case), one page, and how many match."""
    query = select(User)
    if persona:
        query = query.where(User.persona == persona)
    if q:
        needle = q.strip().lower()
        query = query.where(
            or_(
                *(
                    func.lower(func.coalesce(column, "")).contains(needle, autoescape=True)
                    for column in (User.email, User.first_name, User.last_name)
                )
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(User.email).limit(limit).offset(offset))
    return rows.all(), total or 0


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


@dataclass
class UserChange:
    """What ``update_user`` changed (empty ``before``: nothing)."""

    user: User
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    revoked_sessions: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.after)


async def _ensure_another_admin(session: AsyncSession, user: User) -> None:
    """409 unless an active admin other than ``user`` remains."""
    # Lock every active admin row in one order: two admins demoting each other at once
    # queue here, and the second sees the first's change (on SQLite writers queue anyway).
    admins = await session.scalars(
        select(User.id)
        .where(User.persona == ADMIN_PERSONA_KEY, User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    if not [admin_id for admin_id in admins.all() if admin_id != user.id]:
        raise Conflict(
            f"{user.email} is the last active admin; make another user an active admin "
            "first (an installation without one cannot be administered)"
        )


async def update_user(
    session: AsyncSession,
    user_id: int,
    *,
    persona: str | None,
    is_active: bool | None,
    actor: Actor,
) -> UserChange:
    """Change a user's persona and/or active flag. Audited as ``user.update`` with the
    fields' before and after; a persona change or deactivation revokes their sessions."""
    user = await get_user(session, user_id)
    change = UserChange(user)
    if persona is not None and persona != user.persona:
        await require_persona(session, persona, loc=("persona",))
        change.before["persona"], change.after["persona"] = user.persona, persona
    if is_active is not None and is_active != user.is_active:
        change.before["isActive"], change.after["isActive"] = user.is_active, is_active
    if not change.changed:
        return change
    was_admin = user.persona == ADMIN_PERSONA_KEY and user.is_active
    stays_admin = (
        change.after.get("persona", user.persona) == ADMIN_PERSONA_KEY
        and change.after.get("isActive", user.is_active) is True
    )
    if was_admin and not stays_admin:
        await _ensure_another_admin(session, user)
    if persona is not None:
        user.persona = persona
    if is_active is not None:
        user.is_active = is_active
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action=UPDATE_ACTION,
        entity_type="user",
        entity_id=user.id,
        before=change.before,
        after=change.after,
    )
    if "persona" in change.after or change.after.get("isActive") is False:
        change.revoked_sessions = await revoke_sessions(
            session, user_id=user.id, actor=actor, reason="privilege change"
        )
    return change


async def unlock_user(session: AsyncSession, user_id: int, *, actor: Actor) -> User:
    """Clear the user's failed sign-in count and lockout. Audited as ``user.unlock``."""
    user = await get_user(session, user_id)
    before = {
        "failedLoginCount": user.failed_login_count,
        "lockedUntil": user.locked_until.isoformat() if user.locked_until else None,
    }
    user.failed_login_count = 0
    user.locked_until = None
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action=UNLOCK_ACTION,
        entity_type="user",
        entity_id=user.id,
        before=before,
        after={"failedLoginCount": 0, "lockedUntil": None},
    )
    return user


async def permission_catalogue(
    session: AsyncSession,
) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Every permission with its description, and each persona's permissions."""
    return list(PERMISSIONS.items()), await permission_table(session)
