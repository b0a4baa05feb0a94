"""Config Registry pages for snapshots: the list and taking one, one snapshot with its
values and a diff against now or another snapshot, and restoring it (with a preview)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from jarvis.config import snapshots as snap
from jarvis.config.dependencies import Config
from jarvis.config.service import ConfigService
from jarvis.core.identity import Principal
from jarvis.core.scope import Scope
from jarvis.db.session import DbSession
from jarvis.errors import Conflict, NotFound
from jarvis.kit.clock import utcnow
from jarvis.kit.schema import Limit, Offset
from jarvis.web.deps import ConfigEditor, Viewer
from jarvis.web.forms import FieldErrors, read_form
from jarvis.web.pages.config_view import (
    MAX_REASON,
    PAGE_LIMIT,
    IdPath,
    can_write,
    dumps,
)
from jarvis.web.rendering import page_context, redirect, render

router = APIRouter(include_in_schema=False)

SNAPSHOT_VALUES_LIMIT = 50
DIFF_SHOWN = 200  # entries per diff list on a page; the rest are counted
COMPARE_CHOICES = 100


async def _snapshots_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    offset: int,
    name: str = "",
    description: str = "",
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    rows, total = await snap.list_snapshots(session, limit=limit, offset=offset)
    ctx = await page_context(request, session, principal, section="config")
    return render(
        ctx,
        "config/snapshots.html",
        status_code=status_code,
        snapshots=[(row, len(snap.snapshot_values(row))) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
        name=name,
        description=description,
        errors=errors or FieldErrors(),
        can_write=can_write(principal),
    )


@router.get("/config/snapshots")
async def snapshots(
    request: Request,
    session: DbSession,
    principal: Viewer,
    limit: Limit = PAGE_LIMIT,
    offset: Offset = 0,
) -> Response:
    return await _snapshots_page(request, session, principal, limit=limit, offset=offset)


@router.post("/config/snapshots")
async def take_snapshot(request: Request, session: DbSession, principal: ConfigEditor) -> Response:
    form = await read_form(request)
    name = form.get("name").strip()
    description = form.get("description").strip()
    errors = FieldErrors()
    if not name:
        errors.add("name", "Give the snapshot a name")
    elif len(name) > 200:
        errors.add("name", "must be at most 200 characters")
    if len(description) > 4000:
        errors.add("description", "must be at most 4000 characters")
    status_code = 422
    if not errors:
        try:
            row = await snap.create_snapshot(
                session, name=name, description=description or None, actor=principal.actor
            )
        except Conflict as exc:
            await session.rollback()
            errors.add("name", exc.detail[:1].upper() + exc.detail[1:])
            status_code = exc.status
        else:
            count = len(snap.snapshot_values(row))
            return redirect(
                f"/config/snapshots/{row.id}", toast=f"Snapshot '{name}' taken: {count} values"
            )
    return await _snapshots_page(
        request,
        session,
        principal,
        limit=PAGE_LIMIT,
        offset=0,
        name=name,
        description=description,
        errors=errors,
        status_code=status_code,
    )


def _entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    """A snapshot or diff entry with its scope and values as text."""
    out = {**entry, "scope_text": Scope.from_json(entry.get("scope")).describe()}
    for name in ("value", "before", "after"):
        if name in entry:
            out[f"{name}_text"] = dumps(entry[name])
    return out


@dataclass
class DiffView:
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[dict[str, Any]]
    unchanged: int
    hidden: int  # entries beyond DIFF_SHOWN per list

    @classmethod
    def of(cls, diff: snap.Diff) -> DiffView:
        lists = (diff.added, diff.removed, diff.changed)
        hidden = sum(max(0, len(items) - DIFF_SHOWN) for items in lists)
        shown = [[_entry_view(e) for e in items[:DIFF_SHOWN]] for items in lists]
        return cls(shown[0], shown[1], shown[2], diff.unchanged, hidden)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


async def _approval_keys(
    session: AsyncSession, config: ConfigService, diff: DiffView
) -> tuple[set[str], set[str]]:
    """Keys of a diff that need approval, and keys no longer registered."""
    approval: set[str] = set()
    unknown: set[str] = set()
    for key in {e["key"] for e in [*diff.added, *diff.removed, *diff.changed]}:
        try:
            info = await config.key_info(key, session)
        except NotFound:
            unknown.add(key)
            continue
        if info.requires_approval:
            approval.add(key)
    return approval, unknown


@router.get("/config/snapshots/{snapshot_id}")
async def snapshot_detail(
    request: Request,
    session: DbSession,
    principal: Viewer,
    snapshot_id: IdPath,
    against: Annotated[str, Query(pattern=r"^(current|[1-9][0-9]{0,9})$")] = "current",
    offset: Offset = 0,
) -> Response:
    row = await snap.get_snapshot(session, snapshot_id)
    secrets = await snap.secret_keys(session)
    values = snap.masked(snap.snapshot_values(row), secrets)
    if against == "current":
        other_values = await snap.live_values(session, utcnow())
        other_name = "the live configuration now"
    else:
        other = await snap.get_snapshot(session, int(against))
        other_values = snap.snapshot_values(other)
        other_name = f"snapshot '{other.name}'"
    diff = DiffView.of(snap.diff(snap.snapshot_values(row), other_values, secrets=secrets))
    choices, _ = await snap.list_snapshots(session, limit=COMPARE_CHOICES, offset=0)
    ctx = await page_context(request, session, principal, section="config")
    return render(
        ctx,
        "config/snapshot.html",
        snapshot=row,
        values=[_entry_view(e) for e in values[offset : offset + SNAPSHOT_VALUES_LIMIT]],
        total=len(values),
        limit=SNAPSHOT_VALUES_LIMIT,
        offset=offset,
        against=against,
        other_name=other_name,
        choices=[(c.id, c.name) for c in choices if c.id != row.id],
        diff=diff,
        can_write=can_write(principal),
    )


async def _restore_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    config: ConfigService,
    snapshot_id: int,
    *,
    reason: str = "",
    report: dict[str, Any] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    row = await snap.get_snapshot(session, snapshot_id)
    secrets = await snap.secret_keys(session)
    live = await snap.live_values(session, utcnow())
    # What restoring does: from the live values to the snapshot's.
    preview = DiffView.of(snap.diff(live, snap.snapshot_values(row), secrets=secrets))
    approval, unknown = await _approval_keys(session, config, preview)
    ctx = await page_context(request, session, principal, section="config")
    return render(
        ctx,
        "config/restore.html",
        status_code=status_code,
        snapshot=row,
        preview=preview,
        approval=approval,
        unknown=unknown,
        reason=reason,
        report=report,
        problem=problem,
        can_write=can_write(principal),
    )


@router.get("/config/snapshots/{snapshot_id}/restore")
async def restore_confirm(
    request: Request, session: DbSession, principal: Viewer, config: Config, snapshot_id: IdPath
) -> Response:
    return await _restore_page(request, session, principal, config, snapshot_id)


@router.post("/config/snapshots/{snapshot_id}/restore")
async def restore(
    request: Request,
    session: DbSession,
    principal: ConfigEditor,
    config: Config,
    snapshot_id: IdPath,
) -> Response:
    form = await read_form(request)
    reason = form.optional("reason")
    if reason is not None and len(reason) > MAX_REASON:
        reason = reason[:MAX_REASON]
    try:
        report = await snap.restore_snapshot(
            session, config, snapshot_id, actor=principal.actor, reason=reason
        )
    except snap.PlanRejected as exc:
        await session.rollback()
        return await _restore_page(
            request,
            session,
            principal,
            config,
            snapshot_id,
            reason=reason or "",
            report=exc.report.as_json(),
            problem=exc.detail,
            status_code=exc.status,
        )
    d = report.diff
    toast = (
        f"Snapshot restored: {len(d.changed)} changed, {len(d.added)} added, "
        f"{len(d.removed)} deactivated"
    )
    if report.change_requests:
        toast += f"; {len(report.change_requests)} change request(s) await approval"
    return redirect(f"/config/snapshots/{snapshot_id}", toast=toast)
