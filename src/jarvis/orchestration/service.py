"""Executions as users see them: create, list, show, cancel, retry, approve, reject.

The engine runs executions; this module records what people ask of them. Decisions on an
execution lock its row first, so a decision and the engine (or two decisions) cannot
interleave; anything published waits for the commit.

Until named permissions arrive, the rules are: anyone signed in may run commands as their
own persona (admins as any persona); a user sees and decides on their own executions,
an admin on every execution.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.analytics.service import add_activity, record_activity
from jarvis.audit.service import record_audit
from jarvis.core.identity import Actor, Principal
from jarvis.core.layers import LAYER_ORDER
from jarvis.db.session import after_commit
from jarvis.errors import Conflict, Forbidden, NotFound
from jarvis.kit.bus import EventBus
from jarvis.kit.clock import utcnow
from jarvis.orchestration.events import CONTROL_CHANNEL, event, step_fields
from jarvis.orchestration.models import (
    FINAL_STATUSES,
    AgentExecution,
    ExecutionEvent,
    ExecutionStep,
    commands_table,
    executions_table,
)
from jarvis.orchestration.recorder import append_events
from jarvis.orchestration.schemas import (
    Decision,
    ExecutionCreate,
    ExecutionOut,
    ExecutionSummary,
    LayerSteps,
    StepOut,
)
from jarvis.personas.service import persona_registered, require_persona


@dataclass(frozen=True)
class ExecutionFilter:
    status: str | None = None
    persona: str | None = None
    agent_id: int | None = None
    since: datetime | None = None


def _may_see(execution: AgentExecution, principal: Principal | None) -> bool:
    return principal is None or principal.is_admin or execution.created_by_id == principal.user_id


async def create_execution(
    session: AsyncSession,
    data: ExecutionCreate,
    *,
    actor: Actor,
    principal: Principal | None = None,
    bus: EventBus | None = None,
    source: str = "api",
    retry_of: str | None = None,
) -> AgentExecution:
    """Queue a command as a new execution (and record the command); the caller dispatches
    it after commit. ``principal`` None means a trusted caller (CLI, system)."""
    if principal is not None and not principal.is_admin and data.persona != principal.persona:
        await require_persona(session, data.persona, loc=("body", "persona"))
        raise Forbidden(
            f"{principal.email} acts as '{principal.persona}' and cannot run commands as "
            f"'{data.persona}'; only admins may act as another persona"
        )
    now = utcnow()
    values: dict[str, Any] = {
        "execution_id": str(uuid.uuid4()),
        "persona": data.persona,
        "command": data.command,
        "workflow_id": data.workflow_id,
        "status": "queued",
        "created_by": actor.label,
        "created_by_id": actor.user_id,
        "retry_of": retry_of,
        "created_at": now,
        "layers_done": 0,
    }
    # Core inserts on the session's connection: creating an execution is on every
    # command's path, and the ORM's unit of work would add nothing here.
    connection = await session.connection()
    # Inserted only when the persona is registered: the check costs no trip of its own.
    columns = list(values)
    known = select(*(literal(values[c], executions_table.c[c].type) for c in columns)).where(
        persona_registered(data.persona)
    )
    stored = await connection.execute(insert(executions_table).from_select(columns, known))
    if stored.rowcount != 1:
        await require_persona(session, data.persona, loc=("body", "persona"))
        raise Conflict(f"persona '{data.persona}' was removed while the command was queued")
    await connection.execute(
        insert(commands_table),
        {
            "user_id": actor.user_id,
            "issued_by": actor.label,
            "persona": data.persona,
            "text": data.command,
            "source": source,
            "execution_id": values["execution_id"],
            "created_at": now,
        },
    )
    await connection.run_sync(
        lambda sync: add_activity(
            sync,
            type="command.issued",
            title=data.command,
            persona=data.persona,
            user_id=actor.user_id,
            actor=actor.label,
            execution_id=values["execution_id"],
        )
    )
    execution = AgentExecution(**values)
    queued = event("execution_queued", persona=data.persona, command=data.command, retryOf=retry_of)
    await append_events(session, bus, execution.execution_id, [queued], first=True)
    return execution


async def get_execution(
    session: AsyncSession,
    execution_id: str,
    *,
    principal: Principal | None = None,
    for_update: bool = False,
) -> AgentExecution:
    """The execution; 404 when there is none, 403 when it is someone else's."""
    query = select(AgentExecution).where(AgentExecution.execution_id == execution_id)
    if for_update:
        query = query.with_for_update()
    execution = await session.scalar(query)
    if execution is None:
        raise NotFound(f"no execution with id {execution_id}")
    if not _may_see(execution, principal):
        raise Forbidden(
            f"execution {execution_id} belongs to another user; only its creator and admins "
            "may see it or act on it"
        )
    return execution


async def steps_of(session: AsyncSession, execution_id: str) -> Sequence[ExecutionStep]:
    """The execution's steps in layer order, then in their order within the layer."""
    rows = (
        await session.scalars(
            select(ExecutionStep)
            .where(ExecutionStep.execution_id == execution_id)
            .order_by(ExecutionStep.id)
        )
    ).all()
    rank = {layer.value: index for index, layer in enumerate(LAYER_ORDER)}
    return sorted(rows, key=lambda s: (rank.get(s.layer, len(rank)), s.position, s.id))


async def execution_detail(
    session: AsyncSession, execution_id: str, *, principal: Principal | None = None
) -> ExecutionOut:
    """The execution with its plan, result and steps (also grouped by layer)."""
    execution = await get_execution(session, execution_id, principal=principal)
    steps = [StepOut.model_validate(s) for s in await steps_of(session, execution_id)]
    layers = [
        LayerSteps(layer=layer.value, steps=[s for s in steps if s.layer == layer.value])
        for layer in LAYER_ORDER
    ]
    summary = ExecutionSummary.model_validate(execution)
    return ExecutionOut(
        **summary.model_dump(),
        plan=execution.plan,
        result=execution.result,
        layers_done=execution.layers_done,
        steps=steps,
        layers=layers,
    )


async def events_of(
    session: AsyncSession, execution_id: str, *, after_seq: int, limit: int
) -> Sequence[ExecutionEvent]:
    """Stored events after ``after_seq``, oldest first."""
    rows = await session.scalars(
        select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > after_seq)
        .order_by(ExecutionEvent.seq)
        .limit(limit)
    )
    return rows.all()


async def list_executions(
    session: AsyncSession,
    flt: ExecutionFilter,
    *,
    principal: Principal | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[AgentExecution], int]:
    """Newest first; a non-admin sees only their own executions."""
    conditions: list[Any] = []
    if principal is not None and not principal.is_admin:
        conditions.append(AgentExecution.created_by_id == principal.user_id)
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


def _duration_ms(execution: AgentExecution, now: datetime) -> int | None:
    if execution.started_at is None:
        return None
    return int((now - execution.started_at).total_seconds() * 1000)


async def cancel_execution(
    session: AsyncSession,
    bus: EventBus,
    execution_id: str,
    *,
    principal: Principal | None,
    actor: Actor,
) -> AgentExecution:
    """Cancel now (queued or paused) or ask the engine running it to stop (running)."""
    execution = await get_execution(session, execution_id, principal=principal, for_update=True)
    if execution.status in FINAL_STATUSES:
        raise Conflict(
            f"execution {execution_id} is already {execution.status}; only queued, running "
            "or awaiting_approval executions can be cancelled"
        )
    now = utcnow()
    if execution.status == "running":
        if execution.cancel_requested_at is None:
            execution.cancel_requested_at = now

        async def tell_engines() -> None:
            await bus.publish(CONTROL_CHANNEL, {"type": "cancel", "executionId": execution_id})

        after_commit(session, tell_engines)
    else:
        await session.execute(
            update(ExecutionStep)
            .where(
                ExecutionStep.execution_id == execution_id,
                ExecutionStep.status.in_(("pending", "running", "awaiting_approval")),
            )
            .values(status="cancelled", error=f"cancelled by {actor.label}", completed_at=now)
        )
        execution.status = "cancelled"
        execution.cancel_requested_at = now
        execution.completed_at = now
        execution.duration_ms = _duration_ms(execution, now)
        execution.error = f"cancelled by {actor.label}"
        execution.error_code = "cancelled"
        await append_events(
            session,
            bus,
            execution_id,
            [event("execution_cancelled", status="cancelled", error=execution.error)],
        )
        await record_activity(
            session,
            type="execution.cancelled",
            title=f"Cancelled: {execution.command[:200]}",
            persona=execution.persona,
            user_id=execution.created_by_id,
            actor=actor.label,
            execution_id=execution_id,
        )
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="execution.cancel",
        entity_type="agent_execution",
        entity_id=execution_id,
        after={"status": execution.status, "cancelRequested": True},
    )
    return execution


async def retry_execution(
    session: AsyncSession,
    bus: EventBus,
    execution_id: str,
    *,
    principal: Principal | None,
    actor: Actor,
) -> AgentExecution:
    """A new execution of a finished execution's command, persona and workflow."""
    original = await get_execution(session, execution_id, principal=principal)
    if original.status not in FINAL_STATUSES:
        raise Conflict(
            f"execution {execution_id} is still {original.status}; retry it once it has ended"
        )
    data = ExecutionCreate(
        command=original.command, persona=original.persona, workflow_id=original.workflow_id
    )
    return await create_execution(
        session, data, actor=actor, principal=principal, bus=bus, retry_of=execution_id
    )


async def _awaiting_steps(
    session: AsyncSession, execution: AgentExecution, step_id: int | None
) -> list[ExecutionStep]:
    if execution.status != "awaiting_approval":
        raise Conflict(
            f"execution {execution.execution_id} is {execution.status}, not awaiting_approval"
        )
    steps = (
        await session.scalars(
            select(ExecutionStep).where(
                ExecutionStep.execution_id == execution.execution_id,
                ExecutionStep.status == "awaiting_approval",
            )
        )
    ).all()
    if step_id is None:
        return list(steps)
    chosen = [s for s in steps if s.id == step_id]
    if not chosen:
        raise Conflict(f"step {step_id} of execution {execution.execution_id} awaits no decision")
    return chosen


def _decide(
    steps: Sequence[ExecutionStep],
    status: str,
    event_type: str,
    actor: Actor,
    comment: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Record a person's decision on each step; the events that say so."""
    events = []
    for step in steps:
        step.status = status
        step.decided_by = actor.label
        step.decision_comment = comment
        step.decided_at = now
        events.append(
            event(
                event_type,
                **step_fields(step.id, step.agent_id, step.agent_name, step.layer),
                decidedBy=actor.label,
                comment=comment,
            )
        )
    return events


async def approve_execution(
    session: AsyncSession,
    bus: EventBus,
    execution_id: str,
    decision: Decision,
    *,
    principal: Principal | None,
    actor: Actor,
) -> AgentExecution:
    """Approve the proposed output of the awaiting step(s); when none awaits any more the
    execution is queued again (the caller dispatches it after commit)."""
    execution = await get_execution(session, execution_id, principal=principal, for_update=True)
    steps = await _awaiting_steps(session, execution, decision.step_id)
    events = _decide(steps, "completed", "step_approved", actor, decision.comment, utcnow())
    await session.flush()
    remaining = await session.scalar(
        select(func.count())
        .select_from(ExecutionStep)
        .where(
            ExecutionStep.execution_id == execution_id,
            ExecutionStep.status == "awaiting_approval",
        )
    )
    if not remaining:
        execution.status = "queued"
    await append_events(session, bus, execution_id, events)
    await _record_decision(session, execution, steps, actor, "approve", decision.comment)
    return execution


async def reject_execution(
    session: AsyncSession,
    bus: EventBus,
    execution_id: str,
    decision: Decision,
    *,
    principal: Principal | None,
    actor: Actor,
) -> AgentExecution:
    """Reject the proposed output: the execution ends ``rejected``."""
    execution = await get_execution(session, execution_id, principal=principal, for_update=True)
    steps = await _awaiting_steps(session, execution, decision.step_id)
    now = utcnow()
    events = _decide(steps, "rejected", "step_rejected", actor, decision.comment, now)
    await session.execute(
        update(ExecutionStep)
        .where(
            ExecutionStep.execution_id == execution_id,
            ExecutionStep.status == "awaiting_approval",
            ExecutionStep.id.not_in([s.id for s in steps]),
        )
        .values(status="cancelled", error="the execution was rejected", completed_at=now)
    )
    reason = f"rejected by {actor.label}" + (f": {decision.comment}" if decision.comment else "")
    execution.status = "rejected"
    execution.completed_at = now
    execution.duration_ms = _duration_ms(execution, now)
    execution.error = reason
    execution.error_code = "rejected"
    events.append(event("execution_rejected", status="rejected", error=reason))
    await session.flush()
    await append_events(session, bus, execution_id, events)
    await record_activity(
        session,
        type="execution.rejected",
        title=f"Rejected: {execution.command[:200]}",
        persona=execution.persona,
        user_id=execution.created_by_id,
        actor=actor.label,
        execution_id=execution_id,
        detail={"comment": decision.comment},
    )
    await _record_decision(session, execution, steps, actor, "reject", decision.comment)
    return execution


async def _record_decision(
    session: AsyncSession,
    execution: AgentExecution,
    steps: Sequence[ExecutionStep],
    actor: Actor,
    verb: str,
    comment: str | None,
) -> None:
    await record_audit(
        session,
        actor=actor,
        action=f"execution.{verb}",
        entity_type="agent_execution",
        entity_id=execution.execution_id,
        after={
            "status": execution.status,
            "steps": [
                {"stepId": s.id, "agentId": s.agent_id, "agentName": s.agent_name} for s in steps
            ],
            "comment": comment,
        },
    )


async def queued_executions(session: AsyncSession, *, limit: int = 1000) -> list[str]:
    """Executions waiting to run, oldest first (picked up when an engine starts)."""
    rows = await session.scalars(
        select(AgentExecution.execution_id)
        .where(AgentExecution.status == "queued")
        .order_by(AgentExecution.created_at)
        .limit(limit)
    )
    return list(rows.all())


async def last_event_seq(session: AsyncSession, execution_id: str) -> int:
    """The highest stored event number of the execution (0 before any): a live view read
    after it replays from there, so it misses nothing."""
    seq = await session.scalar(
        select(func.max(ExecutionEvent.seq)).where(ExecutionEvent.execution_id == execution_id)
    )
    return int(seq or 0)


async def step_progress(
    session: AsyncSession, execution_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Per execution: (steps completed, steps in all), for a page of a list."""
    if not execution_ids:
        return {}
    done = func.sum(case((ExecutionStep.status == "completed", 1), else_=0))
    rows = await session.execute(
        select(ExecutionStep.execution_id, done, func.count())
        .where(ExecutionStep.execution_id.in_(execution_ids))
        .group_by(ExecutionStep.execution_id)
    )
    return {execution_id: (int(d or 0), int(n)) for execution_id, d, n in rows.all()}


async def completed_layers(session: AsyncSession, execution_id: str) -> dict[str, str]:
    """Layer -> how it completed (``completed`` or ``completed_with_failures``), from the
    execution's ``layer_completed`` events (the row's ``layers_done`` is stored only now
    and then while it runs)."""
    payloads = await session.scalars(
        select(ExecutionEvent.payload).where(
            ExecutionEvent.execution_id == execution_id,
            ExecutionEvent.type == "layer_completed",
        )
    )
    return {
        str(p.get("layer")): str(p.get("status") or "completed")
        for p in payloads.all()
        if isinstance(p, dict)
    }
