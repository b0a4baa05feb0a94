"""Accounts, sign-in sessions and API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from jarvis.auth.models import ApiToken, User, UserPreference, UserProfile, UserSession
from jarvis.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    generate_password,
    hash_password,
    verify_password,
)
from jarvis.config.service import ConfigService
from jarvis.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from jarvis.governance.audit import Actor, record_audit
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.secrets import keyed_digest, new_token, sha256_hex
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona, require_persona

API_TOKEN_PREFIX = "jv_"  # noqa: S105 - a prefix, not a secret
ADMIN_PERSONA_KEY = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    user_id: int
    email: str
    persona: str
    via: Literal["session", "token"]
    credential_id: int

    @property
    def is_admin(self) -> bool:
        return self.persona == ADMIN_PERSONA_KEY

    @property
    def actor(self) -> Actor:
        return Actor(label=self.email, user_id=self.user_id)


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
) -> User:
    """Create a user with profile and preferences; 409 if the e-mail is taken."""
    email = email.strip().lower()
    if "@" not in email:
        raise ValidationFailed.field(["email"], "must be an e-mail address")
    await require_persona(session, persona, loc=("persona",))
    if await get_user_by_email(session, email) is not None:
        raise Conflict(f"a user with e-mail {email} already exists")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.field(
            ["password"], f"must be at least {MIN_PASSWORD_LENGTH} characters"
        )
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


async def set_password(session: AsyncSession, email: str, password: str, *, actor: Actor) -> User:
    """Set a user's password and end their sessions."""
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.field(
            ["password"], f"must be at least {MIN_PASSWORD_LENGTH} characters"
        )
    user.password_hash = hash_password(password)
    await session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await record_audit(
        session,
        actor=actor,
        action="user.password_set",
        entity_type="user",
        entity_id=user.id,
    )
    return user


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


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """Check an e-mail and password; 401 without saying which was wrong."""
    user = await get_user_by_email(session, email)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise Unauthorized("the e-mail or password is incorrect")
    return user


async def start_session(
    session: AsyncSession,
    user: User,
    *,
    secret_key: str,
    lifetime: timedelta,
    previous_token: str | None,
    ip_address: str | None,
    user_agent: str | None,
) -> NewSession:
    """Sign ``user`` in with a fresh session id, revoking the one the browser had."""
    now = utcnow()
    if previous_token:
        await session.execute(
            update(UserSession)
            .where(UserSession.session_hash == keyed_digest(secret_key, previous_token))
            .values(revoked_at=now)
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
        after={"userId": user.id, "ipAddress": ip_address, "via": "password"},
    )
    return NewSession(token=token, expires_at=expires_at, user=user)


async def end_session(session: AsyncSession, token: str, *, secret_key: str) -> bool:
    """Revoke the session behind ``token``; False when it was not live."""
    row = await session.scalar(
        select(UserSession).where(
            UserSession.session_hash == keyed_digest(secret_key, token),
            UserSession.revoked_at.is_(None),
        )
    )
    if row is None:
        return False
    row.revoked_at = utcnow()
    user = await session.get(User, row.user_id)
    await record_audit(
        session,
        actor=user_actor(user) if user else Actor.system(),
        action="auth.logout",
        entity_type="user_session",
        entity_id=row.id,
    )
    return True


async def principal_from_session(
    session: AsyncSession, token: str, *, secret_key: str
) -> Principal | None:
    row = (
        await session.execute(
            select(UserSession.id, UserSession.expires_at, User)
            .join(User, User.id == UserSession.user_id)
            .where(
                UserSession.session_hash == keyed_digest(secret_key, token),
                UserSession.revoked_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    session_id, expires_at, user = row
    if as_utc(expires_at) <= utcnow() or not user.is_active:
        return None
    return Principal(user.id, user.email, user.persona, "session", session_id)


# --- API tokens -------------------------------------------------------------------------


async def create_api_token(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    actor: Actor,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a named token for a user; returns the row and the token, shown only once."""
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
    token = new_token(API_TOKEN_PREFIX)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=sha256_hex(token),
        token_prefix=token[:10],
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="token.create",
        entity_type="api_token",
        entity_id=row.id,
        after={"userId": user.id, "name": name, "prefix": row.token_prefix},
    )
    return row, token


async def principal_from_token(session: AsyncSession, token: str) -> Principal | None:
    row = (
        await session.execute(
            select(ApiToken.id, ApiToken.expires_at, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == sha256_hex(token), ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    token_id, expires_at, user = row
    if (expires_at is not None and as_utc(expires_at) <= utcnow()) or not user.is_active:
        return None
    return Principal(user.id, user.email, user.persona, "token", token_id)


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
