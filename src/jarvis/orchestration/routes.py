"""Execution routes: the seed's ``/api/agent-executions`` and the actions on one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from jarvis.auth.dependencies import limit_executions
from jarvis.core.guards import Authenticated, ExecutionsApprover, ExecutionsCreator
from jarvis.db.session import Db, DbSession
from jarvis.kit.schema import Limit, Offset, Page
from jarvis.orchestration import commands, service
from jarvis.orchestration.dependencies import Bus, DispatcherDep
from jarvis.orchestration.lifecycle import ExecutionStatus
from jarvis.orchestration.models import AgentExecution
from jarvis.orchestration.schemas import (
    Decision,
    ExecutionAccepted,
    ExecutionCreate,
    ExecutionOut,
    ExecutionSummary,
)

router = APIRouter(prefix="/api/agent-executions", tags=["executions"])

ExecutionId = Annotated[
    str, Path(min_length=1, max_length=36, description="The execution's id (a UUID)")
]


def _accepted(execution: AgentExecution, response: Response) -> ExecutionAccepted:
    response.headers["Location"] = f"/api/agent-executions/{execution.execution_id}"
    return ExecutionAccepted(execution_id=execution.execution_id, status=execution.status)


@router.post(
    "",
    response_model=ExecutionAccepted,
    status_code=202,
    summary="Run a command through the six layers",
)
async def create_execution(
    body: ExecutionCreate,
    principal: ExecutionsCreator,
    db: Db,
    bus: Bus,
    dispatcher: DispatcherDep,
    request: Request,
    response: Response,
) -> ExecutionAccepted:
    await limit_executions(request, principal)
    execution = await commands.start_execution(
        db, body, principal=principal, bus=bus, dispatcher=dispatcher
    )
    return _accepted(execution, response)


@router.get("", response_model=Page[ExecutionSummary], summary="List executions, newest first")
async def list_executions(
    principal: Authenticated,
    session: DbSession,
    status: Annotated[ExecutionStatus | None, Query()] = None,
    persona: Annotated[str | None, Query(max_length=64)] = None,
    agent_id: Annotated[int | None, Query(alias="agentId", ge=1, le=2**31 - 1)] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601)")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ExecutionSummary]:
    flt = service.ExecutionFilter(status=status, persona=persona, agent_id=agent_id, since=since)
    rows, total = await service.list_executions(
        session, flt, principal=principal, limit=limit, offset=offset
    )
    return Page[ExecutionSummary](
        items=[ExecutionSummary.model_validate(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{execution_id}", response_model=ExecutionOut, summary="One execution with its steps")
async def get_execution(
    execution_id: ExecutionId, principal: Authenticated, session: DbSession
) -> ExecutionOut:
    return await service.execution_detail(session, execution_id, principal=principal)


@router.post(
    "/{execution_id}/cancel",
    response_model=ExecutionSummary,
    summary="Cancel an execution (202 while the running agents stop)",
    responses={202: {"description": "Cancellation requested; the engine stops the agents"}},
)
async def cancel_execution(
    execution_id: ExecutionId,
    principal: ExecutionsCreator,
    session: DbSession,
    bus: Bus,
    response: Response,
) -> ExecutionSummary:
    execution = await service.cancel_execution(
        session, bus, execution_id, principal=principal, actor=principal.actor
    )
    if execution.status == ExecutionStatus.RUNNING:
        response.status_code = 202
    return ExecutionSummary.model_validate(execution)


@router.post(
    "/{execution_id}/retry",
    response_model=ExecutionAccepted,
    status_code=202,
    summary="Run a finished execution's command again, as a new execution",
)
async def retry_execution(
    execution_id: ExecutionId,
    principal: ExecutionsCreator,
    session: DbSession,
    bus: Bus,
    dispatcher: DispatcherDep,
    response: Response,
) -> ExecutionAccepted:
    execution = await commands.retry_and_dispatch(
        session, execution_id, principal=principal, bus=bus, dispatcher=dispatcher
    )
    return _accepted(execution, response)


@router.post(
    "/{execution_id}/approve",
    response_model=ExecutionSummary,
    summary="Approve the output awaiting a human decision; the execution continues",
)
async def approve_execution(
    execution_id: ExecutionId,
    principal: ExecutionsApprover,
    session: DbSession,
    bus: Bus,
    dispatcher: DispatcherDep,
    body: Decision | None = None,
) -> ExecutionSummary:
    execution = await commands.approve_and_continue(
        session,
        execution_id,
        body or Decision(),
        principal=principal,
        bus=bus,
        dispatcher=dispatcher,
    )
    return ExecutionSummary.model_validate(execution)


@router.post(
    "/{execution_id}/reject",
    response_model=ExecutionSummary,
    summary="Reject the output awaiting a human decision; the execution ends rejected",
)
async def reject_execution(
    execution_id: ExecutionId,
    principal: ExecutionsApprover,
    session: DbSession,
    bus: Bus,
    body: Decision | None = None,
) -> ExecutionSummary:
    execution = await service.reject_execution(
        session,
        bus,
        execution_id,
        body or Decision(),
        principal=principal,
        actor=principal.actor,
    )
    return ExecutionSummary.model_validate(execution)
