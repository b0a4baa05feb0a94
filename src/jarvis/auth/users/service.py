"""Accounts: finding and creating users, setting and changing passwords.

Ending a user's sessions when their password changes is the sessions service's job
(``jarvis.auth.sessions.service``); the caller announces the ended ids after the commit.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from jarvis.audit.service import record_audit
from jarvis.auth.models import User, UserPreference, UserProfile
from jarvis.auth.sessions.service import revoke_user_sessions
from jarvis.auth.users.passwords import (
    MIN_PASSWORD_LENGTH,
    check_password_policy,
    hash_password,
    password_problems,
    verify_password,
)
from jarvis.core.identity import Actor
from jarvis.errors import Conflict, NotFound, ValidationFailed
from jarvis.kit.clock import utcnow
from jarvis.personas.service import require_persona


def user_actor(user: User) -> Actor:
    """Who ``user`` is in the audit ledger."""
    return user.actor


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this e-mail (compared trimmed and lower-case), or None."""
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def get_user_with_profile(session: AsyncSession, user_id: int) -> User:
    """The user with their profile loaded; 404 when there is none with that id."""
    user = await session.scalar(
        select(User).where(User.id == user_id).options(selectinload(User.profile))
    )
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    persona: str,
    password: str | None,
    actor: Actor,
    first_name: str | None = None,
    last_name: str | None = None,
    job_title: str | None = None,
    department: str | None = None,
    password_min_length: int = MIN_PASSWORD_LENGTH,
) -> User:
    """Create a user with profile and preferences; 409 if the e-mail is taken."""
    email = email.strip().lower()
    if "@" not in email:
        raise ValidationFailed.field(["email"], "must be an e-mail address")
    await require_persona(session, persona, loc=("persona",))
    if await get_user_by_email(session, email) is not None:
        raise Conflict(f"a user with e-mail {email} already exists")
    if password is not None:
        check_password_policy(password, email=email, min_length=password_min_length)
    user = User(
        email=email,
        persona=persona,
        password_hash=hash_password(password) if password is not None else None,
        first_name=first_name,
        last_name=last_name,
    )
    session.add(user)
    await session.flush()
    display = " ".join(p for p in (first_name, last_name) if p) or None
    session.add(
        UserProfile(
            user_id=user.id, display_name=display, job_title=job_title, department=department
        )
    )
    session.add(UserPreference(user_id=user.id))
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=user.id,
        after={"email": email, "persona": persona},
    )
    return user


async def set_password(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    actor: Actor,
    password_min_length: int = MIN_PASSWORD_LENGTH,
) -> User:
    """Set a user's password, end their sessions and lift a lockout."""
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    check_password_policy(password, email=user.email, min_length=password_min_length)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    # A new password is also a way back in for a locked-out user.
    user.failed_login_count = 0
    user.locked_until = None
    await revoke_user_sessions(session, user.id)
    await record_audit(
        session,
        actor=actor,
        action="user.password_set",
        entity_type="user",
        entity_id=user.id,
    )
    return user


async def change_password(
    session: AsyncSession,
    user_id: int,
    current_password: str,
    new_password: str,
    *,
    password_min_length: int,
) -> tuple[User, list[int]]:
    """Change one's own password: the current one must match. Ends every session of the
    user (the caller then starts a fresh one); returns the user and the ended session ids."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    if not verify_password(user.password_hash, current_password):
        raise ValidationFailed.field(["currentPassword"], "is not the current password")
    if new_password == current_password:
        raise ValidationFailed.field(["newPassword"], "must differ from the current password")
    problems = password_problems(new_password, email=user.email, min_length=password_min_length)
    if problems:
        raise ValidationFailed(
            "newPassword: " + "; ".join(problems),
            errors=[{"loc": ["newPassword"], "msg": problem} for problem in problems],
        )
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    ended = await revoke_user_sessions(session, user.id)
    await record_audit(
        session,
        actor=user.actor,
        action="user.password_change",
        entity_type="user",
        entity_id=user.id,
        after={"sessionsEnded": len(ended)},
    )
    return user, ended
