"""Executions as users see them: create, list, show, cancel, retry, approve, reject.

The engine runs executions; this module records what people ask of them. Decisions on an
execution lock its row first, so a decision and the engine (or two decisions) cannot
interleave; anything published waits for the commit. Every statement is the store's
(``orchestration.store``); every status change is the lifecycle's
(``orchestration.lifecycle``).

The rules: a caller with ``executions:create`` runs commands as their own persona (admins
as any persona); a user sees and decides on their own executions, an admin on every
execution. A ``principal`` of None is a trusted caller (the CLI, the system).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.analytics.service import record_activity
from jarvis.audit.service import record_audit
from jarvis.core.identity import Actor, Principal
from jarvis.core.layers import LAYER_ORDER, Layer
from jarvis.db.engine import Database
from jarvis.db.session import after_commit, unit_of_work
from jarvis.errors import Conflict, Forbidden, NotFound
from jarvis.kit.bus import EventBus
from jarvis.kit.clock import utcnow
from jarvis.orchestration.events import (
    CONTROL_CHANNEL,
    Event,
    ExecutionCancelled,
    ExecutionQueued,
    ExecutionRejected,
    StepApproved,
    StepRejected,
)
from jarvis.orchestration.lifecycle import (
    AWAITING_PERSON,
    CANCELLABLE,
    RETRYABLE,
    STEP_OPEN,
    ExecutionStatus,
    StepStatus,
)
from jarvis.orchestration.models import AgentExecution, ExecutionEvent, ExecutionStep
from jarvis.orchestration.recorder import append_events, publish_events
from jarvis.orchestration.schemas import (
    Decision,
    ExecutionCreate,
    ExecutionOut,
    ExecutionSummary,
    LayerSteps,
    StepOut,
)
from jarvis.orchestration.store import events as event_store
from jarvis.orchestration.store import executions as execution_store
from jarvis.orchestration.store import steps as step_store
from jarvis.personas.service import persona_registered, require_persona

X = ExecutionStatus
ExecutionFilter = execution_store.Filter
# Where the command that asks for an execution came from (``commands.source``).
SOURCES = ("api", "cli", "web", "email", "voice")


def _may_see(execution: AgentExecution, principal: Principal | None) -> bool:
    return principal is None or principal.is_admin or execution.created_by_id == principal.user_id


# --- creating -----------------------------------------------------------------------------


def _new(
    data: ExecutionCreate, actor: Actor, *, source: str, retry_of: str | None
) -> execution_store.NewExecution:
    queued = ExecutionQueued(persona=data.persona, command=data.command, retry_of=retry_of)
    return execution_store.NewExecution(
        execution_id=str(uuid.uuid4()),
        persona=data.persona,
        command=data.command,
        workflow_id=data.workflow_id,
        actor=actor,
        source=source,
        retry_of=retry_of,
        created_at=utcnow(),
        queued=queued.body(),
    )


def _acting_for_another(data: ExecutionCreate, principal: Principal | None) -> bool:
    return principal is not None and not principal.is_admin and data.persona != principal.persona


def _forbidden(data: ExecutionCreate, principal: Principal) -> Forbidden:
    return Forbidden(
        f"{principal.email} acts as '{principal.persona}' and cannot run commands as "
        f"'{data.persona}'; only admins may act as another persona"
    )


async def _persona_gone(session: AsyncSession, persona: str) -> Conflict:
    """Why a persona-checked insert stored nothing: 422 when it is unknown (raised)."""
    await require_persona(session, persona, loc=("persona",))
    return Conflict(f"persona '{persona}' was removed while the command was queued")


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
    """Queue a command as a new execution (and record the command) in the caller's
    transaction; the caller dispatches it after commit."""
    if principal is not None and _acting_for_another(data, principal):
        await require_persona(session, data.persona, loc=("persona",))
        raise _forbidden(data, principal)
    new = _new(data, actor, source=source, retry_of=retry_of)
    known = persona_registered(data.persona)
    stored = await session.run_sync(
        lambda sync: execution_store.create(sync.connection(), new, persona_known=known)
    )
    if stored is None:
        raise await _persona_gone(session, data.persona)
    if bus is not None:

        async def publish() -> None:
            await publish_events(bus, stored)

        after_commit(session, publish)
    return AgentExecution(**new.row())


async def queue_execution(
    db: Database,
    data: ExecutionCreate,
    *,
    actor: Actor,
    principal: Principal | None,
    bus: EventBus | None,
    source: str = "api",
) -> AgentExecution:
    """``create_execution`` in a transaction of its own, committed when this returns: one
    write (on a SQLite file, one hand-off to the writer thread), since starting an
    execution is on every command's path. Publishes ``execution_queued``."""
    if principal is not None and _acting_for_another(data, principal):
        async with unit_of_work(db, write=False) as session:
            await require_persona(session, data.persona, loc=("persona",))
        raise _forbidden(data, principal)
    new = _new(data, actor, source=source, retry_of=None)
    known = persona_registered(data.persona)
    stored = await db.run_write(
        lambda connection: execution_store.create(connection, new, persona_known=known)
    )
    if stored is None:
        async with unit_of_work(db, write=False) as session:
            raise await _persona_gone(session, data.persona)
    if bus is not None:
        await publish_events(bus, stored)
    return AgentExecution(**new.row())


# --- reading ------------------------------------------------------------------------------


async def get_execution(
    session: AsyncSession,
    execution_id: str,
    *,
    principal: Principal | None = None,
    for_update: bool = False,
) -> AgentExecution:
    """The execution; 404 when there is none, 403 when it is someone else's."""
    execution = await execution_store.get(session, execution_id, for_update=for_update)
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
    return await step_store.steps_of(session, execution_id)


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
    return await event_store.events_of(session, execution_id, after_seq=after_seq, limit=limit)


async def list_executions(
    session: AsyncSession,
    flt: ExecutionFilter,
    *,
    principal: Principal | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[AgentExecution], int]:
    """Newest first; a non-admin sees only their own executions."""
    if principal is not None and not principal.is_admin:
        flt = ExecutionFilter(
            status=flt.status,
            persona=flt.persona,
            agent_id=flt.agent_id,
            since=flt.since,
            created_by_id=principal.user_id,
        )
    return await execution_store.page(session, flt, limit=limit, offset=offset)


async def queued_executions(session: AsyncSession, *, limit: int = 1000) -> list[str]:
    """Executions waiting to run, oldest first (picked up when an engine starts)."""
    return await execution_store.queued_ids(session, limit=limit)


async def last_event_seq(session: AsyncSession, execution_id: str) -> int:
    """The highest stored event number of the execution (0 before any): a live view read
    after it replays from there, so it misses nothing."""
    return await event_store.last_seq(session, execution_id)


async def step_progress(
    session: AsyncSession, execution_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Per execution: (steps completed, steps in all), for a page of a list."""
    return await step_store.progress(session, execution_ids)


async def completed_layers(session: AsyncSession, execution_id: str) -> dict[str, str]:
    """Layer -> how it completed, from the execution's ``layer_completed`` events."""
    return await event_store.completed_layers(session, execution_id)


# --- people's decisions -------------------------------------------------------------------


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
    if execution.status not in CANCELLABLE:
        raise Conflict(
            f"execution {execution_id} is already {execution.status}; only "
            f"{_either(CANCELLABLE)} executions can be cancelled"
        )
    now = utcnow()
    if execution.status == X.RUNNING:
        execution_store.request_cancel(execution, now=now)

        async def tell_engines() -> None:
            await bus.publish(CONTROL_CHANNEL, {"type": "cancel", "executionId": execution_id})

        after_commit(session, tell_engines)
    else:
        why = f"cancelled by {actor.label}"
        await step_store.end_open_async(
            session, execution_id, STEP_OPEN, StepStatus.CANCELLED, error=why, now=now
        )
        execution_store.end_by_person(
            execution, X.CANCELLED, now=now, error=why, error_code="cancelled"
        )
        ended = ExecutionCancelled(status="cancelled", error=why)
        await append_events(session, bus, execution_id, [ended.body()])
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


def _either(states: frozenset[ExecutionStatus]) -> str:
    """``queued, running or awaiting_approval``, in the lifecycle's order."""
    names = [s.value for s in ExecutionStatus if s in states]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


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
    if original.status not in RETRYABLE:
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
    if execution.status not in AWAITING_PERSON:
        raise Conflict(
            f"execution {execution.execution_id} is {execution.status}, not awaiting_approval"
        )
    steps = await step_store.awaiting(session, execution.execution_id)
    if step_id is None:
        return steps
    chosen = [s for s in steps if s.id == step_id]
    if not chosen:
        raise Conflict(f"step {step_id} of execution {execution.execution_id} awaits no decision")
    return chosen


def _decided(
    steps: Sequence[ExecutionStep],
    model: type[StepApproved] | type[StepRejected],
    actor: Actor,
    comment: str | None,
) -> list[Event]:
    """The events that say a person decided on each step."""
    return [
        model(
            step_id=step.id,
            agent_id=step.agent_id,
            agent_name=step.agent_name,
            layer=Layer(step.layer),
            decided_by=actor.label,
            comment=comment,
        ).body()
        for step in steps
    ]


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
    step_store.decide(
        steps, StepStatus.COMPLETED, decided_by=actor.label, comment=decision.comment, now=utcnow()
    )
    events = _decided(steps, StepApproved, actor, decision.comment)
    await session.flush()
    if not await step_store.count_awaiting(session, execution_id):
        execution_store.check_move(execution, X.QUEUED)
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
    step_store.decide(
        steps, StepStatus.REJECTED, decided_by=actor.label, comment=decision.comment, now=now
    )
    events = _decided(steps, StepRejected, actor, decision.comment)
    await step_store.end_open_async(
        session,
        execution_id,
        {StepStatus.AWAITING_APPROVAL},
        StepStatus.CANCELLED,
        error="the execution was rejected",
        now=now,
        except_ids=[s.id for s in steps],
    )
    reason = f"rejected by {actor.label}" + (f": {decision.comment}" if decision.comment else "")
    execution_store.end_by_person(
        execution, X.REJECTED, now=now, error=reason, error_code="rejected"
    )
    events.append(ExecutionRejected(status="rejected", error=reason).body())
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
