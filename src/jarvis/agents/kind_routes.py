"""``GET /api/agent-kinds``: the kinds an agent may run, each with its config schema."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from jarvis.agents.kinds.registry import available_kinds
from jarvis.kit.schema import MAX_PAGE_SIZE, ApiModel, Page

router = APIRouter(prefix="/api", tags=["agents"])


class AgentKindOut(ApiModel):
    name: str
    description: str
    config_schema: dict[str, Any] = Field(
        description="JSON Schema of the kind's config (camelCase keys, as sent)."
    )


@router.get(
    "/agent-kinds",
    response_model=Page[AgentKindOut],
    summary="Agent kinds (built-in and plug-ins) with their config schemas",
)
async def list_agent_kinds(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page[AgentKindOut]:
    kinds = _kinds()
    return Page[AgentKindOut](
        items=list(kinds[offset : offset + limit]), total=len(kinds), limit=limit, offset=offset
    )


@cache
def _kinds() -> tuple[AgentKindOut, ...]:
    """Every kind, by name (kinds load once per process, so their schemas are fixed)."""
    return tuple(
        AgentKindOut(
            name=kind.name,
            description=kind.description,
            config_schema=kind.config_model.model_json_schema(by_alias=True),
        )
        for kind in sorted(available_kinds().values(), key=lambda kind: kind.name)
    )
