"""Business configuration tables: registry, values, change log, snapshots, change requests,
business rules and templates (the seed's configuration tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jarvis.db.base import Base, JSONType
from jarvis.kit.clock import utcnow


class ConfigRegistry(Base):
    """One configuration key: what it means, what its value must look like, who may set it."""

    __tablename__ = "config_registry"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    value_schema: Mapped[dict[str, Any]]
    default_value: Mapped[Any] = mapped_column(JSONType)
    # Subset of ["global", "persona", "agent", "workflow"].
    allowed_scopes: Mapped[list[str]] = mapped_column(JSONType)
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on every change of the definition; the ETag of the key.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320))


class ConfigValue(Base):
    """One version of a key's value at one scope. Rows are never rewritten, except that
    deactivation clears ``is_active`` and stamps ``deactivated_at`` (so reads of the past
    still see the value as it was)."""

    __tablename__ = "config_values"
    __table_args__ = (
        # The seed's constraint; ``scope_key`` stands for (persona, agent_id, workflow_id)
        # with NULLs spelled out, so two global rows of one version are duplicates too.
        UniqueConstraint(
            "config_key", "version", "scope_key", name="config_values_key_version_scope_unique"
        ),
        # Resolution walks this index backwards: most specific scope, newest version first.
        Index("idx_config_values_resolve", "config_key", "scope_rank", "version"),
        # The next scheduled change of a key: few rows lie in the future.
        Index("idx_config_values_schedule", "config_key", "effective_from"),
        CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from", name="effective_window"
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_key: Mapped[str] = mapped_column(
        String(200), ForeignKey("config_registry.key", onupdate="CASCADE")
    )
    value: Mapped[Any] = mapped_column(JSONType)
    scope_identifiers: Mapped[dict[str, Any]]
    persona: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(Integer)
    workflow_id: Mapped[int | None] = mapped_column(Integer)
    scope_key: Mapped[str] = mapped_column(String(120))
    # 4 * workflow + 2 * agent + 1 * persona: higher wins (workflow > agent > persona > global).
    scope_rank: Mapped[int] = mapped_column(SmallInteger)
    effective_from: Mapped[datetime] = mapped_column(default=utcnow)
    effective_to: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(320))
    created_by_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigChangeLog(Base):
    """What changed, by whom and why: one row per change of a value or a key's definition."""

    __tablename__ = "config_change_logs"
    __table_args__ = (
        Index("idx_config_change_logs_key", "config_key", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_key: Mapped[str] = mapped_column(String(200))
    # set | revert | deactivate | restore | import | approve | registry.create | registry.update
    action: Mapped[str] = mapped_column(String(32))
    scope_identifiers: Mapped[dict[str, Any] | None]
    persona: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(Integer)
    workflow_id: Mapped[int | None] = mapped_column(Integer)
    old_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    version: Mapped[int | None] = mapped_column(Integer)
    value_id: Mapped[int | None] = mapped_column(Integer)
    effective_from: Mapped[datetime | None]
    effective_to: Mapped[datetime | None]
    performed_by: Mapped[str] = mapped_column(String(320))
    performed_by_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    change_request_id: Mapped[int | None] = mapped_column(Integer)
    snapshot_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigSnapshot(Base):
    """Every live value at one instant, by name, to diff against and restore."""

    __tablename__ = "config_snapshots"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    taken_at: Mapped[datetime]
    # {"values": [{"key", "scope", "value", "version", "effectiveFrom", "effectiveTo"}]}
    content: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(320))
    created_by_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigChangeRequest(Base):
    """A change to a key that needs a second admin's approval (four eyes)."""

    __tablename__ = "config_change_requests"
    __table_args__ = (
        Index("idx_config_change_requests_status", "status", "id"),
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'withdrawn')", name="status"
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_key: Mapped[str] = mapped_column(
        String(200), ForeignKey("config_registry.key", onupdate="CASCADE")
    )
    # set | revert | deactivate
    action: Mapped[str] = mapped_column(String(16))
    # The change as it would be applied: value, scope, window, version.
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(320))
    requested_by_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_by_id: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    applied_value_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BusinessRule(Base):
    """A named, versioned rule table: conditions over context fields -> outcome, reason."""

    __tablename__ = "business_rules"
    __table_args__ = (
        UniqueConstraint("name", "version", name="business_rules_name_version_unique"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    # {"rules": [{"when": [...], "outcome": ..., "reasonCode": ...}], "default": {...}}
    definition: Mapped[dict[str, Any]]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Template(Base):
    """A named, versioned text template (Jinja2 source, rendered sandboxed)."""

    __tablename__ = "templates"
    __table_args__ = (
        UniqueConstraint("name", "version", name="templates_name_version_unique"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
