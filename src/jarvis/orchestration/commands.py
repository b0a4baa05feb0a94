"""What the API, the pages and the CLI do with executions, in one place: start one and
hand it to an engine, approve one and let it run on, retry one.

Callers pass the dispatcher in (``Dispatcher``: the in-process one, or Taskiq's); nothing
here reaches for the application. Rate limits and permissions are the callers' (they are
checked on the request, before this runs).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.core.identity import Principal
from jarvis.db.engine import Database
from jarvis.db.session import after_commit
from jarvis.kit.bus import EventBus
from jarvis.orchestration import service
from jarvis.orchestration.dispatcher import Dispatcher
from jarvis.orchestration.lifecycle import ExecutionStatus
from jarvis.orchestration.models import AgentExecution
from jarvis.orchestration.schemas import Decision, ExecutionCreate


def dispatch_after_commit(session: AsyncSession, dispatcher: Dispatcher, execution_id: str) -> None:
    """Hand the execution to an engine once the session's transaction has committed."""

    async def submit() -> None:
        await dispatcher.submit(execution_id)

    after_commit(session, submit)


async def start_execution(
    db: Database,
    data: ExecutionCreate,
    *,
    principal: Principal,
    bus: EventBus,
    dispatcher: Dispatcher,
    source: str = "api",
) -> AgentExecution:
    """Queue ``data`` as ``principal``'s execution (the persona rule applies), committed at
    once, and dispatch it: ``POST /api/agent-executions`` and the pages' command bar."""
    execution = await service.queue_execution(
        db, data, actor=principal.actor, principal=principal, bus=bus, source=source
    )
    await dispatcher.submit(execution.execution_id)
    return execution


async def approve_and_continue(
    session: AsyncSession,
    execution_id: str,
    decision: Decision,
    *,
    principal: Principal,
    bus: EventBus,
    dispatcher: Dispatcher,
) -> AgentExecution:
    """Approve the waiting step(s); once none waits, the execution runs on after commit
    (``POST .../approve`` and the execution page)."""
    execution = await service.approve_execution(
        session, bus, execution_id, decision, principal=principal, actor=principal.actor
    )
    if execution.status == ExecutionStatus.QUEUED:
        dispatch_after_commit(session, dispatcher, execution_id)
    return execution


async def retry_and_dispatch(
    session: AsyncSession,
    execution_id: str,
    *,
    principal: Principal,
    bus: EventBus,
    dispatcher: Dispatcher,
) -> AgentExecution:
    """Run a finished execution's command again as a new execution (``POST .../retry``)."""
    execution = await service.retry_execution(
        session, bus, execution_id, principal=principal, actor=principal.actor
    )
    dispatch_after_commit(session, dispatcher, execution.execution_id)
    return execution
