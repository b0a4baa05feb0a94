"""Agent registry routes (the seed's ``/api/agents``) and ``/api/layers``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response

from jarvis.agents import service
from jarvis.agents.listing import AGENT_PAGE_CACHE
from jarvis.agents.schemas import (
    AgentCreate,
    AgentOut,
    AgentUpdate,
    AgentVersionOut,
    GovernanceStatus,
    LayerOut,
)
from jarvis.core.guards import AgentsWriter
from jarvis.core.layers import LAYER_DESCRIPTIONS, LAYER_ORDER, Layer
from jarvis.db.session import DbSession, get_database, unit_of_work
from jarvis.errors import BadRequest
from jarvis.kit.schema import Limit, Offset, Page

router = APIRouter(prefix="/api", tags=["agents"])

AgentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The agent's id")]


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    raw = value.strip()
    if raw == "*":  # RFC 9110: matches any current version
        return None
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    # isascii: str.isdigit() also accepts "²" (a header byte 0xB2), which int() refuses.
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest('If-Match must be the agent\'s ETag, e.g. "3"')
    return int(raw)


@router.get("/agents", response_model=Page[AgentOut], summary="List agents")
async def list_agents(
    request: Request,
    layer: Annotated[Layer | None, Query(description="One of the six layers")] = None,
    persona: Annotated[str | None, Query(max_length=64)] = None,
    business_function: Annotated[str | None, Query(alias="businessFunction", max_length=64)] = None,
    governance_status: Annotated[GovernanceStatus | None, Query(alias="governanceStatus")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Search text")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    flt = service.AgentFilter(layer, persona, business_function, governance_status, q)
    cache = AGENT_PAGE_CACHE.get(request)
    body = cache.get(service.page_key(flt, limit=limit, offset=offset))
    if body is None:
        # The database is only touched on a miss: a hit costs no connection at all.
        async with unit_of_work(get_database(request), write=False) as session:
            body = await service.agent_page_json(
                session, flt, limit=limit, offset=offset, cache=cache
            )
    # Already validated and serialised (and maybe cached): skip FastAPI's second pass.
    return Response(body, media_type="application/json")


@router.get("/agents/{agent_id}", response_model=AgentOut, summary="One agent")
async def get_agent(agent_id: AgentId, session: DbSession, response: Response) -> AgentOut:
    agent = await service.get_agent(session, agent_id)
    response.headers["ETag"] = _etag(agent.version)
    return AgentOut.model_validate(agent)


@router.post("/agents", response_model=AgentOut, status_code=201, summary="Create an agent")
async def create_agent(
    body: AgentCreate, principal: AgentsWriter, session: DbSession, response: Response
) -> AgentOut:
    agent = await service.create_agent(session, body, actor=principal.actor)
    response.headers["Location"] = f"/api/agents/{agent.id}"
    response.headers["ETag"] = _etag(agent.version)
    return AgentOut.model_validate(agent)


@router.patch("/agents/{agent_id}", response_model=AgentOut, summary="Update an agent")
async def update_agent(
    agent_id: AgentId,
    body: AgentUpdate,
    principal: AgentsWriter,
    session: DbSession,
    response: Response,
    if_match: Annotated[str | None, Header(max_length=64)] = None,
) -> AgentOut:
    agent = await service.update_agent(
        session, agent_id, body, actor=principal.actor, expected_version=_if_match(if_match)
    )
    response.headers["ETag"] = _etag(agent.version)
    return AgentOut.model_validate(agent)


@router.delete("/agents/{agent_id}", status_code=204, summary="Delete an agent")
async def delete_agent(agent_id: AgentId, principal: AgentsWriter, session: DbSession) -> Response:
    await service.delete_agent(session, agent_id, actor=principal.actor)
    return Response(status_code=204)


@router.get(
    "/agents/{agent_id}/versions",
    response_model=Page[AgentVersionOut],
    summary="Earlier versions of an agent, newest first",
)
async def list_versions(
    agent_id: AgentId, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[AgentVersionOut]:
    rows, total = await service.list_versions(session, agent_id, limit=limit, offset=offset)
    return Page[AgentVersionOut](
        items=[AgentVersionOut.model_validate(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/agents/{agent_id}/versions/{version}/restore",
    response_model=AgentOut,
    summary="Make an earlier version current again (as a new version)",
)
async def restore_version(
    agent_id: AgentId,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    principal: AgentsWriter,
    session: DbSession,
    response: Response,
) -> AgentOut:
    agent = await service.restore_version(session, agent_id, version, actor=principal.actor)
    response.headers["ETag"] = _etag(agent.version)
    return AgentOut.model_validate(agent)


@router.get("/layers", response_model=Page[LayerOut], summary="The six layers in order")
async def list_layers(session: DbSession) -> Page[LayerOut]:
    counts = await service.count_by_layer(session)
    items = [
        LayerOut(
            name=layer,
            position=position,
            description=LAYER_DESCRIPTIONS[layer],
            agent_count=counts[layer],
        )
        for position, layer in enumerate(LAYER_ORDER)
    ]
    return Page[LayerOut](items=items, total=len(items), limit=len(items), offset=0)
