"""The first admin: created at start (``jarvis serve``, ``jarvis seed``) unless one exists.

Several instances may start together on an empty database. Each checks for an admin and,
finding none, creates the admin persona and user inside a savepoint. One that loses the
race meets the winner's rows: a unique violation (PostgreSQL, once the winner commits) or
the taken e-mail (409) when the winner committed between the check and the insert
(SQLite's writers queue up front, so there the loser's check already sees the admin). It
rolls back the savepoint and returns the admin the winner created: every instance starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.models import User
from jarvis.auth.users.passwords import generate_password
from jarvis.auth.users.service import create_user
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor
from jarvis.core.permissions import ADMIN_PERSONA_KEY
from jarvis.errors import Conflict
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona

log = structlog.get_logger(__name__)

BOOTSTRAP_ACTOR = Actor.system("bootstrap")


async def find_admin(session: AsyncSession) -> User | None:
    """The first user with the admin persona, or None."""
    return await session.scalar(
        select(User).where(User.persona == ADMIN_PERSONA_KEY).order_by(User.id).limit(1)
    )


@dataclass(frozen=True)
class AdminBootstrap:
    """The admin found or created; the generated password when one was made (show it once)."""

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
    """Create the first admin unless an admin exists (safe when instances race to do it).

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
    try:
        async with session.begin_nested():
            await ensure_persona(session, ADMIN_PERSONA, actor=BOOTSTRAP_ACTOR, config=config)
            user = await create_user(
                session,
                email=email,
                persona=ADMIN_PERSONA_KEY,
                password=password,
                actor=BOOTSTRAP_ACTOR,
                first_name="JARVIS",
                last_name="Administrator",
                job_title="Platform administrator",
            )
    except (IntegrityError, Conflict):
        # Another instance created the admin persona or user first and has committed (a
        # 409 with no admin behind it is a non-admin user holding the e-mail: re-raised).
        existing = await find_admin(session)
        if existing is None:
            raise
        log.info("auth.admin_bootstrap_lost_race", admin=existing.email)
        return AdminBootstrap(existing, created=False, generated_password=None)
    return AdminBootstrap(user, created=True, generated_password=generated)
