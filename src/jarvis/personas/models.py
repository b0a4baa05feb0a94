"""The ``role_personas`` table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jarvis.db.base import Base
from jarvis.db.mixins import Timestamps
from jarvis.kit.clock import utcnow


class RolePersona(Timestamps, Base):
    __tablename__ = "role_personas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    person_name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    is_dynamic: Mapped[bool] = mapped_column(Boolean, default=False)


class Permission(Base):
    """A named permission a route may require (the catalogue is jarvis.core.permissions)."""

    __tablename__ = "permissions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(300))


class PersonaPermission(Base):
    """A permission granted to every user acting as a persona."""

    __tablename__ = "persona_permissions"
    __table_args__ = (PrimaryKeyConstraint("persona_key", "permission"),)

    persona_key: Mapped[str] = mapped_column(
        String(64), ForeignKey("role_personas.key", ondelete="CASCADE", onupdate="CASCADE")
    )
    permission: Mapped[str] = mapped_column(
        String(64), ForeignKey("permissions.name", ondelete="CASCADE")
    )
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by: Mapped[str | None] = mapped_column(String(320))
