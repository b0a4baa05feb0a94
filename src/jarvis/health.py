"""``GET /api/health``: is the database reachable and its schema at head."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from jarvis import __version__
from jarvis.db.migrate import schema_state
from jarvis.db.session import get_database

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
    body["status"] = "ok"
    return JSONResponse(body)
