"""Statements on ``agent_executions`` (and ``commands``): create, read, list, and every
change of an execution's status, each guarded by the lifecycle.

A status change is an ``UPDATE ... WHERE status IN (<the states the target may be reached
from>)``; when no row matched, the execution's current status says why, and the lifecycle
raises ``IllegalTransition`` (or ``NotFound``). Changes made through the ORM (a person's
decision on a row the request has locked) check the lifecycle before they set the status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.analytics.service import add_activity
from jarvis.core.identity import Actor
from jarvis.errors import NotFound
from jarvis.orchestration.events import Event
from jarvis.orchestration.lifecycle import EXECUTION, ExecutionStatus
from jarvis.orchestration.models import (
    AgentExecution,
    ExecutionStep,
    commands_table,
    executions_table,
)
from jarvis.orchestration.store import events as event_rows

T = executions_table
X = ExecutionStatus


# --- guarded moves --------------------------------------------------------------------------


def _status_of(connection: Connection, execution_id: str) -> str | None:
    found: str | None = connection.scalar(
        select(T.c.status).where(T.c.execution_id == execution_id)
    )
    return found


def refuse(execution_id: str, current: str | None, target: ExecutionStatus) -> None:
    """Raise why ``execution_id`` (now ``current``) did not move to ``target``."""
    if current is None:
        raise NotFound(f"no execution with id {execution_id}")
    EXECUTION.check(current, target, subject=f"execution {execution_id}")


def move(
    connection: Connection,
    execution_id: str,
    target: ExecutionStatus,
    values: dict[str, Any],
    *,
    where: Sequence[ColumnElement[bool]] = (),
) -> bool:
    """Set the execution's status to ``target`` (with ``values``) if the lifecycle allows
    it from the status it is in; True when it moved. With ``where``, a row the lifecycle
    allows but the condition excludes (another engine's lease) is not moved: False.
    Raises ``IllegalTransition`` when the lifecycle does not allow the move."""
    result = connection.execute(
        update(T)
        .where(
            T.c.execution_id == execution_id,
            T.c.status.in_(sorted(EXECUTION.sources(target))),
            *where,
        )
        .values(status=target.value, **values)
    )
    if result.rowcount == 1:
        return True
    current = _status_of(connection, execution_id)
    refuse(execution_id, current, target)
    if not where:  # pragma: no cover - allowed and unconditional, yet not moved
        raise RuntimeError(f"execution {execution_id} did not move to {target}")
    return False


def check_move(execution: AgentExecution, target: ExecutionStatus) -> None:
    """Set a locked row's status (ORM, flushed with the session) if the lifecycle allows."""
    EXECUTION.check(execution.status, target, subject=f"execution {execution.execution_id}")
    execution.status = target.value


# --- creating -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewExecution:
    """Everything stored when a command is queued: the execution, the command, the
    activity and the ``execution_queued`` event."""

    execution_id: str
    persona: str
    command: str
    workflow_id: int | None
    actor: Actor
    source: str
    retry_of: str | None
    created_at: datetime
    queued: Event

    def row(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "persona": self.persona,
            "command": self.command,
            "workflow_id": self.workflow_id,
            "status": EXECUTION_INITIAL,
            "created_by": self.actor.label,
            "created_by_id": self.actor.user_id,
            "retry_of": self.retry_of,
            "created_at": self.created_at,
            "layers_done": 0,
        }


(EXECUTION_INITIAL,) = (state.value for state in EXECUTION.initial)


def create(
    connection: Connection, new: NewExecution, *, persona_known: ColumnElement[bool]
) -> list[Event] | None:
    """Store a new execution if ``persona_known`` (the persona is registered, checked in
    the same statement); its stored events, or None when the persona is not registered
    (nothing is stored)."""
    values = new.row()
    columns = list(values)
    known = select(*(literal(values[c], T.c[c].type) for c in columns)).where(persona_known)
    stored = connection.execute(insert(T).from_select(columns, known))
    if stored.rowcount != 1:
        return None
    connection.execute(
        insert(commands_table),
        {
            "user_id": new.actor.user_id,
            "issued_by": new.actor.label,
            "persona": new.persona,
            "text": new.command,
            "source": new.source,
            "execution_id": new.execution_id,
            "created_at": new.created_at,
        },
    )
    add_activity(
        connection,
        type="command.issued",
        title=new.command,
        persona=new.persona,
        user_id=new.actor.user_id,
        actor=new.actor.label,
        execution_id=new.execution_id,
    )
    return event_rows.store(connection, new.execution_id, [new.queued], after=0)


# --- reading --------------------------------------------------------------------------------


async def get(
    session: AsyncSession, execution_id: str, *, for_update: bool = False
) -> AgentExecution | None:
    """The execution (its row locked until the transaction ends with ``for_update``)."""
    query = select(AgentExecution).where(AgentExecution.execution_id == execution_id)
    if for_update:
        query = query.with_for_update()
    found: AgentExecution | None = await session.scalar(query)
    return found


async def status(session: AsyncSession, execution_id: str) -> str | None:
    found: str | None = await session.scalar(
        select(AgentExecution.status).where(AgentExecution.execution_id == execution_id)
    )
    return found


@dataclass(frozen=True)
class Filter:
    status: str | None = None
    persona: str | None = None
    agent_id: int | None = None
    since: datetime | None = None
    # Only the executions this user created (None: everyone's).
    created_by_id: int | None = None


async def page(
    session: AsyncSession, flt: Filter, *, limit: int, offset: int
) -> tuple[Sequence[AgentExecution], int]:
    """Newest first, and how many match in all."""
    conditions: list[Any] = []
    if flt.created_by_id is not None:
        conditions.append(AgentExecution.created_by_id == flt.created_by_id)
    if flt.status is not None:
        conditions.append(AgentExecution.status == flt.status)
    if flt.persona is not None:
        conditions.append(AgentExecution.persona == flt.persona)
    if flt.since is not None:
        conditions.append(AgentExecution.created_at >= flt.since)
    if flt.agent_id is not None:
        conditions.append(
            exists().where(
                ExecutionStep.execution_id == AgentExecution.execution_id,
                ExecutionStep.agent_id == flt.agent_id,
            )
        )
    total = await session.scalar(
        select(func.count()).select_from(AgentExecution).where(*conditions)
    )
    rows = await session.scalars(
        select(AgentExecution)
        .where(*conditions)
        .order_by(AgentExecution.created_at.desc(), AgentExecution.execution_id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total or 0


async def queued_ids(session: AsyncSession, *, limit: int = 1000) -> list[str]:
    """Executions waiting to run, oldest first (picked up when an engine starts)."""
    rows = await session.scalars(
        select(AgentExecution.execution_id)
        .where(AgentExecution.status == X.QUEUED.value)
        .order_by(AgentExecution.created_at)
        .limit(limit)
    )
    return list(rows.all())


# --- the engine's changes (synchronous, inside run_write / the Recorder) ---------------------


def pause(connection: Connection, execution_id: str, *, layers_done: int) -> None:
    """running -> awaiting_approval: a step's output waits for a person."""
    move(connection, execution_id, X.AWAITING_APPROVAL, {"layers_done": layers_done})


def store_plan(
    connection: Connection, execution_id: str, plan: dict[str, Any], *, layers_done: int
) -> datetime | None:
    """Store the Meta Brain's plan as soon as it is decided; return ``cancel_requested_at``
    (a backstop for a lost cancel message, read in the same trip)."""
    requested: datetime | None = connection.scalar(
        update(T)
        .where(T.c.execution_id == execution_id)
        .values(plan=plan, layers_done=layers_done)
        .returning(T.c.cancel_requested_at)
    )
    return requested


def cancel_requested_at(connection: Connection, execution_id: str) -> datetime | None:
    """When a cancellation was asked for through the database (None: it was not)."""
    requested: datetime | None = connection.scalar(
        select(T.c.cancel_requested_at).where(T.c.execution_id == execution_id)
    )
    return requested


def finish(
    connection: Connection,
    execution_id: str,
    target: ExecutionStatus,
    *,
    result: dict[str, Any] | None,
    error: str | None,
    error_code: str | None,
    completed_at: datetime,
    duration_ms: int,
    layers_done: int,
) -> None:
    """running -> completed | failed | cancelled, as the engine ends a run."""
    move(
        connection,
        execution_id,
        target,
        {
            "result": result,
            "error": error,
            "error_code": error_code,
            "completed_at": completed_at,
            "duration_ms": duration_ms,
            "layers_done": layers_done,
        },
    )


def fail_lost(
    connection: Connection, execution_id: str, *, error: str, now: datetime, duration_ms: int
) -> None:
    """running -> failed (``worker_lost``): its engines were lost too often."""
    move(
        connection,
        execution_id,
        X.FAILED,
        {
            "error": error,
            "error_code": "worker_lost",
            "completed_at": now,
            "duration_ms": duration_ms,
            "lease_owner": None,
            "lease_expires_at": None,
        },
    )


def set_progress(connection: Connection, execution_id: str, *, layers_done: int) -> None:
    """How many layers have completed (no status change)."""
    connection.execute(
        update(T).where(T.c.execution_id == execution_id).values(layers_done=layers_done)
    )


# --- people's decisions (async, the row locked by the caller) -------------------------------


def request_cancel(execution: AgentExecution, *, now: datetime) -> None:
    """Ask the engine running it to stop (the status stays ``running``)."""
    if execution.cancel_requested_at is None:
        execution.cancel_requested_at = now


def end_by_person(
    execution: AgentExecution,
    target: ExecutionStatus,
    *,
    now: datetime,
    error: str,
    error_code: str,
) -> None:
    """queued | awaiting_approval -> cancelled, or awaiting_approval -> rejected."""
    check_move(execution, target)
    if target is X.CANCELLED:
        execution.cancel_requested_at = now
    execution.completed_at = now
    execution.duration_ms = (
        int((now - execution.started_at).total_seconds() * 1000)
        if execution.started_at is not None
        else None
    )
    execution.error = error
    execution.error_code = error_code
