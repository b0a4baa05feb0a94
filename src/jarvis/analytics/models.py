"""The ``activities`` feed: notable events for dashboards (who did what, what finished)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jarvis.db.base import Base
from jarvis.kit.clock import utcnow


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (
        Index("idx_activities_created", "created_at"),
        Index("idx_activities_persona_created", "persona", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # e.g. command.issued, execution.completed, execution.awaiting_approval
    type: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    persona: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(320))
    # Plain references, not foreign keys: the feed outlives what it mentions.
    execution_id: Mapped[str | None] = mapped_column(String(36))
    agent_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
