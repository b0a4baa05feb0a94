"""Accounts, sign-in sessions and API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from jarvis.audit.service import record_audit
from jarvis.auth.models import ApiToken, User, UserPreference, UserProfile, UserSession
from jarvis.auth.users.passwords import (
    MIN_PASSWORD_LENGTH,
    check_password_policy,
    generate_password,
    hash_password,
)
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor, Principal
from jarvis.core.permissions import ADMIN_PERSONA_KEY, PERMISSIONS, unknown_permissions
from jarvis.errors import Conflict, NotFound, ValidationFailed
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.secrets import keyed_digest, new_token, sha256_hex
from jarvis.personas.grants import persona_permissions
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona, require_persona

API_TOKEN_PREFIX = "jv_"  # noqa: S105 - a prefix, not a secret


def user_actor(user: User) -> Actor:
    return Actor(label=user.email, user_id=user.id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def get_user_with_profile(session: AsyncSession, user_id: int) -> User:
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


async def revoke_user_sessions(
    session: AsyncSession, user_id: int, *, keep_session_id: int | None = None
) -> list[int]:
    """End the user's live sessions (but ``keep_session_id``); return their ids."""
    condition = [UserSession.user_id == user_id, UserSession.revoked_at.is_(None)]
    if keep_session_id is not None:
        condition.append(UserSession.id != keep_session_id)
    ids = list((await session.scalars(select(UserSession.id).where(*condition))).all())
    if ids:
        await session.execute(
            update(UserSession).where(UserSession.id.in_(ids)).values(revoked_at=utcnow())
        )
    return ids


async def find_admin(session: AsyncSession) -> User | None:
    return await session.scalar(
        select(User).where(User.persona == ADMIN_PERSONA_KEY).order_by(User.id).limit(1)
    )


# --- sessions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSession:
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
        actor=user_actor(user),
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
        actor=user_actor(user) if user else Actor.system(),
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


# --- API tokens -------------------------------------------------------------------------


async def create_api_token(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    actor: Actor,
    expires_at: datetime | None = None,
    scopes: Sequence[str] | None = None,
) -> tuple[ApiToken, str]:
    """Create a named token for a user; returns the row and the token, shown only once.

    ``scopes`` limits the token to those permissions (within its user's); None allows
    every permission the user holds, now and later.
    """
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed.field(["name"], "must be 1 to 100 characters")
    existing = await session.scalar(
        select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.name == name)
    )
    if existing is not None:
        raise Conflict(f"{email} already has a token named '{name}'")
    if scopes is not None:
        unknown = unknown_permissions(list(scopes))
        if unknown:
            raise ValidationFailed.field(
                ["scopes"],
                f"unknown permission(s) {', '.join(unknown)}; known: {', '.join(PERMISSIONS)}",
            )
        scopes = sorted(set(scopes))
    if expires_at is not None and as_utc(expires_at) <= utcnow():
        raise ValidationFailed.field(["expiresAt"], "must be in the future")
    token = new_token(API_TOKEN_PREFIX)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=sha256_hex(token),
        token_prefix=token[:10],
        expires_at=expires_at,
        scopes=list(scopes) if scopes is not None else None,
    )
    session.add(row)
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="token.create",
        entity_type="api_token",
        entity_id=row.id,
        after={
            "userId": user.id,
            "name": name,
            "prefix": row.token_prefix,
            "scopes": row.scopes,
            "expiresAt": as_utc(expires_at).isoformat() if expires_at else None,
        },
    )
    return row, token


async def principal_from_token(session: AsyncSession, token_hash: str) -> Principal | None:
    """The caller behind a live API token, by the SHA-256 of the token."""
    row = (
        await session.execute(
            select(ApiToken.id, ApiToken.expires_at, ApiToken.scopes, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    token_id, expires_at, scopes, user = row
    if (expires_at is not None and as_utc(expires_at) <= utcnow()) or not user.is_active:
        return None
    permissions = await persona_permissions(session, user.persona)
    return Principal(
        user.id,
        user.email,
        user.persona,
        "token",
        token_id,
        permissions,
        frozenset(scopes) if scopes is not None else None,
        as_utc(expires_at) if expires_at is not None else None,
    )


@dataclass(frozen=True)
class AdminBootstrap:
    user: User
    created: bool
    generated_password: str | None


async def ensure_admin(
    session: AsyncSession,
    *,
    email: str,
    password: str | None,
    generate: bool,
    config: ConfigService,
) -> AdminBootstrap | None:
    """Create the first admin unless an admin exists.

    With no password given, one is generated when ``generate`` is true (development) and
    returned so the caller can show it once; otherwise no admin is created.
    """
    existing = await find_admin(session)
    if existing is not None:
        return AdminBootstrap(existing, created=False, generated_password=None)
    generated = None
    if password is None:
        if not generate:
            return None
        password = generated = generate_password()
    actor = Actor.system("bootstrap")
    await ensure_persona(session, ADMIN_PERSONA, actor=actor, config=config)
    user = await create_user(
        session,
        email=email,
        persona=ADMIN_PERSONA_KEY,
        password=password,
        actor=actor,
        first_name="JARVIS",
        last_name="Administrator",
        job_title="Platform administrator",
    )
    return AdminBootstrap(user, created=True, generated_password=generated)
