"""Executions, their steps and events, and the commands users issued.

``agent_executions`` and ``agent_execution_steps`` keep the seed's names and columns; the
events table is the per-execution, sequence-numbered log that live subscribers replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jarvis.db.base import Base
from jarvis.kit.clock import utcnow
from jarvis.orchestration.lifecycle import ExecutionStatus, StepStatus

EXECUTION_STATUSES: tuple[str, ...] = tuple(s.value for s in ExecutionStatus)
STEP_STATUSES: tuple[str, ...] = tuple(s.value for s in StepStatus)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class AgentExecution(Base):
    """One command's run through the six layers."""

    __tablename__ = "agent_executions"
    __table_args__ = (
        CheckConstraint(_one_of("status", EXECUTION_STATUSES), name="status"),
        Index("idx_agent_executions_status", "status"),
        Index("idx_agent_executions_persona_created", "persona", "created_at"),
        Index("idx_agent_executions_creator_created", "created_by_id", "created_at"),
        Index("idx_agent_executions_created_status", "created_at", "status"),
        Index("idx_agent_executions_status_lease", "status", "lease_expires_at"),
    )

    execution_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    persona: Mapped[str] = mapped_column(
        String(64), ForeignKey("role_personas.key", onupdate="CASCADE")
    )
    command: Mapped[str] = mapped_column(Text)
    # The workflow the command belongs to: workflow-scoped configuration applies.
    workflow_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24), default="queued")
    # What the Meta Brain decided: intent, confidence, which agents take part and why not.
    plan: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    # A short machine-readable reason for failed/cancelled/rejected (e.g. step_failed).
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(320))
    created_by_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="SET NULL")
    )
    # The execution this one re-runs (POST .../retry).
    retry_of: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agent_executions.execution_id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    cancel_requested_at: Mapped[datetime | None]
    # How many layers have completed, in order: a resumed execution starts at the next one.
    layers_done: Mapped[int] = mapped_column(Integer, default=0)
    # The engine running it and until when, unless it renews (store/leases.py); another engine may
    # resume a running execution whose lease has expired.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    # How many times an engine holding it was lost (its lease expired): too many -> failed.
    worker_losses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ExecutionStep(Base):
    """One agent's work in one execution: one row per agent, retries counted in ``attempt``."""

    __tablename__ = "agent_execution_steps"
    __table_args__ = (
        CheckConstraint(_one_of("status", STEP_STATUSES), name="status"),
        UniqueConstraint("execution_id", "agent_id", name="agent_execution_steps_agent_unique"),
        # An agent's most recent steps (performance metrics), newest first.
        Index("idx_agent_execution_steps_agent_recent", "agent_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agent_executions.execution_id", ondelete="CASCADE"), index=True
    )
    # Kept when the agent is deleted later; the name says who it was.
    agent_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("agents.id", ondelete="SET NULL")
    )
    agent_name: Mapped[str] = mapped_column(String(200))
    agent_kind: Mapped[str] = mapped_column(String(64))
    layer: Mapped[str] = mapped_column(String(32))
    # Order within the layer (the agents' order in the registry).
    position: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(24))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    input: Mapped[dict[str, Any] | None]
    output: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # {"provider", "model", "promptTokens", "completionTokens", "totalTokens", "latencyMs"}
    token_usage: Mapped[dict[str, Any] | None]
    # The human decision on a step that needed approval.
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]


class ExecutionEvent(Base):
    """What was published about an execution, in order; subscribers replay it."""

    __tablename__ = "agent_execution_events"
    __table_args__ = (
        UniqueConstraint("execution_id", "seq", name="agent_execution_events_seq_unique"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agent_executions.execution_id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Command(Base):
    """A command a user issued, and the execution that ran it."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("idx_commands_user_created", "user_id", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="SET NULL")
    )
    issued_by: Mapped[str] = mapped_column(String(320))
    persona: Mapped[str] = mapped_column(
        String(64), ForeignKey("role_personas.key", onupdate="CASCADE")
    )
    text: Mapped[str] = mapped_column(Text)
    # api | cli | web | email | voice
    source: Mapped[str] = mapped_column(String(16), default="api")
    execution_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agent_executions.execution_id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Worker(Base):
    """A process that runs executions (a ``jarvis worker``, or a server running them
    in-process); live while its heartbeat is fresh."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # in-process | taskiq
    kind: Mapped[str] = mapped_column(String(16))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None]


# The tables themselves, for the engine's hot paths (Core statements skip the ORM's
# bookkeeping, which costs more than the statement on SQLite).
executions_table = cast(Table, AgentExecution.__table__)
steps_table = cast(Table, ExecutionStep.__table__)
events_table = cast(Table, ExecutionEvent.__table__)
commands_table = cast(Table, Command.__table__)
workers_table = cast(Table, Worker.__table__)
