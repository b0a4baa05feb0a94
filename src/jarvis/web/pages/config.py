"""Pages of the Config Registry: browse and search keys; a key's effective value for a
persona, agent or workflow and why; set (optionally scheduled) and revert values; history
with diffs; snapshots (take, compare, restore); change requests (four eyes).

Every page reads and writes through the ConfigService (and the snapshot module) that the
API uses, so the rules — schemas, allowed scopes, effective dating, approvals — are the
API's. Reads need a signed-in viewer, as in the API; writes ``config:write``; decisions on
change requests ``config:approve``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from jarvis.config import approvals
from jarvis.config.dependencies import Config
from jarvis.config.schemas import KEY_PATTERN
from jarvis.config.service import ConfigService
from jarvis.config.validation import mask
from jarvis.core import permissions as perm
from jarvis.core.identity import Principal
from jarvis.core.scope import Scope
from jarvis.db.session import DbSession
from jarvis.errors import ValidationFailed
from jarvis.kit.clock import utcnow
from jarvis.kit.schema import Limit, Offset
from jarvis.personas.service import list_personas
from jarvis.web.deps import ConfigEditor, Viewer
from jarvis.web.forms import FieldErrors, errors_from, read_form
from jarvis.web.pages import config_changes, config_snapshots
from jarvis.web.pages.config_changes import request_views
from jarvis.web.pages.config_view import (
    MAX_REASON,
    PAGE_LIMIT,
    SCOPE_FIELDS,
    SCOPE_LABELS,
    WINDOW_FIELDS,
    SetForm,
    can_write,
    dumps,
    parse_instant,
    prefill_values,
    read_scope_choice,
    readable_errors,
    schema_rows,
    scope_from_form,
    scope_query,
    swatches,
    value_diff,
    value_state,
    value_type,
)
from jarvis.web.rendering import page_context, redirect, render
from jarvis.web.schema_form import fields_for, parse_fields

router = APIRouter(include_in_schema=False)
# First: "changes" and "snapshots" would otherwise be taken for keys by /config/{key}.
router.include_router(config_changes.router)
router.include_router(config_snapshots.router)

KeyPath = Annotated[str, Path(pattern=KEY_PATTERN, max_length=100)]
VALUES_LIMIT = 20
HISTORY_LIMIT = 20
PENDING_LIMIT = 10
PERSONA_CHOICES = 100
VALUE_ACTIONS = {"set", "revert", "restore", "import"}


async def _personas(session: AsyncSession) -> list[tuple[str, str]]:
    """Registered personas (key, display name) for the scope selects."""
    rows, _ = await list_personas(session, limit=PERSONA_CHOICES, offset=0)
    return [(row.key, row.display_name) for row in rows]


# --- keys ---------------------------------------------------------------------------------


@router.get("/config")
async def config_index(
    request: Request,
    session: DbSession,
    principal: Viewer,
    config: Config,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = PAGE_LIMIT,
    offset: Offset = 0,
) -> Response:
    search = (q or "").strip() or None
    keys, total = await config.list_keys(session, search=search, limit=limit, offset=offset)
    _, pending = await config.list_requests(session, status="pending", limit=1, offset=0)
    ctx = await page_context(request, session, principal, section="config")
    return render(
        ctx,
        "config/index.html",
        rows=[(info, value_type(info.schema)) for info in keys],
        q=search or "",
        total=total,
        limit=limit,
        offset=offset,
        pending=pending,
        scope_labels=SCOPE_LABELS,
    )


# --- one key ------------------------------------------------------------------------------


@dataclass
class HistoryView:
    id: int
    action: str
    scope: Scope | None
    version: int | None
    diff: list[Any]
    performed_by: str
    created_at: datetime
    reason: str | None
    effective_from: datetime | None
    effective_to: datetime | None
    change_request_id: int | None
    snapshot_id: int | None

    @property
    def revertable(self) -> bool:
        return self.action in VALUE_ACTIONS and self.version is not None and self.scope is not None


async def _key_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    config: ConfigService,
    key: str,
    *,
    voffset: int = 0,
    hoffset: int = 0,
    posted: SetForm | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    info = await config.key_info(key, session)
    personas = await _personas(session)
    choice = read_scope_choice(request.query_params, [k for k, _ in personas])
    explained = await config.explain_setting(key, choice.scope)
    resolution, candidates = explained.resolution, explained.candidates or []
    versions, vtotal = await config.versions(
        session, key, scope=None, limit=VALUES_LIMIT, offset=voffset
    )
    history, htotal = await config.history(
        session, key, scope=None, limit=HISTORY_LIMIT, offset=hoffset
    )
    pending, ptotal = await approvals.list_requests(
        session, status="pending", key=key, limit=PENDING_LIMIT, offset=0
    )
    if posted is None:
        current = None if info.secret else resolution.value
        controls = fields_for(info.schema, current, "value")
        posted = SetForm.initial(controls, info.scopes, choice.scope)
    prefill: dict[str, Any] = {}
    if not info.secret:  # the values in effect per scope, to start an edit from
        if "global" in info.scopes:
            prefill["global"] = prefill_values(info.schema, (await config.resolve(key)).value)
        if "persona" in info.scopes:
            for persona, _ in personas:
                value = (await config.resolve(key, Scope(persona=persona))).value
                prefill[f"persona:{persona}"] = prefill_values(info.schema, value)
    now = utcnow()
    shown_value = mask(resolution.value, info.secret)
    ctx = await page_context(request, session, principal, section="config")
    return render(
        ctx,
        "config/key.html",
        status_code=status_code,
        info=info,
        default=mask(info.default, info.secret),
        schema_rows=schema_rows(info.schema),
        value_type=value_type(info.schema),
        personas=personas,
        choice=choice,
        resolution=resolution,
        value=shown_value,
        swatches=swatches(shown_value),
        explanation=explained.narrative,
        candidates=[
            {"c": c, "value": mask(c.value, info.secret), "state": c.status} for c in candidates
        ],
        versions=[
            {
                "row": v,
                "scope": Scope(v.persona, v.agent_id, v.workflow_id),
                "value": mask(v.value, info.secret),
                "state": value_state(
                    is_active=v.is_active,
                    effective_from=v.effective_from,
                    effective_to=v.effective_to,
                    now=now,
                ),
            }
            for v in versions
        ],
        vtotal=vtotal,
        voffset=voffset,
        vlimit=VALUES_LIMIT,
        history=[
            HistoryView(
                id=h.id,
                action=h.action,
                scope=(
                    Scope(h.persona, h.agent_id, h.workflow_id)
                    if h.scope_identifiers is not None
                    else None
                ),
                version=h.version,
                diff=value_diff(h.old_value, h.new_value),
                performed_by=h.performed_by,
                created_at=h.created_at,
                reason=h.reason,
                effective_from=h.effective_from,
                effective_to=h.effective_to,
                change_request_id=h.change_request_id,
                snapshot_id=h.snapshot_id,
            )
            for h in history
        ],
        htotal=htotal,
        hoffset=hoffset,
        hlimit=HISTORY_LIMIT,
        pending=await request_views(session, config, principal, pending),
        ptotal=ptotal,
        form=posted,
        errors=errors or FieldErrors(),
        scope_options=[(s, SCOPE_LABELS[s]) for s in info.scopes],
        can_write=can_write(principal),
        can_approve=principal.can(perm.CONFIG_APPROVE),
        prefill=dumps(prefill),
    )


@router.get("/config/{key}")
async def key_detail(
    request: Request,
    session: DbSession,
    principal: Viewer,
    config: Config,
    key: KeyPath,
    voffset: Offset = 0,
    hoffset: Offset = 0,
) -> Response:
    return await _key_page(
        request, session, principal, config, key, voffset=voffset, hoffset=hoffset
    )


@router.post("/config/{key}")
async def set_value(
    request: Request, session: DbSession, principal: ConfigEditor, config: Config, key: KeyPath
) -> Response:
    info = await config.key_info(key, session)
    form = await read_form(request)
    value, errors, controls = parse_fields(info.schema, form, "value")
    posted = SetForm.posted(form, controls)
    personas = [k for k, _ in await _personas(session)]
    if posted.level not in info.scopes:
        errors.add("scope", f"'{key}' can be set at: {', '.join(info.scopes)}")
    scope = posted.scope(errors, personas)
    start = parse_instant(posted.effective_from, "effectiveFrom", errors)
    end = parse_instant(posted.effective_to, "effectiveTo", errors)
    reason = posted.reason.strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        errors.add("reason", f"must be at most {MAX_REASON} characters")
    if errors or scope is None:
        return await _key_page(
            request,
            session,
            principal,
            config,
            key,
            posted=posted,
            errors=errors,
            status_code=422,
        )
    try:
        outcome = await config.set_value(
            session,
            key,
            value,
            scope,
            actor=principal.actor,
            effective_from=start,
            effective_to=end,
            reason=reason,
        )
    except ValidationFailed as exc:
        await session.rollback()
        known = [c.name for c in controls] + [*SCOPE_FIELDS, *WINDOW_FIELDS, "reason"]
        return await _key_page(
            request,
            session,
            principal,
            config,
            key,
            posted=posted,
            errors=readable_errors(errors_from(exc, known=known)),
            status_code=422,
        )
    target = f"/config/{key}{scope_query(scope)}"
    if outcome.request is not None:
        return redirect(
            target + "#pending",
            toast=f"Change request #{outcome.request.id} opened: '{key}' needs a second "
            "admin's approval before it changes",
        )
    assert outcome.value is not None  # noqa: S101 - one of the two is always set
    row = outcome.value
    when = (
        f", effective from {row.effective_from:%Y-%m-%d %H:%M} UTC"
        if start is not None and row.effective_from > utcnow()
        else ""
    )
    return redirect(
        target, toast=f"Saved version {row.version} of '{key}' at {scope.describe()} scope{when}"
    )


@router.post("/config/{key}/revert")
async def revert_value(
    request: Request, session: DbSession, principal: ConfigEditor, config: Config, key: KeyPath
) -> Response:
    form = await read_form(request)
    scope = scope_from_form(form)
    version_text = form.get("version").strip()
    if not version_text.isdigit() or not 1 <= int(version_text) <= 2**31 - 1:
        raise ValidationFailed.field(["version"], "must be a version number")
    version = int(version_text)
    reason = form.optional("reason")
    outcome = await config.revert(
        session, key, scope, version, actor=principal.actor, reason=reason
    )
    target = f"/config/{key}{scope_query(scope)}"
    if outcome.request is not None:
        return redirect(
            target + "#pending",
            toast=f"Change request #{outcome.request.id} opened to revert '{key}' to version "
            f"{version}: it needs a second admin's approval",
        )
    assert outcome.value is not None  # noqa: S101 - one of the two is always set
    return redirect(
        target,
        toast=f"Reverted '{key}' at {scope.describe()} scope to version {version} "
        f"(now version {outcome.value.version})",
    )
