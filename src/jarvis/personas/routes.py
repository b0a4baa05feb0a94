"""Persona routes: ``GET /api/personas/all``, ``POST /api/personas/register``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from jarvis.config.dependencies import Config
from jarvis.core.guards import PersonasWriter
from jarvis.db.session import DbSession
from jarvis.kit.schema import MAX_PAGE_SIZE, Page
from jarvis.personas import service
from jarvis.personas.schemas import PersonaOut, PersonaRegister

router = APIRouter(prefix="/api/personas", tags=["personas"])


@router.get("/all", response_model=Page[PersonaOut], summary="Every registered persona")
async def all_personas(
    session: DbSession,
    config: Config,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = MAX_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page[PersonaOut]:
    rows, total = await service.list_personas(session, limit=limit, offset=offset)
    return Page[PersonaOut](
        items=[service.persona_out(r, await service.persona_colours(config, r.key)) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/register", response_model=PersonaOut, status_code=201, summary="Register a new persona"
)
async def register(
    body: PersonaRegister, principal: PersonasWriter, session: DbSession, config: Config
) -> PersonaOut:
    persona = await service.register_persona(session, body, actor=principal.actor, config=config)
    return service.persona_out(persona, body.color_scheme)
