"""Execution events over HTTP: ``GET /api/agent-executions/{id}/events``, the stored events
as JSON (replay) or, with ``Accept: text/event-stream``, a live stream (``sse.py``).

Realtime ranks above orchestration: it serves orchestration's events, it does not define
them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response

from jarvis.core.guards import Authenticated
from jarvis.db.session import DbSession
from jarvis.orchestration import service
from jarvis.orchestration.schemas import EventOut, EventPage
from jarvis.realtime import sse

router = APIRouter(prefix="/api/agent-executions", tags=["executions"])

ExecutionId = Annotated[
    str, Path(min_length=1, max_length=36, description="The execution's id (a UUID)")
]


@router.get(
    "/{execution_id}/events",
    response_model=EventPage,
    summary="The execution's recorded events, in order (replay), or a live event stream",
    responses=sse.SSE_RESPONSES,
)
async def list_events(
    execution_id: ExecutionId,
    principal: Authenticated,
    session: DbSession,
    request: Request,
    after_seq: Annotated[int, Query(alias="afterSeq", ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=2**31 - 1,
            description="Event stream only: resume after this seq (overrides afterSeq)",
        ),
    ] = None,
) -> EventPage | Response:
    execution = await service.get_execution(session, execution_id, principal=principal)
    if sse.wants_event_stream(request):
        after = last_event_id if last_event_id is not None else after_seq
        return await sse.event_stream(
            request, session, execution_id, execution.status, after_seq=after
        )
    rows = await service.events_of(session, execution_id, after_seq=after_seq, limit=limit)
    items = [EventOut.model_validate(r) for r in rows]
    return EventPage(items=items, total=len(items), limit=limit, offset=0)
