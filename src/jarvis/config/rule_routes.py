"""Routes for rule tables and templates: ``/api/config/rules``, ``/api/config/templates``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from jarvis.config import rules
from jarvis.config.models import BusinessRule, Template
from jarvis.core.guards import Authenticated, ConfigWriter
from jarvis.db.session import DbSession
from jarvis.kit.schema import ApiModel, Limit, Offset, Page

router = APIRouter(prefix="/api/config", tags=["config"])

NamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=90)]
VersionQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Default: newest")]


class NamedVersion(ApiModel):
    name: str
    latest_version: int


class RuleSetOut(ApiModel):
    name: str
    version: int
    description: str | None
    definition: dict[str, Any]
    is_active: bool
    created_by: str
    created_at: datetime


class TemplateOut(ApiModel):
    name: str
    version: int
    description: str | None
    body: str
    is_active: bool
    created_by: str
    created_at: datetime


async def _names(
    session: DbSession, model: type[BusinessRule] | type[Template], limit: int, offset: int
) -> Page[NamedVersion]:
    names, total = await rules.list_names(session, model, limit=limit, offset=offset)
    return Page[NamedVersion](
        items=[NamedVersion(name=n, latest_version=v) for n, v in names],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/rules", response_model=Page[NamedVersion], summary="Rule tables")
async def list_rule_sets(
    _: Authenticated, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[NamedVersion]:
    return await _names(session, BusinessRule, limit, offset)


@router.get("/rules/{name}", response_model=RuleSetOut, summary="A rule table (newest or given)")
async def get_rule_set(
    name: NamePath, _: Authenticated, session: DbSession, version: VersionQuery = None
) -> RuleSetOut:
    return RuleSetOut.model_validate(await rules.get_rule_set(session, name, version))


@router.post("/rules", response_model=RuleSetOut, status_code=201, summary="Save the next version")
async def save_rule_set(
    body: rules.RuleSetIn, principal: ConfigWriter, session: DbSession
) -> RuleSetOut:
    return RuleSetOut.model_validate(
        await rules.save_rule_set(session, body, actor=principal.actor)
    )


@router.get("/templates", response_model=Page[NamedVersion], summary="Text templates")
async def list_templates(
    _: Authenticated, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[NamedVersion]:
    return await _names(session, Template, limit, offset)


@router.get("/templates/{name}", response_model=TemplateOut, summary="A template (newest or given)")
async def get_template(
    name: NamePath, _: Authenticated, session: DbSession, version: VersionQuery = None
) -> TemplateOut:
    return TemplateOut.model_validate(await rules.get_template(session, name, version))


@router.post(
    "/templates", response_model=TemplateOut, status_code=201, summary="Save the next version"
)
async def save_template(
    body: rules.TemplateIn, principal: ConfigWriter, session: DbSession
) -> TemplateOut:
    return TemplateOut.model_validate(
        await rules.save_template(session, body, actor=principal.actor)
    )
