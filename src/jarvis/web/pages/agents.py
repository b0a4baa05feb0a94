"""The agent directory: list with filters, an agent's page, create, edit (with optimistic
concurrency), delete, and version history with diffs and restore.

Reads are open to every signed-in viewer (the API's reads are public); changes need
``agents:write``. The list reuses the API's rendered-page cache, so a page of the
directory costs no agent query while the registry is unchanged.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from jarvis.agents import service
from jarvis.agents.listing import AGENT_PAGE_CACHE
from jarvis.agents.schemas import AgentOut, AgentUpdate, AgentVersionOut
from jarvis.core.identity import Principal
from jarvis.core.layers import Layer
from jarvis.core.permissions import AGENTS_WRITE
from jarvis.db.session import DbSession
from jarvis.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from jarvis.kit.schema import Limit, Offset
from jarvis.personas.service import list_personas
from jarvis.web.deps import AgentsEditor, Viewer
from jarvis.web.forms import read_form
from jarvis.web.pages import agent_views as views
from jarvis.web.rendering import PageContext, page_context, redirect, render
from jarvis.web.schema_form import humanise

router = APIRouter(include_in_schema=False)

AgentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]
FilterText = Annotated[str | None, Query(max_length=200)]
LIST_LIMIT = 25
VERSIONS_LIMIT = 10
MAX_PERSONAS = 100
LOAD_KIND = "load-kind"


async def _context(request: Request, session: AsyncSession, principal: Principal) -> PageContext:
    return await page_context(request, session, principal, section="agents")


async def _persona_names(session: AsyncSession) -> dict[str, str]:
    personas, _ = await list_personas(session, limit=MAX_PERSONAS, offset=0)
    return {p.key: p.display_name for p in personas}


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# --- the directory ---------------------------------------------------------------------


async def _agent(session: AsyncSession, agent_id: int) -> AgentOut:
    """The agent as the pages show it (404 when there is none)."""
    return AgentOut.model_validate(await service.get_agent(session, agent_id))


@router.get("/agents")
async def agent_list(
    request: Request,
    session: DbSession,
    principal: Viewer,
    layer: FilterText = None,
    persona: FilterText = None,
    business_function: Annotated[str | None, Query(alias="businessFunction", max_length=64)] = None,
    governance_status: Annotated[str | None, Query(alias="governanceStatus", max_length=32)] = None,
    q: FilterText = None,
    limit: Limit = LIST_LIMIT,
    offset: Offset = 0,
) -> Response:
    filters = {
        "layer": _blank(layer),
        "persona": _blank(persona),
        "businessFunction": _blank(business_function),
        "governanceStatus": _blank(governance_status),
        "q": _blank(q),
    }
    if filters["layer"] is not None and filters["layer"] not in views.LAYERS:
        raise ValidationFailed.field(
            ["query", "layer"], f"must be one of: {', '.join(views.LAYERS)}"
        )
    status = filters["governanceStatus"]
    if status is not None and status not in views.GOVERNANCE_STATUSES:
        raise ValidationFailed.field(
            ["query", "governanceStatus"],
            f"must be one of: {', '.join(views.GOVERNANCE_STATUSES)}",
        )
    flt = service.AgentFilter(
        Layer(filters["layer"]) if filters["layer"] else None,
        filters["persona"],
        filters["businessFunction"],
        status,
        filters["q"],
    )
    # The API's page cache: a hit is the rendered JSON page, no agent query at all.
    cache = AGENT_PAGE_CACHE.get(request)
    body = cache.get(service.page_key(flt, limit=limit, offset=offset))
    if body is None:
        body = await service.agent_page_json(session, flt, limit=limit, offset=offset, cache=cache)
    agents: dict[str, Any] = json.loads(body)
    ctx = await _context(request, session, principal)
    personas = await _persona_names(session)
    functions = await service.business_functions(session)
    # A value typed into the address stays selected, so the form shows what is applied.
    if filters["businessFunction"] and filters["businessFunction"] not in functions:
        functions.append(filters["businessFunction"])
    if filters["persona"] and filters["persona"] not in personas:
        personas[filters["persona"]] = filters["persona"]
    return render(
        ctx,
        "agents/list.html",
        agents=agents["items"],
        total=agents["total"],
        limit=limit,
        offset=offset,
        filters=filters,
        filtered=any(filters.values()),
        personas=personas,
        layer_options=[("", "All layers")] + [(v, v) for v in views.LAYERS],
        persona_options=[("", "All personas"), *personas.items()],
        function_options=[("", "All business functions")] + [(f, humanise(f)) for f in functions],
        governance_options=[("", "Any status")]
        + [(s, humanise(s)) for s in views.GOVERNANCE_STATUSES],
        can_write=principal.can(AGENTS_WRITE),
    )


# --- create ----------------------------------------------------------------------------


async def _render_form(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    form: views.AgentForm,
    *,
    agent: AgentOut | None = None,
    status_code: int = 200,
    conflict: dict[str, Any] | None = None,
) -> Response:
    ctx = await _context(request, session, principal)
    personas = await _persona_names(session)
    return render(
        ctx,
        "agents/form.html",
        status_code=status_code,
        form=form,
        agent=agent,
        conflict=conflict,
        action=f"/agents/{agent.id}/edit" if agent else "/agents",
        kind_url=f"/agents/{agent.id}/edit" if agent else "/agents/new",
        layer_options=[("", "Choose a layer")] + [(v, v) for v in views.LAYERS],
        persona_options=list(personas.items()),
        governance_options=[(s, humanise(s)) for s in views.GOVERNANCE_STATUSES],
        risk_options=[(r, humanise(r)) for r in views.RISK_LEVELS],
        maturity_options=[(str(n), str(n)) for n in range(1, 6)],
        kind_options=views.kind_options(),
        business_functions=await service.business_functions(session),
    )


@router.get("/agents/new")
async def new_agent(
    request: Request,
    session: DbSession,
    principal: AgentsEditor,
    kind: Annotated[str, Query(max_length=64)] = views.DEFAULT_KIND,
) -> Response:
    form = views.blank_form(kind.strip() or views.DEFAULT_KIND, principal.persona)
    return await _render_form(request, session, principal, form)


@router.post("/agents")
async def create_agent(request: Request, session: DbSession, principal: AgentsEditor) -> Response:
    posted_form = await read_form(request)
    reload_kind = posted_form.get("action") == LOAD_KIND
    posted = views.read_agent_form(posted_form, current_config=None, reload_kind=reload_kind)
    form = posted.form
    if posted.kind_switched:
        # "Load fields" (the kind select without JavaScript), or a kind chosen without
        # loading its fields: show the kind's settings before anything is created.
        if not reload_kind:
            form.errors.add(
                None, f"Review the settings of the {form.kind} kind, then create the agent."
            )
        status = 200 if reload_kind else 422
        return await _render_form(request, session, principal, form, status_code=status)
    try:
        data = views.validated(form, posted.config or {})
    except ValidationError as exc:
        views.add_errors(form, exc)
        views.check_config(form, posted.config)
        return await _render_form(request, session, principal, form, status_code=422)
    if form.errors or posted.config is None:
        return await _render_form(request, session, principal, form, status_code=422)
    try:
        agent = await service.create_agent(session, data, actor=principal.actor)
    except (ValidationFailed, Conflict) as exc:
        await session.rollback()
        _field_errors(form, exc)
        return await _render_form(request, session, principal, form, status_code=exc.status)
    return redirect(f"/agents/{agent.id}", toast=f"Created agent {agent.name}")


def _field_errors(form: views.AgentForm, exc: ValidationFailed | Conflict) -> None:
    if isinstance(exc, Conflict):  # the only conflict a create or edit meets: the name
        form.errors.add("name", exc.detail[:1].upper() + exc.detail[1:])
    else:
        views.add_errors(form, exc)


# --- one agent ---------------------------------------------------------------------------


def _config_items(agent: AgentOut) -> list[tuple[str, str, bool]]:
    """The config as (label, text, shown as a block) for reading."""
    out = []
    for key, value in agent.config.items():
        block = isinstance(value, dict | list)
        text = json.dumps(value, indent=2, ensure_ascii=False) if block else str(value)
        if isinstance(value, bool):
            text = "yes" if value else "no"
        out.append((humanise(key), text, block))
    return out


@router.get("/agents/{agent_id}")
async def agent_detail(
    request: Request, agent_id: AgentId, session: DbSession, principal: Viewer, offset: Offset = 0
) -> Response:
    agent = await _agent(session, agent_id)
    rows, _ = await service.list_versions(session, agent_id, limit=VERSIONS_LIMIT, offset=offset)
    creator = (
        await service.created_by(session, agent_id)
        if agent.version - offset <= VERSIONS_LIMIT
        else None
    )
    ctx = await _context(request, session, principal)
    personas = await _persona_names(session)
    return render(
        ctx,
        "agents/detail.html",
        agent=agent,
        persona_name=personas.get(agent.persona, agent.persona),
        kind_description=views.kind_description(agent.kind),
        config_items=_config_items(agent),
        versions=views.timeline(
            agent,
            [AgentVersionOut.model_validate(row) for row in rows],
            offset=offset,
            creator=creator,
        ),
        versions_total=agent.version,
        versions_limit=VERSIONS_LIMIT,
        offset=offset,
        when=views.when,
        can_write=principal.can(AGENTS_WRITE),
    )


# --- edit ------------------------------------------------------------------------------


@router.get("/agents/{agent_id}/edit")
async def edit_agent(
    request: Request,
    agent_id: AgentId,
    session: DbSession,
    principal: AgentsEditor,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    agent = await _agent(session, agent_id)
    form = views.agent_form(agent, kind=_blank(kind))
    return await _render_form(request, session, principal, form, agent=agent)


async def _conflict(session: AsyncSession, agent: AgentOut, since: int) -> dict[str, Any]:
    """What changed since version ``since``, which the editor started from."""
    changed: list[str] = []
    if since < agent.version:
        try:
            before = (await service.get_version(session, agent.id, since)).snapshot
        except NotFound:  # a made-up version number: say less
            before = None
        if before is not None:
            changed = sorted(
                {c.label for c in views.diff_states(before, views.current_state(agent))}
            )
    latest = None
    if agent.version > 1:
        row = await service.get_version(session, agent.id, agent.version - 1)
        latest = {"by": row.changed_by, "at": views.when(row.created_at)}
    return {"since": since, "version": agent.version, "changed": changed, "latest": latest}


@router.post("/agents/{agent_id}/edit")
async def update_agent(
    request: Request, agent_id: AgentId, session: DbSession, principal: AgentsEditor
) -> Response:
    agent = await _agent(session, agent_id)
    posted_form = await read_form(request)
    raw_version = posted_form.get("version").strip()
    version = int(raw_version) if raw_version.isascii() and raw_version.isdigit() else None
    reload_kind = posted_form.get("action") == LOAD_KIND
    posted = views.read_agent_form(
        posted_form, current_config=agent.config, version=version, reload_kind=reload_kind
    )
    form = posted.form
    if posted.kind_switched:
        if not reload_kind:
            form.errors.add(
                None, f"Review the settings of the {form.kind} kind, then save the agent."
            )
        status = 200 if reload_kind else 422
        return await _render_form(
            request, session, principal, form, agent=agent, status_code=status
        )
    try:
        data = views.validated(form, posted.config or {})
    except ValidationError as exc:
        views.add_errors(form, exc)
        views.check_config(form, posted.config)
        return await _render_form(request, session, principal, form, agent=agent, status_code=422)
    if form.errors or posted.config is None:
        return await _render_form(request, session, principal, form, agent=agent, status_code=422)
    if version is not None and version != agent.version:
        return await _edit_conflict(request, session, principal, form, agent, version)
    changes = views.changed_fields(agent, views.form_state(data))
    if not changes:
        return redirect(f"/agents/{agent_id}", toast="Nothing to save: no field was changed")
    try:
        updated = await service.update_agent(
            session,
            agent_id,
            AgentUpdate.model_validate(changes),
            actor=principal.actor,
            expected_version=version,
        )
    except PreconditionFailed:
        # Someone saved between our read and our lock: the same answer as above.
        await session.rollback()
        agent = await _agent(session, agent_id)
        return await _edit_conflict(request, session, principal, form, agent, version or 0)
    except (ValidationFailed, Conflict) as exc:
        await session.rollback()
        agent = await _agent(session, agent_id)
        _field_errors(form, exc)
        return await _render_form(
            request, session, principal, form, agent=agent, status_code=exc.status
        )
    return redirect(
        f"/agents/{agent_id}", toast=f"Saved {updated.name} as version {updated.version}"
    )


async def _edit_conflict(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    form: views.AgentForm,
    agent: AgentOut,
    since: int,
) -> Response:
    """The form again, with what the viewer typed, and what changed meanwhile; saving
    once more (now against the current version) replaces the other change."""
    conflict = await _conflict(session, agent, since)
    form.version = agent.version
    return await _render_form(
        request, session, principal, form, agent=agent, status_code=409, conflict=conflict
    )


# --- delete ----------------------------------------------------------------------------


@router.get("/agents/{agent_id}/delete")
async def confirm_delete(
    request: Request, agent_id: AgentId, session: DbSession, principal: AgentsEditor
) -> Response:
    agent = await _agent(session, agent_id)
    ctx = await _context(request, session, principal)
    return render(ctx, "agents/delete.html", agent=agent)


@router.post("/agents/{agent_id}/delete")
async def delete_agent(agent_id: AgentId, session: DbSession, principal: AgentsEditor) -> Response:
    agent = await _agent(session, agent_id)
    name = agent.name
    await service.delete_agent(session, agent_id, actor=principal.actor)
    return redirect("/agents", toast=f"Deleted agent {name}")


# --- versions ----------------------------------------------------------------------------


@router.get("/agents/{agent_id}/versions/{version}")
async def agent_version(
    request: Request,
    agent_id: AgentId,
    version: VersionNumber,
    session: DbSession,
    principal: Viewer,
    against: Annotated[str | None, Query(pattern="^(current|previous)$")] = None,
) -> Response:
    agent = await _agent(session, agent_id)
    current = views.current_state(agent)
    is_current = version == agent.version
    state = (
        current if is_current else (await service.get_version(session, agent_id, version)).snapshot
    )
    compare = against or ("previous" if is_current else "current")
    previous: dict[str, Any] | None = None
    if compare == "previous" and version > 1:
        previous = (await service.get_version(session, agent_id, version - 1)).snapshot
    if compare == "previous":
        changes = views.diff_states(previous, state) if previous is not None else []
    else:
        changes = views.diff_states(state, current)
    ctx = await _context(request, session, principal)
    return render(
        ctx,
        "agents/version.html",
        agent=agent,
        version=version,
        is_current=is_current,
        state=state,
        compare=compare,
        has_previous=version > 1,
        changes=changes,
        labels=views.LABELS,
        fields=[name for name in service.VERSIONED_FIELDS if name != "config"],
        config=state.get("config") or {},
        can_write=principal.can(AGENTS_WRITE),
    )


@router.post("/agents/{agent_id}/versions/{version}/restore")
async def restore_version(
    agent_id: AgentId, version: VersionNumber, session: DbSession, principal: AgentsEditor
) -> Response:
    agent = await service.restore_version(session, agent_id, version, actor=principal.actor)
    return redirect(
        f"/agents/{agent_id}",
        toast=f"Restored version {version} of {agent.name} as version {agent.version}",
    )
