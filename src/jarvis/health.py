"""``GET /api/health``: is the database reachable and its schema at head; is the event bus;
where executions are dispatched and how many workers are live.

A Redis bus that is down is reported but does not make the instance unhealthy: it still
serves correct configuration (the change-log poll takes over) and should stay in rotation.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from jarvis import __version__
from jarvis.db.migrate import schema_state
from jarvis.db.session import get_database, unit_of_work
from jarvis.kit.bus import BUS
from jarvis.kit.clock import utcnow
from jarvis.orchestration.dependencies import DISPATCHER
from jarvis.orchestration.store.leases import live_workers
from jarvis.settings import SETTINGS

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health", summary="Database reachable and schema at head")
async def health(request: Request) -> JSONResponse:
    db = get_database(request)
    body: dict[str, object] = {"version": __version__, "database": db.engine.dialect.name}
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        state = await schema_state(db.engine)
    except Exception as exc:  # health reports failures; it must not raise them
        body |= {"status": "unavailable", "detail": f"database unreachable: {type(exc).__name__}"}
        return JSONResponse(body, status_code=503)
    body["schema"] = {"current": state.current, "head": state.head, "atHead": state.at_head}
    if not state.at_head:
        body |= {"status": "unavailable", "detail": state.problem()}
        return JSONResponse(body, status_code=503)
    body["bus"] = await _bus_state(request)
    body["broker"] = await _broker_state(request)
    body["workers"] = {"live": await _live_workers(request)}
    body["status"] = "ok"
    return JSONResponse(body)


async def _broker_state(request: Request) -> dict[str, str]:
    """Where executions go: this process, or the Taskiq queue the workers read."""
    dispatcher = DISPATCHER.get(request)
    try:
        reachable = await asyncio.wait_for(dispatcher.ping(), timeout=2.0)
    except Exception:  # reported, never raised
        reachable = False
    return {"kind": dispatcher.kind, "status": "ok" if reachable else "unreachable"}


async def _live_workers(request: Request) -> int:
    """Engines (workers, or servers running executions in-process) with a fresh heartbeat."""
    settings = SETTINGS.get(request)
    async with unit_of_work(get_database(request), write=False) as session:
        return await live_workers(
            session, now=utcnow(), lease_seconds=settings.execution_lease_seconds
        )


async def _bus_state(request: Request) -> dict[str, str]:
    bus = BUS.get(request)
    try:
        reachable = await asyncio.wait_for(bus.ping(), timeout=2.0)
    except Exception:  # reported, never raised
        reachable = False
    return {"kind": bus.kind, "status": "ok" if reachable else "unreachable"}
