"""Which persona may do what: the ``persona_permissions`` table and its edits."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.core.identity import Actor
from jarvis.core.permissions import ADMIN_PERSONA_KEY, ALL_PERMISSIONS, PERMISSIONS
from jarvis.errors import Conflict, NotFound, ValidationFailed
from jarvis.kit.clock import utcnow
from jarvis.personas.models import Permission, PersonaPermission, RolePersona


async def ensure_catalogue(session: AsyncSession) -> list[str]:
    """Store the permissions the code knows that the table lacks; return their names.

    ``INSERT ... ON CONFLICT DO NOTHING``, so instances starting together do not collide.
    """
    stored = {p.name: p for p in (await session.scalars(select(Permission))).all()}
    missing = [name for name in PERMISSIONS if name not in stored]
    for name, row in stored.items():
        if name in PERMISSIONS and row.description != PERMISSIONS[name]:
            row.description = PERMISSIONS[name]
    if missing:
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        rows = [{"name": name, "description": PERMISSIONS[name]} for name in missing]
        statement = insert(Permission).values(rows).on_conflict_do_nothing(index_elements=["name"])
        await session.execute(statement)
    await session.flush()
    return missing


async def persona_permissions(session: AsyncSession, persona: str) -> frozenset[str]:
    """What users acting as ``persona`` may do (every permission for admin)."""
    if persona == ADMIN_PERSONA_KEY:
        return ALL_PERMISSIONS
    names = await session.scalars(
        select(PersonaPermission.permission).where(PersonaPermission.persona_key == persona)
    )
    return frozenset(names.all())


async def permission_table(session: AsyncSession) -> dict[str, list[str]]:
    """Every registered persona with its sorted permissions."""
    keys = (await session.scalars(select(RolePersona.key).order_by(RolePersona.key))).all()
    table: dict[str, list[str]] = {key: [] for key in keys}
    rows = await session.execute(
        select(PersonaPermission.persona_key, PersonaPermission.permission)
    )
    for key, name in rows.all():
        table.setdefault(key, []).append(name)
    if ADMIN_PERSONA_KEY in table:
        table[ADMIN_PERSONA_KEY] = list(ALL_PERMISSIONS)
    return {key: sorted(names) for key, names in table.items()}


def _checked(names: Iterable[str], loc: str) -> list[str]:
    wanted = sorted(set(names))
    unknown = [n for n in wanted if n not in PERMISSIONS]
    if unknown:
        raise ValidationFailed.field(
            [loc],
            f"unknown permission(s) {', '.join(unknown)}; known: {', '.join(PERMISSIONS)}",
        )
    return wanted


async def grant(
    session: AsyncSession, persona: str, names: Iterable[str], *, actor: Actor
) -> list[str]:
    """Add permissions to a persona (those it has already are kept); return the added."""
    wanted = _checked(names, "permissions")
    if persona == ADMIN_PERSONA_KEY:
        return []
    held = await persona_permissions(session, persona)
    added = [n for n in wanted if n not in held]
    now = utcnow()
    for name in added:
        session.add(
            PersonaPermission(
                persona_key=persona, permission=name, granted_at=now, granted_by=actor.label
            )
        )
    await session.flush()
    return added


async def set_persona_permissions(
    session: AsyncSession, persona: str, names: Iterable[str], *, actor: Actor
) -> tuple[list[str], list[str]]:
    """Replace what ``persona`` may do; return (before, after). Audited."""
    wanted = _checked(names, "permissions")
    if persona == ADMIN_PERSONA_KEY:
        raise Conflict("the admin persona holds every permission; it cannot be changed")
    if await session.scalar(select(RolePersona.id).where(RolePersona.key == persona)) is None:
        raise NotFound(f"no persona with key '{persona}'")
    before = sorted(await persona_permissions(session, persona))
    removed = [n for n in before if n not in wanted]
    if removed:
        await session.execute(
            delete(PersonaPermission).where(
                PersonaPermission.persona_key == persona,
                PersonaPermission.permission.in_(removed),
            )
        )
    await grant(session, persona, wanted, actor=actor)
    if before != wanted:
        await record_audit(
            session,
            actor=actor,
            action="permission.change",
            entity_type="persona",
            entity_id=persona,
            before={"permissions": before},
            after={"permissions": wanted},
        )
    return before, wanted
