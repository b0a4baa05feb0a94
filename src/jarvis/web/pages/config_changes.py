"""Config Registry pages for change requests (four eyes): the list, and approving,
rejecting or withdrawing one. The ConfigService enforces who may decide; its refusals are
shown on the list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from jarvis.auth.sso.oauth import safe_next_path
from jarvis.config import approvals
from jarvis.config import snapshots as snap
from jarvis.config.dependencies import Config
from jarvis.config.service import ConfigService
from jarvis.core import permissions as perm
from jarvis.core.identity import Principal
from jarvis.core.scope import Scope
from jarvis.db.session import DbSession
from jarvis.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from jarvis.kit.schema import Limit, Offset
from jarvis.web.deps import Viewer, require
from jarvis.web.forms import read_form
from jarvis.web.pages.config_view import (
    MAX_REASON,
    PAGE_LIMIT,
    IdPath,
    can_write,
    value_diff,
)
from jarvis.web.rendering import page_context, redirect, render

router = APIRouter(include_in_schema=False)

RequestStatus = Literal["pending", "approved", "rejected", "withdrawn", "all"]


@dataclass
class RequestView:
    id: int
    key: str
    action: str
    status: str
    scope: str
    proposed: Any
    has_value: bool
    diff: list[Any]
    details: dict[str, Any]
    reason: str | None
    requested_by: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    own: bool


async def request_views(
    session: AsyncSession, config: ConfigService, principal: Principal, rows: list[Any]
) -> list[RequestView]:
    """Change requests as the pages show them: values masked for secret keys, and for a
    pending value change the diff against the value in effect at its scope now."""
    secrets = await snap.secret_keys(session)
    views = []
    for row in rows:
        secret = row.config_key in secrets
        payload = approvals.masked_payload(row.payload, secret=secret)
        scope = Scope.from_json(payload.get("scope")) if row.action != "registry" else None
        has_value = "value" in payload
        diff: list[Any] = []
        if has_value and scope is not None and row.status == "pending" and not secret:
            try:
                now_value = (await config.resolve(row.config_key, scope)).value
            except NotFound:  # the key was removed since
                now_value = None
            diff = value_diff(now_value, payload["value"])
        elif row.action == "registry":
            diff = value_diff({}, {k: v for k, v in payload.items() if k != "revision"})
        details = {
            k: v for k, v in payload.items() if k in ("version", "effectiveFrom", "effectiveTo")
        }
        views.append(
            RequestView(
                id=row.id,
                key=row.config_key,
                action=row.action,
                status=row.status,
                scope=scope.describe() if scope is not None else "definition",
                proposed=payload.get("value"),
                has_value=has_value,
                diff=diff,
                details={k: v for k, v in details.items() if v is not None},
                reason=row.reason,
                requested_by=row.requested_by,
                created_at=row.created_at,
                decided_by=row.decided_by,
                decided_at=row.decided_at,
                decision_reason=row.decision_reason,
                own=approvals.same_person(row, principal.actor),
            )
        )
    return views


async def _changes_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    config: ConfigService,
    *,
    status: RequestStatus,
    limit: int,
    offset: int,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    rows, total = await config.list_requests(
        session, status=None if status == "all" else status, limit=limit, offset=offset
    )
    ctx = await page_context(request, session, principal, section="config")
    return render(
        ctx,
        "config/changes.html",
        status_code=status_code,
        requests=await request_views(session, config, principal, rows),
        status=status,
        total=total,
        limit=limit,
        offset=offset,
        problem=problem,
        can_approve=principal.can(perm.CONFIG_APPROVE),
        can_write=can_write(principal),
    )


@router.get("/config/changes")
async def change_requests(
    request: Request,
    session: DbSession,
    principal: Viewer,
    config: Config,
    status: RequestStatus = "pending",
    limit: Limit = PAGE_LIMIT,
    offset: Offset = 0,
) -> Response:
    return await _changes_page(
        request, session, principal, config, status=status, limit=limit, offset=offset
    )


@router.post("/config/changes/{request_id}/{decision}")
async def decide_change_request(
    request: Request,
    session: DbSession,
    principal: Viewer,
    config: Config,
    request_id: IdPath,
    decision: Literal["approve", "reject", "withdraw"],
) -> Response:
    if decision == "withdraw":
        require(principal, perm.CONFIG_WRITE, "Withdrawing a change request")
    else:
        require(principal, perm.CONFIG_APPROVE, "Deciding on a change request")
    form = await read_form(request)
    reason = form.optional("reason")
    if reason is not None and len(reason) > MAX_REASON:
        reason = reason[:MAX_REASON]
    try:
        if decision == "approve":
            row = await config.approve(session, request_id, actor=principal.actor, reason=reason)
        elif decision == "reject":
            row = await config.reject(session, request_id, actor=principal.actor, reason=reason)
        else:
            row = await config.withdraw(session, request_id, actor=principal.actor, reason=reason)
    except (Forbidden, Conflict, PreconditionFailed, ValidationFailed) as exc:
        # Four eyes, a request decided meanwhile, a value today's schema rejects: said on
        # the list, where the viewer can see what is still pending.
        await session.rollback()
        return await _changes_page(
            request,
            session,
            principal,
            config,
            status="pending",
            limit=PAGE_LIMIT,
            offset=0,
            problem=exc.detail[:1].upper() + exc.detail[1:],
            status_code=exc.status,
        )
    done = {"approve": "Approved and applied", "reject": "Rejected", "withdraw": "Withdrew"}
    target = safe_next_path(form.get("next") or "/config/changes")
    return redirect(target, toast=f"{done[decision]} change request #{row.id} ({row.config_key})")
