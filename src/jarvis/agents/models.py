"""The ``agents`` and ``agent_versions`` tables (the seed's agent schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from jarvis.core.layers import LAYER_ORDER
from jarvis.db.base import Base
from jarvis.db.mixins import Timestamps
from jarvis.kit.clock import utcnow

_LAYER_VALUES = ", ".join(f"'{layer.value}'" for layer in LAYER_ORDER)


class Agent(Timestamps, Base):
    __tablename__ = "agents"
    __table_args__ = (
        Index("idx_agents_layer", "layer"),
        Index("idx_agents_persona", "persona"),
        Index("idx_agents_business_function", "business_function"),
        CheckConstraint(f"layer IN ({_LAYER_VALUES})", name="layer"),
        # Ids are never reused on SQLite either, so audit entries name one agent for good.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    layer: Mapped[str] = mapped_column(String(32))
    persona: Mapped[str] = mapped_column(
        String(64), ForeignKey("role_personas.key", onupdate="CASCADE"), default="admin"
    )
    specialization: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # Which code the agent runs (an agent kind) and that kind's settings.
    kind: Mapped[str] = mapped_column(String(64), default="echo", server_default="echo")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Disabled agents stay in the registry but take part in no execution.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Shared agents serve every persona's executions, not only their own persona's.
    serves_all_personas: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    # Performance tracking (maintained by the engine once executions run).
    cpu_usage: Mapped[int] = mapped_column(Integer, default=0)
    success_rate: Mapped[float] = mapped_column(Numeric(5, 2, asdecimal=False), default=0)
    avg_response_time: Mapped[int] = mapped_column(Integer, default=0)

    # Governance.
    maturity_level: Mapped[int] = mapped_column(Integer, default=1)
    governance_status: Mapped[str] = mapped_column(String(32), default="pending")
    risk_level: Mapped[str] = mapped_column(String(16), default="medium")

    # Persona generation.
    can_generate_persona: Mapped[bool] = mapped_column(Boolean, default=False)
    persona_generation_config: Mapped[dict[str, Any] | None]
    dashboard_template: Mapped[dict[str, Any] | None]

    # Business context.
    business_function: Mapped[str | None] = mapped_column(String(64))
    sla_performance: Mapped[float | None] = mapped_column(Numeric(5, 2, asdecimal=False))
    sla_status: Mapped[str] = mapped_column(String(16), default="green")

    version: Mapped[int] = mapped_column(Integer, default=1)


# Names are unique regardless of case ("Intent Router" and "intent router" clash), enforced
# by the database so that concurrent creates cannot both pass the service's check.
Index("uq_agents_lower_name", func.lower(Agent.name), unique=True)


class AgentVersion(Base):
    """The state an agent had before an update or restore replaced it."""

    __tablename__ = "agent_versions"
    __table_args__ = (UniqueConstraint("agent_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]]
    change_type: Mapped[str] = mapped_column(String(16))
    changed_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
