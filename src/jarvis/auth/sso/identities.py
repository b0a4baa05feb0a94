"""Accounts at identity providers: find, link or create the user behind a sign-in.

A provider account is known by ``(provider, subject)``. The first time one signs in it is
linked to the user with the same (provider-verified) e-mail address, or a new user is
created with the persona ``auth.sso_default_persona``. Names and the avatar follow the
provider at every sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.auth.models import OAuthIdentity, User, UserProfile
from jarvis.auth.users.service import create_user, get_user_by_email
from jarvis.core.identity import Actor
from jarvis.errors import Forbidden
from jarvis.kit.clock import utcnow
from jarvis.personas.service import get_persona

SSO_ACTOR = Actor.system("oauth")
NAME_LENGTH = 100
URL_LENGTH = 2048
USERNAME_LENGTH = 255
EMAIL_LENGTH = 320


@dataclass(frozen=True)
class ProviderIdentity:
    """Who the provider says signed in; ``email`` is verified by the provider."""

    provider: str
    subject: str
    email: str
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    avatar_url: str | None = None


def refused(reason: str, detail: str) -> Forbidden:
    """A 403 whose problem document names the ``reason`` (also what the audit records)."""
    return Forbidden(detail, extra={"reason": reason})


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def check_domain(email: str, allowed: list[str]) -> None:
    """403 unless ``allowed`` is empty or holds the address's domain (exactly)."""
    if not allowed:
        return
    domain = email_domain(email)
    if domain not in {d.strip().lower().lstrip("@") for d in allowed}:
        raise refused(
            "domain_not_allowed",
            f"e-mail addresses at {domain} may not sign in here (auth.sso_allowed_domains)",
        )


async def sign_in_identity(
    session: AsyncSession,
    identity: ProviderIdentity,
    *,
    default_persona: str,
    allowed_domains: list[str],
) -> User:
    """The active user ``identity`` signs in as: found, linked by e-mail, or created."""
    check_domain(identity.email, allowed_domains)
    now = utcnow()
    link = await session.scalar(
        select(OAuthIdentity).where(
            OAuthIdentity.provider == identity.provider,
            OAuthIdentity.subject == identity.subject,
        )
    )
    user: User | None
    if link is not None:
        user = await session.get(User, link.user_id)
        if user is None:  # the foreign key cascades; only a concurrent delete gets here
            raise refused("user_missing", "the account linked to this sign-in no longer exists")
    else:
        user = await get_user_by_email(session, identity.email)
        if user is None:
            user = await _create_user(session, identity, default_persona)
        link = OAuthIdentity(provider=identity.provider, subject=identity.subject, user_id=user.id)
        session.add(link)
        await session.flush()
        await record_audit(
            session,
            actor=SSO_ACTOR,
            action="auth.identity_linked",
            entity_type="user",
            entity_id=user.id,
            after={
                "provider": identity.provider,
                "subject": identity.subject,
                "email": identity.email,
            },
        )
    if not user.is_active:
        raise refused("user_inactive", f"the account {user.email} is deactivated")
    link.email = identity.email
    link.username = identity.username
    link.last_login_at = now
    await _follow_profile(session, user, identity)
    await session.flush()
    return user


async def _create_user(session: AsyncSession, identity: ProviderIdentity, persona: str) -> User:
    if await get_persona(session, persona) is None:
        raise refused(
            "persona_missing",
            f"there is no account for {identity.email}, and new accounts get the persona "
            f"'{persona}' (auth.sso_default_persona), which does not exist; an administrator "
            "must create that persona or choose another",
        )
    return await create_user(
        session,
        email=identity.email,
        persona=persona,
        password=None,
        actor=SSO_ACTOR,
        first_name=identity.first_name,
        last_name=identity.last_name,
    )


async def _follow_profile(session: AsyncSession, user: User, identity: ProviderIdentity) -> None:
    """Take the provider's names and avatar when it gives them."""
    if identity.first_name:
        user.first_name = identity.first_name
    if identity.last_name:
        user.last_name = identity.last_name
    if identity.avatar_url:
        user.profile_image_url = identity.avatar_url
    profile = await session.scalar(select(UserProfile).where(UserProfile.user_id == user.id))
    display = " ".join(p for p in (user.first_name, user.last_name) if p) or identity.username
    if profile is None:
        session.add(UserProfile(user_id=user.id, display_name=display))
    elif not profile.display_name and display:
        profile.display_name = display
