"""Persona registry: list, look up, register."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor
from jarvis.core.permissions import ADMIN_PERSONA_KEY
from jarvis.core.scope import Scope
from jarvis.errors import Conflict, ValidationFailed
from jarvis.personas import grants
from jarvis.personas.models import RolePersona
from jarvis.personas.schemas import ColorScheme, PersonaOut, PersonaRegister

COLOURS_KEY = "persona.colors"
DEFAULT_PERMISSIONS_KEY = "auth.default_permissions"


def persona_out(persona: RolePersona, colours: ColorScheme | dict[str, str]) -> PersonaOut:
    """The API view of a persona; its colours come from configuration."""
    return PersonaOut(
        id=persona.id,
        key=persona.key,
        display_name=persona.display_name,
        person_name=persona.person_name,
        description=persona.description,
        color_scheme=ColorScheme.model_validate(colours),
        is_dynamic=persona.is_dynamic,
        created_at=persona.created_at,
    )


async def persona_colours(config: ConfigService, key: str) -> ColorScheme:
    """The persona's colour scheme as configured now (``persona.colors`` at its scope)."""
    return ColorScheme.model_validate(await config.get(COLOURS_KEY, Scope(persona=key)))


async def list_personas(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[RolePersona], int]:
    """Personas ordered by key, one page, and how many there are."""
    total = await session.scalar(select(func.count()).select_from(RolePersona)) or 0
    rows = await session.scalars(
        select(RolePersona).order_by(RolePersona.key).limit(limit).offset(offset)
    )
    return rows.all(), total


async def persona_keys(session: AsyncSession) -> list[str]:
    """Every registered persona key, sorted."""
    return list((await session.scalars(select(RolePersona.key).order_by(RolePersona.key))).all())


async def persona_names(session: AsyncSession, *, key: str | None = None) -> list[tuple[str, str]]:
    """(key, display name) of every persona by key, or of the one ``key`` names."""
    stmt = select(RolePersona.key, RolePersona.display_name).order_by(RolePersona.key)
    if key is not None:
        stmt = stmt.where(RolePersona.key == key)
    return [(k, name) for k, name in (await session.execute(stmt)).all()]


async def get_persona(session: AsyncSession, key: str) -> RolePersona | None:
    return await session.scalar(select(RolePersona).where(RolePersona.key == key))


async def persona_exists(session: AsyncSession, key: str) -> bool:
    return await session.scalar(select(RolePersona.id).where(RolePersona.key == key)) is not None


def persona_registered(key: str) -> ColumnElement[bool]:
    """A condition true when ``key`` is a registered persona, for statements that check it
    in the same trip as their own work (``require_persona`` explains a failure)."""
    return exists().where(RolePersona.key == key)


async def require_persona(session: AsyncSession, key: str, *, loc: Sequence[str]) -> None:
    """Raise a 422 naming the registered personas when ``key`` is not one of them."""
    if await get_persona(session, key) is None:
        known = ", ".join(await persona_keys(session)) or "none"
        raise ValidationFailed.field(
            list(loc), f"unknown persona '{key}'; registered personas: {known}"
        )


async def register_persona(
    session: AsyncSession,
    data: PersonaRegister,
    *,
    actor: Actor,
    config: ConfigService,
    is_dynamic: bool = False,
) -> RolePersona:
    """Register a new persona and store its colours as ``persona.colors`` at its scope;
    409 when the key is taken."""
    if await get_persona(session, data.key) is not None:
        raise Conflict(f"a persona with key '{data.key}' already exists")
    persona = RolePersona(
        key=data.key,
        display_name=data.display_name,
        person_name=data.person_name,
        description=data.description,
        is_dynamic=is_dynamic,
    )
    session.add(persona)
    await session.flush()
    colours = data.color_scheme.model_dump(mode="json")
    await config.set_value(
        session,
        COLOURS_KEY,
        colours,
        Scope(persona=persona.key),
        actor=actor,
        reason=f"persona '{persona.key}' registered",
    )
    # What the new persona may do: auth.default_permissions read at its own scope.
    if persona.key != ADMIN_PERSONA_KEY:
        defaults = await config.get(
            DEFAULT_PERMISSIONS_KEY, Scope(persona=persona.key), as_type=list[str]
        )
        await grants.grant(session, persona.key, defaults, actor=actor)
    await record_audit(
        session,
        actor=actor,
        action="persona.register",
        entity_type="persona",
        entity_id=persona.key,
        after=persona_out(persona, colours).model_dump(mode="json"),
    )
    return persona


# The admin persona is structural (``require_admin`` checks for it), so it is created with
# the first admin even without demo data. Its colours are data, editable like any other.
ADMIN_PERSONA = PersonaRegister(
    key="admin",
    display_name="Administrator",
    person_name=None,
    description="Runs the platform: agents, configuration, governance and users.",
    color_scheme=ColorScheme(
        primary="#3b82f6",
        secondary="#1e40af",
        accent="#60a5fa",
        background="#0f172a",
        glassmorphism="rgba(15, 23, 42, 0.7)",
    ),
)


async def ensure_persona(
    session: AsyncSession, data: PersonaRegister, *, actor: Actor, config: ConfigService
) -> bool:
    """Register ``data`` unless its key exists; True when it was created."""
    if await get_persona(session, data.key) is not None:
        return False
    await register_persona(session, data, actor=actor, config=config)
    return True


# The personas every installation has, whether or not demo data was loaded.
BUILTIN_PERSONAS = (ADMIN_PERSONA,)


async def ensure_builtin_personas(
    session: AsyncSession, *, actor: Actor, config: ConfigService
) -> list[str]:
    """Register the built-in personas (the admin) the database lacks; their keys.

    The app's own start-up does not need them (the first admin's bootstrap registers the
    admin persona), but a command that names one on a database that was migrated and
    never seeded does: ``jarvis users create --persona admin``.
    """
    return [
        data.key
        for data in BUILTIN_PERSONAS
        if await ensure_persona(session, data, actor=actor, config=config)
    ]
